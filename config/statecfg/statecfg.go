// Package statecfg builds the state block of a healproxy file: where
// health state lives beyond this process (a file, Redis shared with other
// replicas, the replica's name). Package config calls Build.
package statecfg

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/redis/go-redis/v9"

	"github.com/healproxy/healproxy/internal/hclx"
)

// The state block: where health state lives beyond this process.
//
//	state {
//	  path       = ".healproxy/state"          # survives restarts (this replica)
//	  redis      = "redis://127.0.0.1:6379/0"  # shared with other replicas
//	  key_prefix = "healproxy:"                # default
//	  replica    = "a"                         # env HEALPROXY_REPLICA; default host-pid
//	  quorum     = 2                           # default 1; see docs/behaviour.md
//	}
//
// redis takes one of (ParseRedisURL):
//
//	redis://[user:password@]host[:port][/db]            one server
//	rediss://…                                          one server, TLS
//	redis-sentinel://[user:password@]host:port[,host:port…]/master[/db][?sentinel_password=…]
//	rediss-sentinel://…                                 Sentinel, TLS to the data nodes and sentinels
//	redis-cluster://[user:password@]host:port[,host:port…]
//	rediss-cluster://…                                  Redis Cluster, TLS

// Defaults of shared state.
const (
	DefaultKeyPrefix = "healproxy:"
	// ReplicaEnv overrides state.replica.
	ReplicaEnv = "HEALPROXY_REPLICA"
	// MaxReplicaLen bounds a replica id (it is part of Redis keys and
	// diagnostics).
	MaxReplicaLen = 64
	maxKeyPrefix  = 64
)

// SharedState is health shared with other replicas through Redis (state
// { redis = … }).
type SharedState struct {
	// RedisURL is redis://[user:password@]host[:port][/db] or rediss://….
	// It may hold a password: never log or show it; show Redacted. It is
	// left out of JSON.
	RedisURL string `json:"-"`
	// Redacted is RedisURL with the password replaced by "xxxxx".
	Redacted string
	// KeyPrefix starts every Redis key and channel name healproxy uses.
	// Default DefaultKeyPrefix.
	KeyPrefix string
	// Quorum is how many replicas (the tripping one included) must trip
	// an upstream within its cooldown before the other replicas apply the
	// trip; recoveries need none. 0 or 1 (the default): every trip is
	// applied at once. See docs/behaviour.md.
	Quorum int
}

// String shows the shared state with its URL redacted, so that printing it
// with %v cannot leak the password.
func (s SharedState) String() string {
	return fmt.Sprintf("redis %s prefix %q quorum %d", s.Redacted, s.KeyPrefix, s.Quorum)
}

