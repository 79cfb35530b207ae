package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestRoutingFromAFile: the routing settings of a file reach the provider
// and show in its health document: the quota an upstream announced, the
// latency least_latency weighs it by, and a trip by the rate rule with its
// numbers.
func TestRoutingFromAFile(t *testing.T) {
	quota := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Remaining", "3")
		w.Header().Set("X-RateLimit-Reset", "30")
		fmt.Fprint(w, "ok")
	})
	peer := proxytest.NewUpstream(t)
	failing := proxytest.NewUpstream(t)
	failing.Code.Store(http.StatusInternalServerError)
	_, ts := startHCL(t, fmt.Sprintf(`
provider "steered" {
  upstreams = [%q, %q]
  quota { reserve = 0.05 }
  retry { attempts = 1 }
}
provider "fast" {
  upstreams = [%q]
  balance   = "least_latency"
}
provider "rate" {
  upstreams = [%q]
  retry { attempts = 1 }
  health {
    trip         = "rate"
    failure_rate = 0.5
    min_requests = 4
    window       = "1m"
  }
}
`, quota.URL, peer.URL, peer.URL, failing.URL))

	// One answer of the quota upstream announces 3 of 100 left: under
	// the 5 % reserve, so its peer takes what follows.
	for range 2 {
		proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/steered/x")
	}
	if quota.Hits.Load() != 1 {
		t.Fatalf("the quota upstream got %d requests; want 1 (the first, round robin's)", quota.Hits.Load())
	}
	before := quota.Hits.Load()
	for range 6 {
		proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/steered/x")
	}
	if got := quota.Hits.Load(); got != before {
		t.Errorf("the steered upstream got %d more requests; want none while its quota is low and its peer is healthy", got-before)
	}
	up := upstreamByURL(t, ts.URL, "steered", quota.URL)
	if up.Quota == nil || up.Quota.Remaining != 3 || up.Quota.Limit != 100 || !up.Quota.Steering || up.Quota.Reset.IsZero() {
		t.Errorf("health shows quota %+v; want remaining 3 of 100, a reset and steering", up.Quota)
	}
	if up := upstreamByURL(t, ts.URL, "steered", peer.URL); up.Quota != nil || up.Balance != nil {
		t.Errorf("a peer that announced nothing shows quota %+v balance %+v; want neither", up.Quota, up.Balance)
	}

	proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/fast/x")
	if b := upstreamAt(t, ts.URL, "fast", 0).Balance; b == nil || b.EWMAMs <= 0 || b.InFlight != 0 {
		t.Errorf("least_latency upstream shows balance %+v; want a latency and nothing in flight", b)
	}

	for range 4 {
		proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/rate/x")
	}
	p := fetchProvider(t, ts.URL, "rate")
	if p.Status != "unavailable" || !strings.Contains(p.Reason, "failure rate 100% of 4 calls in 1m0s") {
		t.Errorf("rate provider is %s (%q); want unavailable, the reason naming the rate rule and its numbers", p.Status, p.Reason)
	}
}
