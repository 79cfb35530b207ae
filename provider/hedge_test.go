package provider

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// hedgeServer serves provider "p" in front of ups with hedge h, on
// loopback; lean gives its GETs the lean client. closeIdle closes every
// idle connection of the test (for goroutine counts).
type hedgeServer struct {
	p         *Provider
	url       string
	reg       *prometheus.Registry
	client    *http.Client
	closeIdle func()
}

func newHedgeServer(t *testing.T, h routecfg.Hedge, lean bool, ups ...string) *hedgeServer {
	t.Helper()
	pc := proxytest.Provider(t, "p", ups...)
	pc.Hedge = &h
	return newHedgeServerFor(t, pc, lean)
}

func newHedgeServerFor(t *testing.T, pc config.Provider, lean bool) *hedgeServer {
	t.Helper()
	pc = proxytest.NormalizedProvider(pc)
	reg := prometheus.NewRegistry()
	tr := &http.Transport{}
	p := New(pc, tr, Hooks{}, NewMetrics(reg), proxytest.DiscardLogger(), nil)
	var pools *h1.Pools
	if lean {
		pools = h1.NewPools()
		t.Cleanup(pools.Close)
		p.UseLean(pools)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return &hedgeServer{p: p, url: ts.URL + "/providers/p", reg: reg, client: client, closeIdle: func() {
		client.CloseIdleConnections()
		tr.CloseIdleConnections()
		if pools != nil {
			pools.Close()
		}
	}}
}

func (s *hedgeServer) hedges(t *testing.T, result string) float64 {
	t.Helper()
	return proxytest.MetricValue(t, s.reg, "healproxy_hedges_total", map[string]string{"provider": "p", "result": result})
}

// firstTo makes the next request's first attempt go to upstream i
// (round robin: the cursor's next value modulo the upstreams).
func (s *hedgeServer) firstTo(i int) {
	n := uint32(len(s.p.Upstreams))
	next := s.p.rr.Load() + 1
	s.p.rr.Store(next - next%n + uint32(i) - 1 + n)
}

// slowUpstream answers after d, unless its request is cancelled first,
// which it counts.
func slowUpstream(t *testing.T, d time.Duration, name string, cancelled *atomic.Int32) *proxytest.Upstream {
	return proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(d):
			io.WriteString(w, "answer of "+name)
		case <-r.Context().Done():
			cancelled.Add(1)
		}
	})
}

// waitGoroutines waits until no more goroutines run than before (with a
// little slack for the runtime's own), after closing idle connections.
func waitHedgeGoroutines(t *testing.T, s *hedgeServer, before int) {
	t.Helper()
	proxytest.Eventually(t, 5*time.Second, "the hedges' goroutines to end", func() bool {
		s.closeIdle()
		return runtime.NumGoroutine() <= before+2
	})
}

// TestHedgeFastUpstreamWins: a request whose first attempt goes to a slow
// upstream is hedged after the delay to the fast one, whose answer the
// client gets long before the slow one would answer; the slow attempt is
// cancelled and counts for nothing in its upstream's health. Through the
// lean client (GET) and http.Transport (PUT, its body replayed).
func TestHedgeFastUpstreamWins(t *testing.T) {
	for _, tc := range []struct {
		method string
		body   string
		lean   bool
	}{{"GET", "", true}, {"GET", "", false}, {"PUT", "the body", false}} {
		t.Run(tc.method+map[bool]string{true: "/lean", false: "/transport"}[tc.lean], func(t *testing.T) {
			var cancelled atomic.Int32
			slow := slowUpstream(t, 2*time.Second, "slow", &cancelled)
			// The fast upstream finishes its answer only once the slow
			// attempt was cancelled: the loser is cancelled when the
			// winner is taken, not when the client's request ends.
			fast := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "answer")
				http.NewResponseController(w).Flush()
				deadline := time.Now().Add(3 * time.Second)
				for cancelled.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond) // a condition wait
				}
				if cancelled.Load() == 0 {
					io.WriteString(w, " (the slow attempt was not cancelled)")
					return
				}
				io.WriteString(w, " of fast")
			})
			s := newHedgeServer(t, routecfg.Hedge{After: 50 * time.Millisecond, MaxExtra: 1, Window: 10 * time.Second}, tc.lean, slow.URL, fast.URL)
			before := runtime.NumGoroutine()

			s.firstTo(0)
			began := time.Now()
			resp, body := proxytest.Do(t, s.client, tc.method, s.url+"/x", strings.NewReader(tc.body), nil)
			took := time.Since(began)
			if resp.StatusCode != 200 || body != "answer of fast" {
				t.Fatalf("got %d %q; want 200 from the fast upstream", resp.StatusCode, body)
			}
			if took > time.Second {
				t.Errorf("the answer took %v; want about the hedge delay (50ms), far below the slow upstream's 2s", took)
			}
			if got := slow.Hits.Load(); got != 1 {
				t.Fatalf("slow upstream got %d requests; want 1 (the first attempt)", got)
			}
			for _, u := range []*proxytest.Upstream{slow, fast} {
				if r := u.Last(t); r.Body != tc.body {
					t.Errorf("%s got body %q; want %q", u.URL, r.Body, tc.body)
				}
			}
			proxytest.Eventually(t, 5*time.Second, "the slow attempt to be cancelled", func() bool { return cancelled.Load() == 1 })
			if sent, won := s.hedges(t, "sent"), s.hedges(t, "won"); sent != 1 || won != 1 {
				t.Errorf("hedges sent %v, won %v; want 1 and 1", sent, won)
			}
			snap := s.p.Upstreams[0].Health.Snapshot()
			if snap.ErrorCount != 0 || snap.LastErrorMessage != "" {
				t.Errorf("the cancelled slow attempt counted against its upstream: error_count %d, %q", snap.ErrorCount, snap.LastErrorMessage)
			}
			if got := s.p.Upstreams[1].Health.Snapshot().SuccessCount; got != 1 {
				t.Errorf("fast upstream success_count %d; want 1", got)
			}
			waitHedgeGoroutines(t, s, before)
		})
	}
}

