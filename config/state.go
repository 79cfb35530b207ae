package config

import (
	"fmt"
	"net/url"
	"os"
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
//	}

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
	// It may hold a password: never log or show it; show Redacted.
	RedisURL string
	// Redacted is RedisURL with the password replaced by "xxxxx".
	Redacted string
	// KeyPrefix starts every Redis key and channel name healproxy uses.
	// Default DefaultKeyPrefix.
	KeyPrefix string
}

// String shows the shared state with its URL redacted, so that printing it
// with %v cannot leak the password.
func (s SharedState) String() string {
	return fmt.Sprintf("redis %s prefix %q", s.Redacted, s.KeyPrefix)
}

type fileState struct {
	Path           *string   `hcl:"path,optional"`
	PathRange      hcl.Range `hcl:"path,attr_value_range"`
	Redis          *string   `hcl:"redis,optional"`
	RedisRange     hcl.Range `hcl:"redis,attr_value_range"`
	KeyPrefix      *string   `hcl:"key_prefix,optional"`
	KeyPrefixRange hcl.Range `hcl:"key_prefix,attr_value_range"`
	Replica        *string   `hcl:"replica,optional"`
	ReplicaRange   hcl.Range `hcl:"replica,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

// state decodes the state block and HEALPROXY_REPLICA (env > file).
// An empty redis (typically env("…") of an unset variable) shares nothing,
// like an empty header value sends no header.
func (b *builder) state(fs *fileState, cfg *Config) {
	if v, ok := b.getenv(ReplicaEnv); ok && v != "" {
		if problem := replicaProblem(v); problem != "" {
			b.diags = append(b.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + ReplicaEnv,
				Detail: fmt.Sprintf("%s=%s: %s.", ReplicaEnv, hclx.Quote(v), problem)})
		}
		cfg.Replica = v
	}
	if fs == nil {
		return
	}
	if fs.Path == nil && fs.Redis == nil && !b.decodeDiags.HasErrors() { // a misspelt attribute is reported already
		b.errorf(fs.DefRange, "Empty state block",
			`Set path (health state survives restarts), redis (health shared with other replicas) or both.`)
	}
	if fs.Path != nil && *fs.Path != "" && b.decoded(fs.PathRange) {
		cfg.StatePath = resolvePath(cfg.Dir, *fs.Path)
	}
	if fs.Replica != nil && b.decoded(fs.ReplicaRange) && cfg.Replica == "" {
		if problem := replicaProblem(*fs.Replica); problem != "" {
			b.errorf(fs.ReplicaRange, "Invalid replica", "%s: %s.", hclx.Quote(*fs.Replica), problem)
		}
		cfg.Replica = *fs.Replica
	}
	prefix := DefaultKeyPrefix
	if fs.KeyPrefix != nil && b.decoded(fs.KeyPrefixRange) {
		prefix = *fs.KeyPrefix
		if len(prefix) > maxKeyPrefix || strings.ContainsFunc(prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			b.errorf(fs.KeyPrefixRange, "Invalid key_prefix",
				"%s: want at most %d characters without spaces or control characters, such as \"healproxy:\".", hclx.Quote(prefix), maxKeyPrefix)
		}
	}
	if fs.Redis == nil || !b.decoded(fs.RedisRange) || strings.TrimSpace(*fs.Redis) == "" {
		if fs.KeyPrefix != nil && (fs.Redis == nil || !b.decoded(fs.RedisRange)) {
			b.errorf(fs.KeyPrefixRange, "key_prefix without redis", "key_prefix names Redis keys; set redis too, or drop it.")
		}
		return
	}
	redacted, problem := parseRedisURL(*fs.Redis)
	if problem != "" {
		b.errorf(fs.RedisRange, "Invalid redis URL", "%s.", problem)
		return
	}
	cfg.Shared = &SharedState{RedisURL: *fs.Redis, Redacted: redacted, KeyPrefix: prefix}
}

var replicaPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func replicaProblem(s string) string {
	if len(s) > MaxReplicaLen || !replicaPattern.MatchString(s) {
		return fmt.Sprintf("want a replica id of at most %d letters, digits, '_', '.' or '-', starting with a letter or digit", MaxReplicaLen)
	}
	return ""
}

// parseRedisURL checks a Redis URL the way go-redis will read it. problem
// is "" when it is acceptable; neither value ever holds the password.
func parseRedisURL(s string) (redacted, problem string) {
	const want = "want redis://[user:password@]host[:port][/db] or rediss://… (TLS)"
	u, err := url.Parse(s)
	if err != nil {
		return "", "not a URL; " + want // url.Parse's error quotes the URL: not shown
	}
	redacted = u.Redacted()
	switch {
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return "", fmt.Sprintf("the scheme is %s; %s", hclx.Quote(u.Scheme), want)
	case u.Opaque != "" || u.Hostname() == "":
		return "", "no host; " + want
	case u.Fragment != "":
		return "", "a fragment (#…) is not allowed; " + want
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "the port must be a number from 1 to 65535; " + want
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return "", fmt.Sprintf("the database must be a whole number such as /0, got %s; %s", hclx.Quote("/"+db), want)
		}
	}
	if _, err := redis.ParseURL(s); err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return "", "go-redis rejects it: " + strings.ReplaceAll(msg, s, redacted)
	}
	return redacted, ""
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
