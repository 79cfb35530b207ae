package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config/statecfg"
)

func TestStateRedis(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		env         map[string]string
		wantShared  *statecfg.SharedState
		wantReplica string
		wantPath    bool
	}{
		{
			name:       "redis with the default prefix",
			src:        "state {\n  redis = \"redis://127.0.0.1:6379/0\"\n}\n",
			wantShared: &statecfg.SharedState{RedisURL: "redis://127.0.0.1:6379/0", Redacted: "redis://127.0.0.1:6379/0", KeyPrefix: "healproxy:", Quorum: 1},
		},
		{
			name: "path, redis, prefix and replica",
			src:  "state {\n  path = \"s\"\n  redis = \"rediss://u:pw@cache.example:6380/2\"\n  key_prefix = \"hp-test:\"\n  replica = \"a\"\n}\n",
			wantShared: &statecfg.SharedState{RedisURL: "rediss://u:pw@cache.example:6380/2",
				Redacted: "rediss://u:xxxxx@cache.example:6380/2", KeyPrefix: "hp-test:", Quorum: 1},
			wantReplica: "a",
			wantPath:    true,
		},
		{
			name:        "HEALPROXY_REPLICA wins over the file",
			src:         "state {\n  redis = \"redis://h\"\n  replica = \"a\"\n}\n",
			env:         map[string]string{"HEALPROXY_REPLICA": "b"},
			wantShared:  &statecfg.SharedState{RedisURL: "redis://h", Redacted: "redis://h", KeyPrefix: "healproxy:", Quorum: 1},
			wantReplica: "b",
		},
		{
			name:        "HEALPROXY_REPLICA without a state block",
			src:         "",
			env:         map[string]string{"HEALPROXY_REPLICA": "c"},
			wantReplica: "c",
		},
		{
			name: "an empty redis (unset env) shares nothing",
			src:  "state {\n  redis = env(\"NOPE\")\n  key_prefix = \"x:\"\n}\n",
		},
		{
			name: "quorum and a Sentinel URL",
			src:  "state {\n  redis = \"redis-sentinel://app:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/3?sentinel_password=spw\"\n  quorum = 2\n}\n",
			wantShared: &statecfg.SharedState{RedisURL: "redis-sentinel://app:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster/3?sentinel_password=spw",
				Redacted: "redis-sentinel://app:xxxxx@10.0.0.1:26379,10.0.0.2:26379/mymaster/3?sentinel_password=xxxxx", KeyPrefix: "healproxy:", Quorum: 2},
		},
		{
			name: "a Redis Cluster over TLS",
			src:  "state {\n  redis = \"rediss-cluster://:pw@a:7000,b:7001\"\n}\n",
			wantShared: &statecfg.SharedState{RedisURL: "rediss-cluster://:pw@a:7000,b:7001",
				Redacted: "rediss-cluster://:xxxxx@a:7000,b:7001", KeyPrefix: "healproxy:", Quorum: 1},
		},
		{
			name:     "path only",
			src:      "state {\n  path = \"s\"\n}\n",
			wantPath: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "/etc/hp/x.hcl", tt.src, tt.env)
			if (tt.wantShared == nil) != (cfg.Shared == nil) || (cfg.Shared != nil && *cfg.Shared != *tt.wantShared) {
				t.Errorf("got Shared %+v; want %+v", cfg.Shared, tt.wantShared)
			}
			if cfg.Replica != tt.wantReplica {
				t.Errorf("got Replica %q; want %q", cfg.Replica, tt.wantReplica)
			}
			if got := cfg.StatePath != ""; got != tt.wantPath {
				t.Errorf("got StatePath %q; want set: %v", cfg.StatePath, tt.wantPath)
			}
		})
	}
}

func TestStateRedisErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want string
	}{
		{"http scheme", "state {\n  redis = \"http://h:6379\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; the scheme is "http"`},
		{"no host", "state {\n  redis = \"redis://:pw@/0\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; no host`},
		{"bad db", "state {\n  redis = \"redis://:s3cret@h/zero\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; the database must be a whole number`},
		{"bad port", "state {\n  redis = \"redis://:s3cret@h:99999/0\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; the port must be`},
		{"not a URL", "state {\n  redis = \"redis://:s3cret@h:x:y/%zz\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; not a URL`},
		{"bad query option", "state {\n  redis = \"redis://:s3cret@h/0?dial_timeout=soon\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; go-redis rejects it`},
		{"bad replica", "state {\n  redis = \"redis://h\"\n  replica = \"a b\"\n}\n", nil, `x.hcl:3:13: Invalid replica;`},
		{"bad replica env", "", map[string]string{"HEALPROXY_REPLICA": "-x"}, `x.hcl: Invalid HEALPROXY_REPLICA;`},
		{"bad prefix", "state {\n  redis = \"redis://h\"\n  key_prefix = \"a b\"\n}\n", nil, `x.hcl:3:16: Invalid key_prefix;`},
		{"prefix without redis", "state {\n  path = \"p\"\n  key_prefix = \"a:\"\n}\n", nil, `x.hcl:3:16: key_prefix without redis;`},
		{"empty block", "state {}\n", nil, `x.hcl:1:1: Empty state block;`},
		{"quorum 0", "state {\n  redis = \"redis://h\"\n  quorum = 0\n}\n", nil, `x.hcl:3:12: Invalid quorum;`},
		{"quorum not a number", "state {\n  redis = \"redis://h\"\n  quorum = \"two\"\n}\n", nil, `x.hcl:3:12: Invalid quorum;`},
		{"quorum without redis", "state {\n  path = \"p\"\n  quorum = 2\n}\n", nil, `x.hcl:3:12: quorum without redis;`},
		{"sentinel without master", "state {\n  redis = \"redis-sentinel://:s3cret@h:26379\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; no master name`},
		{"sentinel host without port", "state {\n  redis = \"redis-sentinel://:s3cret@h1:26379,h2/m\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; the host "h2" has no port`},
		{"sentinel unknown option", "state {\n  redis = \"redis-sentinel://h:26379/m?sentinel_pasword=s3cret\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; unknown option "sentinel_pasword"`},
		{"cluster with a database", "state {\n  redis = \"redis-cluster://:s3cret@h:7000/1\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; a Redis Cluster has no database`},
		{"several hosts for one server", "state {\n  redis = \"redis://:s3cret@a:1,b:2/0\"\n}\n", nil, `x.hcl:2:11: Invalid redis URL; one host only for redis://`},
		{"unknown attribute", "state {\n  redis_url = \"redis://h\"\n}\n", nil, `x.hcl:2:3: Unsupported argument;`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, tt.env)
			if !strings.HasPrefix(out, tt.want) {
				t.Errorf("got\n%s\nwant prefix\n%s", out, tt.want)
			}
			if strings.Contains(out, "s3cret") {
				t.Errorf("the diagnostics show the password:\n%s", out)
			}
		})
	}
}

func TestSharedStateStringRedacts(t *testing.T) {
	cfg := mustParse(t, "x.hcl", "state {\n  redis = \"redis-sentinel://u:s3cret@h:26379/m?sentinel_password=s3cret\"\n}\n", nil)
	if s := cfg.Shared.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "redis-sentinel://u:xxxxx@h:26379/m?sentinel_password=xxxxx") {
		t.Errorf("got %q; want the URL with its passwords redacted", s)
	}
	target, err := statecfg.ParseRedisURL(cfg.Shared.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{cfg.Shared, *cfg.Shared, target, &target} {
		b, _ := json.Marshal(v)
		for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), string(b)} {
			if strings.Contains(s, "s3cret") {
				t.Errorf("%T printed or encoded shows the password: %s", v, s)
			}
		}
	}
}