// TestHedgeFirstAnswerFailed: when the first answer to come is a failure,
// the other attempt is waited for and its good answer taken.
func TestHedgeFirstAnswerFailed(t *testing.T) {
	release := make(chan struct{})
	failing := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release // until the hedge was sent
		w.WriteHeader(http.StatusInternalServerError)
	})
	good := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(release)
		select {
		case <-time.After(100 * time.Millisecond): // after the failure
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "good")
	})
	pc := proxytest.Provider(t, "p", failing.URL, good.URL)
	pc.Hedge = &routecfg.Hedge{After: 20 * time.Millisecond, MaxExtra: 1, Window: 10 * time.Second}
	pc.Retry.Attempts = 1 // no retry could hide a wrong choice
	s := newHedgeServerFor(t, pc, false)
	s.firstTo(0)
	resp, body := proxytest.Get(t, s.client, s.url+"/x")
	if resp.StatusCode != 200 || body != "good" {
		t.Fatalf("got %d %q; want 200 %q, the other attempt's answer", resp.StatusCode, body, "good")
	}
	if got := s.p.Upstreams[0].Health.Snapshot().ErrorCount; got != 1 {
		t.Errorf("failing upstream error_count %d; want 1: it failed by itself", got)
	}
	if won := s.hedges(t, "won"); won != 1 {
		t.Errorf("hedges won %v; want 1", won)
	}
}

// TestHedgeNotForPost: a POST (not retried by the policy) is never hedged.
func TestHedgeNotForPost(t *testing.T) {
	var cancelled, unused atomic.Int32
	slow := slowUpstream(t, 200*time.Millisecond, "slow", &cancelled)
	fast := slowUpstream(t, 0, "fast", &unused)
	s := newHedgeServer(t, routecfg.Hedge{After: 10 * time.Millisecond, MaxExtra: 1, Window: 10 * time.Second}, false, slow.URL, fast.URL)
	s.firstTo(0)
	resp, body := proxytest.Do(t, s.client, "POST", s.url+"/x", strings.NewReader("order"), nil)
	if resp.StatusCode != 200 || body != "answer of slow" {
		t.Fatalf("got %d %q; want 200 from the slow upstream, unhedged", resp.StatusCode, body)
	}
	if fast.Hits.Load() != 0 || s.hedges(t, "sent") != 0 {
		t.Errorf("a POST was hedged: fast upstream got %d requests, %v hedges sent", fast.Hits.Load(), s.hedges(t, "sent"))
	}
}

