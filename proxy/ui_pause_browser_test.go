package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestBrowserUIShowsRateLimitPause: an upstream that answers 429 with
// Retry-After is shown paused (rate limited, not failing) with a
// countdown in its row's explanation.
func TestBrowserUIShowsRateLimitPause(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":"slow down"}`)
	})
	pc := uiProvider(t, "limited", "Limited API", uiHealth())
	pc.Upstreams = append(pc.Upstreams, mustURL(t, up.URL+"/api"))
	px := startUIProxy(t, uiConfig("", []config.Provider{pc}))
	if code := px.send(t, "limited"); code != http.StatusTooManyRequests {
		t.Fatalf("first request: %d; want the upstream's 429", code)
	}
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "limited", "unavailable", 10*time.Second)
	b.click(`article[data-kind="provider"][data-key="limited"] details.explain > summary`)
	b.waitJS("the details are open", rowJS("provider", "limited")+`.querySelector('details').open`, 2*time.Second)
	paused := uiEval[string](b, rowJS("provider", "limited")+`.querySelector('[data-fact="paused"]')?.textContent || ''`)
	if !strings.Contains(paused, "paused") || !strings.Contains(paused, "left") {
		t.Errorf("paused fact = %q; want a countdown of the rate-limit pause", paused)
	}
	why := uiEval[string](b, rowJS("provider", "limited")+`.querySelector('.explain-body').textContent`)
	if !strings.Contains(why, "rate_limited") {
		t.Errorf("explanation = %q; want it to say rate_limited", why)
	}
	b.noProblems()
}
