package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/browsertest"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestBrowserUIRouting: an upstream shows what routing knows of it, as
// rendered text: the quota it announced and that its peers are preferred,
// its latency under least_latency, and the reason it is out (here a trip
// by the failure-rate rule, with its numbers).
func TestBrowserUIRouting(t *testing.T) {
	browsertest.ChromiumPath(t)
	quota := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "100")
		w.Header().Set("X-RateLimit-Remaining", "3")
		w.Header().Set("X-RateLimit-Reset", "600")
		fmt.Fprint(w, "ok")
	})
	peer := proxytest.NewUpstream(t)
	failing := proxytest.NewUpstream(t)
	failing.Code.Store(http.StatusInternalServerError)
	f := startFleet(t, fmt.Sprintf(`
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
    min_requests = 4
    window       = "1m"
  }
}
`, quota.URL, peer.URL, peer.URL, failing.URL))
	for _, path := range []string{"steered", "steered", "fast", "rate", "rate", "rate", "rate"} {
		resp, err := http.Get(f.url + "/providers/" + path + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if quota.Hits.Load() != 1 {
		t.Fatalf("the quota upstream got %d requests; want 1", quota.Hits.Load())
	}

	p := openPage(t, f.url+"/")
	row := func(id string) string { return `article[data-kind="provider"][data-key="` + id + `"] ul.upstreams` }
	p.WaitJS("the three providers' upstreams are shown", `document.querySelectorAll('ul.upstreams li').length === 4`, 10*time.Second)
	if got := p.Text(row("steered") + ` li[data-upstream="` + quota.URL + `"]`); !strings.Contains(got, "quota 3 of 100 left") || !strings.Contains(got, "peers preferred, reset") {
		t.Errorf("the steered upstream reads %q; want its quota (3 of 100 left) and that its peers are preferred until the reset", got)
	}
	if got := p.Text(row("steered") + ` li[data-upstream="` + peer.URL + `"]`); strings.Contains(got, "quota") {
		t.Errorf("a peer that announced nothing reads %q; want no quota", got)
	}
	if got := p.Text(row("fast")); !strings.Contains(got, "latency ~") || !strings.Contains(got, "0 in flight") {
		t.Errorf("the least_latency upstream reads %q; want its latency and requests in flight", got)
	}
	if got := p.Text(row("rate")); !strings.Contains(got, "failure rate 100% of 4 calls in 1m0s") {
		t.Errorf("the tripped upstream reads %q; want the rate rule's reason with its numbers", got)
	}
	p.badText("routing facts")
	p.NoProblems()
}
