package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/statecfg"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/internal/redistest"
)

// Two Servers in one process share health through a real redis-server;
// the multi-process tests with the binary are in cmd/healproxy.

func clusterConfig(t testing.TB, upstream, redisURL, replica string) *config.Config {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Replica: replica, Providers: []config.Provider{{
		ID: "p", Name: "p", Upstreams: []*url.URL{u}, Timeout: 5 * time.Second,
		Health: config.Health{ErrorThreshold: 2, Cooldown: time.Minute, RecoveryCount: 2, CooldownMultiplier: 1},
		Retry:  config.Retry{Attempts: 1},
	}}}
	if redisURL != "" {
		cfg.Shared = &statecfg.SharedState{RedisURL: redisURL, Redacted: redisURL, KeyPrefix: "hp-proxy-test:"}
	}
	return cfg
}

func TestClusterTripServedBy503Elsewhere(t *testing.T) {
	srv := redistest.Start(t)
	var hits atomic.Int32
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	a, frontA := startServer(t, clusterConfig(t, up.URL, srv.URL(), "a"))
	_, frontB := startServer(t, clusterConfig(t, up.URL, srv.URL(), "b"))
	if !a.cluster.Status().Connected {
		t.Fatal("a is not connected after New")
	}
	for range 2 {
		resp, err := http.Get(frontA.URL + "/providers/p/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var doc struct {
		Replica     string `json:"replica"`
		SharedState struct {
			Backend   string `json:"backend"`
			Connected bool   `json:"connected"`
			Applied   int    `json:"applied"`
		} `json:"shared_state"`
		Providers struct {
			Entries []struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"entries"`
		} `json:"providers"`
	}
	proxytest.Eventually(t, 5*time.Second, "b to follow a's trip", func() bool {
		getJSON(t, frontB.URL+"/api/diagnostics/health", &doc)
		return doc.Providers.Entries[0].Status == "unavailable"
	})
	if doc.Replica != "b" || doc.SharedState.Backend != "redis" || !doc.SharedState.Connected || doc.SharedState.Applied != 1 ||
		!strings.Contains(doc.Providers.Entries[0].Reason, "tripped on replica a") {
		t.Errorf("got %+v; want replica b, connected, one change applied, the reason naming a", doc)
	}
	before := hits.Load()
	resp, err := http.Get(frontB.URL + "/providers/p/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d (Retry-After %q) from b; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if hits.Load() != before {
		t.Errorf("b called the upstream a tripped")
	}

	// metrics
	resp, err = http.Get(frontB.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"healproxy_shared_state_connected 1", "healproxy_shared_state_applied_total 1", "healproxy_shared_state_dropped_total 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestClusterScopeHealth(t *testing.T) {
	srv := redistest.Start(t)
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	_, frontA := startServer(t, clusterConfig(t, up.URL, srv.URL(), "a"))
	_, frontB := startServer(t, clusterConfig(t, up.URL, srv.URL(), "b"))
	resp, err := http.Get(frontB.URL + "/providers/p/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var doc api.ClusterHealth
	proxytest.Eventually(t, 10*time.Second, "both replicas in the cluster view", func() bool {
		getJSON(t, frontA.URL+"/api/diagnostics/health?scope=cluster", &doc)
		return len(doc.Replicas) == 2 && len(doc.Upstreams) == 1 && doc.Upstreams[0].Replicas["b"].Status == "healthy"
	})
	if !doc.Complete || doc.Replica != "a" || doc.Scope != "cluster" || doc.Upstreams[0].Replicas["a"].Status != "unknown" {
		t.Errorf("got %+v; want a complete view answered by a, upstream unknown on a and healthy on b", doc)
	}
}

// TestClusterNoRedisKeepsServing: a replica whose Redis is unreachable
// starts, serves and says so in its health document; the default
// document without state.redis has no shared_state.
func TestClusterNoRedisKeepsServing(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	_, front := startServer(t, clusterConfig(t, up.URL, "redis://:s3cret@127.0.0.1:1/0", "a"))
	resp, err := http.Get(front.URL + "/providers/p/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got %d; want 200 without redis", resp.StatusCode)
	}
	raw := map[string]any{}
	getJSON(t, front.URL+"/api/diagnostics/health", &raw)
	ss, _ := raw["shared_state"].(map[string]any)
	if ss == nil || ss["connected"] != false || ss["last_error"] == "" || ss["url"] != "redis://:xxxxx@127.0.0.1:1/0" {
		t.Errorf("got shared_state %v; want disconnected, with the error and the redacted URL", ss)
	}
	b, _ := json.Marshal(raw)
	if strings.Contains(string(b), "s3cret") {
		t.Error("the health document shows the redis password")
	}
	var cdoc api.ClusterHealth
	getJSON(t, front.URL+"/api/diagnostics/health?scope=cluster", &cdoc)
	if cdoc.Complete || cdoc.Error == nil || len(cdoc.Replicas) != 1 {
		t.Errorf("got %+v; want this replica's view only, marked incomplete", cdoc)
	}

	_, local := startServer(t, clusterConfig(t, up.URL, "", "solo"))
	raw = map[string]any{}
	getJSON(t, local.URL+"/api/diagnostics/health", &raw)
	if _, ok := raw["shared_state"]; ok || raw["replica"] != "solo" {
		t.Errorf("got replica %v shared_state %v; want replica solo and no shared_state", raw["replica"], raw["shared_state"])
	}
}
