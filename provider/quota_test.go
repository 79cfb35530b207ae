package provider

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// limited is an upstream with a real rate limit: limit requests per
// window, announced with X-RateLimit-* on every answer, 429 once spent.
// reset makes a new window.
type limited struct {
	*proxytest.Upstream
	limit int64
	used  atomic.Int64
}

func newLimited(t *testing.T, limit int64) *limited {
	l := &limited{Upstream: proxytest.NewUpstream(t), limit: limit}
	l.Set(func(w http.ResponseWriter, r *http.Request) {
		used := l.used.Add(1)
		w.Header().Set("X-RateLimit-Limit", strconv.FormatInt(l.limit, 10))
		w.Header().Set("X-RateLimit-Remaining", strconv.FormatInt(max(l.limit-used, 0), 10))
		w.Header().Set("X-RateLimit-Reset", "30")
		if used > l.limit {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("ok"))
	})
	return l
}

// fakeClock is a settable clock for quota steering.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestQuotaSteersBeforeA429: an upstream announcing a low quota gets no
// more traffic while a peer can take it, so it never answers 429; round
// robin alone would send it half of the requests, past its limit.
func TestQuotaSteersBeforeA429(t *testing.T) {
	lim, peer := newLimited(t, 20), proxytest.NewUpstream(t)
	pc := proxytest.Provider(t, "p", lim.URL, peer.URL)
	pc.Quota = &routecfg.Quota{Reserve: 0.1}
	p, url, reg := serveProvider(t, pc, nil)
	getN(t, url+"/x", 60)
	if got := lim.used.Load(); got > 18 {
		t.Errorf("the limited upstream got %d requests; want at most 18 (steered at 2 of 20 left)", got)
	}
	if got := proxytest.MetricValue(t, reg, "healproxy_upstream_requests_total", map[string]string{"upstream": p.Upstreams[0].Display, "code": "429"}); got != 0 {
		t.Errorf("the limited upstream answered 429 %v times; want 0", got)
	}
	if got := proxytest.MetricValue(t, reg, "healproxy_quota_steered_total", map[string]string{"provider": "p", "upstream": p.Upstreams[0].Display}); got != 1 {
		t.Errorf("healproxy_quota_steered_total = %v; want 1", got)
	}
	s, ok := p.Upstreams[0].Quota()
	if !ok || s.Remaining != 2 || s.Limit != 20 || s.Header != "X-RateLimit-Remaining" || !s.Steering {
		t.Errorf("Quota() = %+v, %v; want 2 of 20 left, steering", s, ok)
	}
	if s, ok := p.Upstreams[1].Quota(); ok {
		t.Errorf("Quota() of an upstream that announced nothing = %+v, true", s)
	}
	if st := p.Upstreams[0].Health.Status(); st.String() != "healthy" {
		t.Errorf("steered upstream's status = %v; want healthy (steering is no health change)", st)
	}
}

// TestQuotaResetEndsSteering: at the announced reset the upstream takes
// its share again.
func TestQuotaResetEndsSteering(t *testing.T) {
	lim, peer := newLimited(t, 10), proxytest.NewUpstream(t)
	lim.used.Store(8) // its next answer says 1 of 10 left
	pc := proxytest.Provider(t, "p", lim.URL, peer.URL)
	pc.Quota = &routecfg.Quota{Reserve: 0.2}
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	p, url, _ := serveProvider(t, pc, func(p *Provider) { p.quotaClock = clock.now })
	getN(t, url+"/x", 10)
	if got := lim.Hits.Load(); got != 1 {
		t.Fatalf("the limited upstream got %d requests; want 1 (then steered: 1 of 10 left)", got)
	}
	lim.used.Store(0) // the window resets at the upstream...
	clock.advance(31 * time.Second)
	getN(t, url+"/x", 10) // ...and at the proxy: round robin again
	if got := lim.Hits.Load() - 1; got < 4 {
		t.Errorf("after the reset the limited upstream got %d of 10 requests; want its share (5)", got)
	}
	if s, _ := p.Upstreams[0].Quota(); s.Steering {
		t.Errorf("still steering after the reset: %+v", s)
	}
}

// TestQuotaExhaustedAlonePauses: with no peer, an upstream that
// announces none left is paused until the reset: the next client gets
// 503 with Retry-After from the proxy, and the upstream no request.
func TestQuotaExhaustedAlonePauses(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit", `"default";r=0;t=20`)
		w.Header().Set("RateLimit-Policy", `"default";q=100;w=60`)
		w.Write([]byte("ok"))
	})
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Quota = &routecfg.Quota{Reserve: 0.05}
	pc.MaxRateLimitPause = 10 * time.Second // caps the pause
	p, url, _ := serveProvider(t, pc, nil)
	getN(t, url+"/x", 1) // the answer that spent the quota still goes through
	resp, body := proxytest.Get(t, http.DefaultClient, url+"/x")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after 0 left: got %d %q; want 503", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 10 {
		t.Errorf("Retry-After = %q; want 1..10 (the reset in 20s, capped by max_rate_limit_pause 10s)", resp.Header.Get("Retry-After"))
	}
	if got := up.Hits.Load(); got != 1 {
		t.Errorf("the upstream got %d requests; want 1", got)
	}
	if until, why, ok := p.Upstreams[0].Health.PausedUntil(); !ok || time.Until(until) > 10*time.Second {
		t.Errorf("PausedUntil = %v, %q, %v; want paused at most 10s", until, why, ok)
	} else if want := `quota exhausted: RateLimit: 0 of 100 left, resets in 20s`; why != want {
		t.Errorf("pause reason = %q; want %q", why, want)
	}
}

// TestQuotaNotReadFrom429: a 429's headers are retry.RateLimitPause's,
// not the quota's; and without a quota block nothing is read.
func TestQuotaNotReadFrom429(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", "5")
		if r.URL.Path == "/429" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Quota = &routecfg.Quota{}
	p, url, _ := serveProvider(t, pc, nil)
	proxytest.Get(t, http.DefaultClient, url+"/429")
	if s, ok := p.Upstreams[0].Quota(); ok {
		t.Errorf("a 429's headers were read as a quota: %+v", s)
	}

	off := proxytest.Provider(t, "q", up.URL)
	q, qurl, _ := serveProvider(t, off, nil)
	getN(t, qurl+"/x", 2)
	if _, ok := q.Upstreams[0].Quota(); ok {
		t.Error("Quota() ok without a quota block")
	}
	if _, _, ok := q.Upstreams[0].Health.PausedUntil(); ok {
		t.Error("paused by quota headers without a quota block")
	}
}