// File is the state block as decoded (gohcl).
type File struct {
	Path           *string        `hcl:"path,optional"`
	PathRange      hcl.Range      `hcl:"path,attr_value_range"`
	Redis          *string        `hcl:"redis,optional"`
	RedisRange     hcl.Range      `hcl:"redis,attr_value_range"`
	KeyPrefix      *string        `hcl:"key_prefix,optional"`
	KeyPrefixRange hcl.Range      `hcl:"key_prefix,attr_value_range"`
	Replica        *string        `hcl:"replica,optional"`
	ReplicaRange   hcl.Range      `hcl:"replica,attr_value_range"`
	Quorum         hcl.Expression `hcl:"quorum,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// Settings are what the state block sets.
type Settings struct {
	Path    string       // the state file, absolute or relative to the current folder; "": none
	Replica string       // "": DefaultReplicaID()
	Shared  *SharedState // nil: health is not shared
}

// Build decodes the state block (nil when the file has none) and
// HEALPROXY_REPLICA (env > file); a relative path is resolved against dir.
// An empty redis (typically env("…") of an unset variable) shares nothing,
// like an empty header value sends no header. Problems go to b.
func Build(b *hclx.Builder, fs *File, dir string) Settings {
	var st Settings
	if v, ok := b.Getenv(ReplicaEnv); ok && v != "" {
		if problem := replicaProblem(v); problem != "" {
			b.Diags = append(b.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + ReplicaEnv,
				Detail: fmt.Sprintf("%s=%s: %s.", ReplicaEnv, hclx.Quote(v), problem)})
		}
		st.Replica = v
	}
	if fs == nil {
		return st
	}
	if fs.Path == nil && fs.Redis == nil && !b.DecodeDiags.HasErrors() { // a misspelt attribute is reported already
		b.Errorf(fs.DefRange, "Empty state block",
			`Set path (health state survives restarts), redis (health shared with other replicas) or both.`)
	}
	if fs.Path != nil && *fs.Path != "" && b.Decoded(fs.PathRange) {
		st.Path = resolvePath(dir, *fs.Path)
	}
	if fs.Replica != nil && b.Decoded(fs.ReplicaRange) && st.Replica == "" {
		if problem := replicaProblem(*fs.Replica); problem != "" {
			b.Errorf(fs.ReplicaRange, "Invalid replica", "%s: %s.", hclx.Quote(*fs.Replica), problem)
		}
		st.Replica = *fs.Replica
	}
	prefix := DefaultKeyPrefix
	if fs.KeyPrefix != nil && b.Decoded(fs.KeyPrefixRange) {
		prefix = *fs.KeyPrefix
		if len(prefix) > maxKeyPrefix || strings.ContainsFunc(prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			b.Errorf(fs.KeyPrefixRange, "Invalid key_prefix",
				"%s: want at most %d characters without spaces or control characters, such as \"healproxy:\".", hclx.Quote(prefix), maxKeyPrefix)
		}
	}
	quorum := DefaultQuorum
	hasQuorum := fs.Quorum != nil && !isNullExpr(fs.Quorum)
	if hasQuorum {
		b.IntTo(&quorum, fs.Quorum, "quorum", 1, MaxQuorum)
	}
	if fs.Redis == nil || !b.Decoded(fs.RedisRange) || strings.TrimSpace(*fs.Redis) == "" {
		if fs.KeyPrefix != nil && (fs.Redis == nil || !b.Decoded(fs.RedisRange)) {
			b.Errorf(fs.KeyPrefixRange, "key_prefix without redis", "key_prefix names Redis keys; set redis too, or drop it.")
		}
		if hasQuorum && fs.Redis == nil {
			b.Errorf(fs.Quorum.Range(), "quorum without redis",
				"quorum counts replicas that share health through Redis; set redis too, or drop it.")
		}
		return st
	}
	target, err := ParseRedisURL(*fs.Redis)
	if err != nil {
		b.Errorf(fs.RedisRange, "Invalid redis URL", "%s.", strings.TrimPrefix(err.Error(), "invalid redis URL: "))
		return st
	}
	st.Shared = &SharedState{RedisURL: *fs.Redis, Redacted: target.Redacted, KeyPrefix: prefix, Quorum: quorum}
	return st
}

// Quorum bounds.
const (
	// DefaultQuorum applies every replica's trip at once.
	DefaultQuorum = 1
	// MaxQuorum bounds state.quorum.
	MaxQuorum = 64
)

// isNullExpr reports an optional attribute gohcl left unset (a nil
// expression is never passed here) or set to null.
func isNullExpr(e hcl.Expression) bool {
	v, d := e.Value(nil)
	return !d.HasErrors() && v.IsNull()
}

var replicaPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func replicaProblem(s string) string {
	if len(s) > MaxReplicaLen || !replicaPattern.MatchString(s) {
		return fmt.Sprintf("want a replica id of at most %d letters, digits, '_', '.' or '-', starting with a letter or digit", MaxReplicaLen)
	}
	return ""
}

// RedisMode is how healproxy reaches Redis.
type RedisMode int

// Redis modes.
const (
	RedisSingle   RedisMode = iota // one server (redis://, rediss://)
	RedisSentinel                  // a primary found through Sentinel (redis-sentinel://)
	RedisCluster                   // a Redis Cluster (redis-cluster://)
)

// RedisTarget is a parsed state.redis URL. It holds secrets (Password,
// SentinelPassword): never log or show it; show Redacted.
type RedisTarget struct {
	Mode  RedisMode
	Addrs []string // host:port; one for RedisSingle, the seeds otherwise
	// URL is the URL as given: for RedisSingle go-redis reads it (query
	// options such as dial_timeout included).
	URL string `json:"-"`
	// MasterName is the Sentinel master name (RedisSentinel).
	MasterName string
	DB         int // not for RedisCluster
	// Username and Password authenticate to the data nodes (ACL user, or
	// the password alone for requirepass).
	Username string
	Password string `json:"-"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (query sentinel_username, sentinel_password).
	SentinelUsername string
	SentinelPassword string `json:"-"`
	TLS              bool   // rediss…: TLS with the system's roots, host name checked
	// Redacted is the URL with every password replaced by "xxxxx".
	Redacted string
}

// String shows the target redacted.
func (t RedisTarget) String() string { return t.Redacted }

var redisSchemes = map[string]struct {
	mode RedisMode
	tls  bool
}{
	"redis": {RedisSingle, false}, "rediss": {RedisSingle, true},
	"redis-sentinel": {RedisSentinel, false}, "rediss-sentinel": {RedisSentinel, true},
	"redis-cluster": {RedisCluster, false}, "rediss-cluster": {RedisCluster, true},
}

const redisWant = "want redis://[user:password@]host[:port][/db], rediss://… (TLS), " +
	"redis-sentinel://[user:password@]host:port[,host:port…]/master[/db] or redis-cluster://[user:password@]host:port[,host:port…]"

