package statecfg

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		in   string
		want RedisTarget
	}{
		{"redis://u:pw@h:6379/2", RedisTarget{Mode: RedisSingle, Addrs: []string{"h:6379"}, DB: 2, Username: "u", Password: "pw",
			Redacted: "redis://u:xxxxx@h:6379/2"}},
		{"rediss://h", RedisTarget{Mode: RedisSingle, Addrs: []string{"h"}, TLS: true, Redacted: "rediss://h"}},
		{"redis-sentinel://u:pw@[::1]:26379,10.0.0.2:26380/main/1?sentinel_username=s&sentinel_password=spw",
			RedisTarget{Mode: RedisSentinel, Addrs: []string{"[::1]:26379", "10.0.0.2:26380"}, MasterName: "main", DB: 1,
				Username: "u", Password: "pw", SentinelUsername: "s", SentinelPassword: "spw",
				Redacted: "redis-sentinel://u:xxxxx@[::1]:26379,10.0.0.2:26380/main/1?sentinel_password=xxxxx&sentinel_username=s"}},
		{"rediss-sentinel://h:26379/m", RedisTarget{Mode: RedisSentinel, Addrs: []string{"h:26379"}, MasterName: "m", TLS: true,
			Redacted: "rediss-sentinel://h:26379/m"}},
		{"redis-cluster://a:7000,b:7001,c:7002", RedisTarget{Mode: RedisCluster, Addrs: []string{"a:7000", "b:7001", "c:7002"},
			Redacted: "redis-cluster://a:7000,b:7001,c:7002"}},
	}
	for _, tt := range tests {
		got, err := ParseRedisURL(tt.in)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", tt.in, err)
			continue
		}
		tt.want.URL = tt.in
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRedisURL(%q)\ngot  %+v\nwant %+v", tt.in, got, tt.want)
		}
		if s := fmt.Sprint(got); strings.Contains(s, "pw") {
			t.Errorf("printing the target shows a password: %s", s)
		}
	}
}

func TestDefaultReplicaID(t *testing.T) {
	id := DefaultReplicaID()
	if problem := replicaProblem(id); problem != "" {
		t.Errorf("DefaultReplicaID() = %q: %s", id, problem)
	}
}
