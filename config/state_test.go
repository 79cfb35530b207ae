package config

import (
	"strings"
	"testing"
)

func TestStateRedis(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		env         map[string]string
		wantShared  *SharedState
		wantReplica string
		wantPath    bool
	}{
		{
			name:       "redis with the default prefix",
			src:        "state {\n  redis = \"redis://127.0.0.1:6379/0\"\n}\n",
			wantShared: &SharedState{RedisURL: "redis://127.0.0.1:6379/0", Redacted: "redis://127.0.0.1:6379/0", KeyPrefix: "healproxy:"},
		},
		{
			name: "path, redis, prefix and replica",
			src:  "state {\n  path = \"s\"\n  redis = \"rediss://u:pw@cache.example:6380/2\"\n  key_prefix = \"hp-test:\"\n  replica = \"a\"\n}\n",
			wantShared: &SharedState{RedisURL: "rediss://u:pw@cache.example:6380/2",
				Redacted: "rediss://u:xxxxx@cache.example:6380/2", KeyPrefix: "hp-test:"},
			wantReplica: "a",
			wantPath:    true,
		},
		{
			name:        "HEALPROXY_REPLICA wins over the file",
			src:         "state {\n  redis = \"redis://h\"\n  replica = \"a\"\n}\n",
			env:         map[string]string{"HEALPROXY_REPLICA": "b"},
			wantShared:  &SharedState{RedisURL: "redis://h", Redacted: "redis://h", KeyPrefix: "healproxy:"},
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
	cfg := mustParse(t, "x.hcl", "state {\n  redis = \"redis://:s3cret@h:6379/1\"\n}\n", nil)
	if s := cfg.Shared.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "redis://:xxxxx@h:6379/1") {
		t.Errorf("got %q; want the URL with its password redacted", s)
	}
}

func TestDefaultReplicaID(t *testing.T) {
	id := DefaultReplicaID()
	if problem := replicaProblem(id); problem != "" {
		t.Errorf("DefaultReplicaID() = %q: %s", id, problem)
	}
}