// ParseRedisURL reads a state.redis URL (the forms are in the state
// block's comment above). Its error says what is wrong and never holds a
// password.
func ParseRedisURL(s string) (RedisTarget, error) {
	fail := func(format string, args ...any) (RedisTarget, error) {
		return RedisTarget{}, fmt.Errorf("invalid redis URL: "+format, args...)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	kind, known := redisSchemes[scheme]
	if !ok || scheme == "" {
		return fail("not a URL; %s", redisWant)
	}
	if !known {
		if u, err := url.Parse(s); err == nil && u.Scheme != "" {
			return fail("the scheme is %s; %s", hclx.Quote(u.Scheme), redisWant)
		}
		return fail("not a URL; %s", redisWant)
	}
	// The host list may hold several host:port (and IPv6 literals), which
	// url.Parse refuses: it is cut out and the rest parsed with the first.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(hostlist, ",")
	if kind.mode == RedisSingle && len(hosts) > 1 {
		return fail("one host only for %s://; use redis-sentinel:// or redis-cluster:// for several; %s", scheme, redisWant)
	}
	u, err := url.Parse(scheme + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return fail("not a URL; %s", redisWant) // url.Parse's error quotes the URL: not shown
	}
	t := RedisTarget{Mode: kind.mode, TLS: kind.tls, URL: s}
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
	}
	redactedUser := ""
	if u.User != nil {
		redactedUser = u.User.Username()
		if _, has := u.User.Password(); has {
			redactedUser += ":xxxxx"
		}
		redactedUser += "@"
	}
	switch {
	case u.Opaque != "":
		return fail("no host; %s", redisWant)
	case u.Fragment != "":
		return fail("a fragment (#…) is not allowed; %s", redisWant)
	}
	for _, h := range hosts {
		hu, err := url.Parse("redis://" + h)
		if err != nil || hu.Hostname() == "" || hu.User != nil || hu.Path != "" {
			if h == "" || (err == nil && hu.Hostname() == "") {
				return fail("no host; %s", redisWant)
			}
			return fail("the host %s is not host[:port]; %s", hclx.Quote(h), redisWant)
		}
		port := hu.Port()
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fail("the port must be a number from 1 to 65535; %s", redisWant)
			}
		} else if kind.mode != RedisSingle {
			return fail("the host %s has no port; %s", hclx.Quote(h), redisWant)
		}
		t.Addrs = append(t.Addrs, hu.Host)
	}
	path := strings.TrimPrefix(u.Path, "/")
	if kind.mode == RedisSentinel {
		master, db, _ := strings.Cut(path, "/")
		if master == "" {
			return fail("no master name: redis-sentinel://host:port[,host:port…]/master[/db]")
		}
		t.MasterName, path = master, db
	}
	if kind.mode == RedisCluster && path != "" {
		return fail("a Redis Cluster has no database (got %s); %s", hclx.Quote("/"+path), redisWant)
	}
	if path != "" {
		n, err := strconv.Atoi(path)
		if err != nil || n < 0 {
			return fail("the database must be a whole number such as /0, got %s; %s", hclx.Quote("/"+path), redisWant)
		}
		t.DB = n
	}
	q := u.Query()
	redactedQuery := ""
	if kind.mode == RedisSingle {
		if _, err := redis.ParseURL(s); err != nil {
			msg := err.Error()
			if t.Password != "" {
				msg = strings.ReplaceAll(msg, t.Password, "xxxxx")
			}
			return fail("go-redis rejects it: %s", strings.ReplaceAll(msg, s, u.Redacted()))
		}
		redactedQuery = redactQuery(q)
	} else {
		for k := range q {
			if kind.mode != RedisSentinel || (k != "sentinel_username" && k != "sentinel_password") {
				return fail("unknown option %s; %s:// takes no options but sentinel_username and sentinel_password (Sentinel)",
					hclx.Quote(k), scheme)
			}
		}
		t.SentinelUsername, t.SentinelPassword = q.Get("sentinel_username"), q.Get("sentinel_password")
		redactedQuery = redactQuery(q)
	}
	t.Redacted = scheme + "://" + redactedUser + strings.Join(t.Addrs, ",")
	if u.Path != "" {
		t.Redacted += u.EscapedPath()
	}
	t.Redacted += redactedQuery
	return t, nil
}

// redactQuery is q as "?…" with the value of every option whose name
// says password or secret replaced by "xxxxx"; "" when q is empty.
func redactQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	r := url.Values{}
	for k, vs := range q {
		l := strings.ToLower(k)
		for _, v := range vs {
			if strings.Contains(l, "password") || strings.Contains(l, "secret") || strings.Contains(l, "pass") {
				v = "xxxxx"
			}
			r.Add(k, v)
		}
	}
	return "?" + r.Encode()
}

// DefaultReplicaID is the replica id used when neither state.replica nor
// HEALPROXY_REPLICA sets one: the host name and the process id
// ("web-1-4242"), which is unique per process but changes at each
// restart. Set one explicitly to keep a stable name.
func DefaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "healproxy"
	}
	host = strings.Map(func(r rune) rune {
		if r == '_' || r == '.' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '-'
	}, host)
	if host[0] == '-' || host[0] == '_' || host[0] == '.' {
		host = "h" + host
	}
	pid := strconv.Itoa(os.Getpid())
	if len(host)+1+len(pid) > MaxReplicaLen {
		host = host[:MaxReplicaLen-1-len(pid)]
	}
	return host + "-" + pid
}

// resolvePath resolves a relative file path against the config's folder.
func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