// TestHedgeBudgetUnderSlowLoad: when every answer is late, hedges stay
// within the budget: max_extra of the requests over the window, plus its
// minimum of one a second (and at most one overshoot per concurrent
// request, the budget being checked without a lock).
func TestHedgeBudgetUnderSlowLoad(t *testing.T) {
	var unused atomic.Int32
	var ups []string
	var all []*proxytest.Upstream
	for range 3 {
		u := slowUpstream(t, 20*time.Millisecond, "slow", &unused)
		ups, all = append(ups, u.URL), append(all, u)
	}
	const maxExtra, window, requests, workers = 0.1, 10 * time.Second, 200, 8
	s := newHedgeServer(t, routecfg.Hedge{After: 2 * time.Millisecond, MaxExtra: maxExtra, Window: window}, true, ups...)
	before := runtime.NumGoroutine()
	var next atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= requests && time.Now().Before(deadline) {
				resp, body := proxytest.Get(t, s.client, s.url+"/x")
				if resp.StatusCode != 200 || body != "answer of slow" {
					t.Errorf("got %d %q; want 200", resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	hits := 0
	for _, u := range all {
		hits += int(u.Hits.Load())
	}
	extra := hits - requests
	limit := maxExtra*requests + hedgeMinPerSecond*window.Seconds() + workers
	sent := s.hedges(t, "sent")
	t.Logf("%d requests: %d upstream requests, %v hedges sent, %v refused by the budget", requests, hits, sent, s.hedges(t, "refused_budget"))
	if float64(extra) > limit || sent > limit {
		t.Errorf("%d extra upstream requests (%v hedges sent) for %d requests; want at most %v", extra, sent, requests, limit)
	}
	if sent < 0.75*maxExtra*requests || s.hedges(t, "refused_budget") == 0 {
		t.Errorf("hedges sent %v, refused %v; want about max_extra of the requests (%v) sent, and some refused, under a 100%% slow load",
			sent, s.hedges(t, "refused_budget"), maxExtra*requests)
	}
	waitHedgeGoroutines(t, s, before)
}

// TestHedgePercentileNeedsSamples: with after = p95, nothing is hedged
// before the window holds enough latencies; once it does, a request
// slower than the p95 is hedged.
func TestHedgePercentileNeedsSamples(t *testing.T) {
	var slowMode atomic.Bool
	var cancelled atomic.Int32
	a := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if slowMode.Load() {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				cancelled.Add(1)
				return
			}
		}
		io.WriteString(w, "a")
	})
	b := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	s := newHedgeServer(t, routecfg.Hedge{}, true, a.URL, b.URL) // after = p95 by default
	min := s.p.hedge.latencies.MinSamples()

	slowMode.Store(true) // the first request: slow, and not hedged for want of samples
	s.firstTo(0)
	if _, body := proxytest.Get(t, s.client, s.url+"/x"); body != "a" || s.hedges(t, "sent") != 0 {
		t.Fatalf("got %q with %v hedges before any latency was known; want the slow answer, unhedged", body, s.hedges(t, "sent"))
	}
	slowMode.Store(false)
	for range min {
		proxytest.Get(t, s.client, s.url+"/x")
	}
	if s.hedges(t, "sent") != 0 {
		t.Fatalf("%v hedges of fast requests; want none", s.hedges(t, "sent"))
	}
	slowMode.Store(true)
	s.firstTo(0)
	began := time.Now()
	if _, body := proxytest.Get(t, s.client, s.url+"/x"); body != "b" || time.Since(began) > 250*time.Millisecond {
		t.Fatalf("got %q after %v; want b's answer, hedged after the p95 of fast answers", body, time.Since(began))
	}
	if s.hedges(t, "sent") != 1 {
		t.Errorf("hedges sent %v; want 1", s.hedges(t, "sent"))
	}
}

// TestHedgeClientGone: a client that leaves while both attempts run ends
// both, and neither counts against its upstream.
func TestHedgeClientGone(t *testing.T) {
	var cancelled atomic.Int32
	a := slowUpstream(t, 5*time.Second, "a", &cancelled)
	b := slowUpstream(t, 5*time.Second, "b", &cancelled)
	s := newHedgeServer(t, routecfg.Hedge{After: 10 * time.Millisecond, MaxExtra: 1, Window: 10 * time.Second}, true, a.URL, b.URL)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		proxytest.Eventually(t, 5*time.Second, "both attempts", func() bool { return a.Hits.Load()+b.Hits.Load() == 2 })
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/x", nil)
	if resp, err := s.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d; want the request cancelled", resp.StatusCode)
	}
	proxytest.Eventually(t, 5*time.Second, "both attempts cancelled", func() bool { return cancelled.Load() == 2 })
	for _, u := range s.p.Upstreams {
		if snap := u.Health.Snapshot(); snap.ErrorCount != 0 {
			t.Errorf("%s: error_count %d after the client left; want 0", u.Display, snap.ErrorCount)
		}
	}
	waitHedgeGoroutines(t, s, before)
}

// TestHedgeAdmit: an upgrade is never hedged; other requests are, and
// count among the budget's requests.
func TestHedgeAdmit(t *testing.T) {
	hg := newHedger("p", routecfg.Hedge{After: time.Millisecond, MaxExtra: 0.5, Window: 10 * time.Second}, NewMetrics(prometheus.NewRegistry()))
	up := httptest.NewRequest("GET", "/providers/p/ws", nil)
	up.Header.Set("Upgrade", "websocket")
	if hg.admit(up) {
		t.Error("an upgrade request was admitted for hedging")
	}
	for range 40 {
		if !hg.admit(httptest.NewRequest("GET", "/providers/p/x", nil)) {
			t.Fatal("a GET was not admitted for hedging")
		}
	}
	n := 0
	for hg.budget.Take() && n < 1000 {
		n++
	}
	if n != 20 {
		t.Errorf("the budget allowed %d hedges after 40 requests at max_extra 0.5; want 20", n)
	}
}
