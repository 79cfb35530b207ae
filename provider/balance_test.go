package provider

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// serveProvider serves pc (normalized here) on loopback; it returns the
// provider, its base URL and the metrics registry. before, if not nil,
// runs after New and before the first request.
func serveProvider(t *testing.T, pc config.Provider, before func(*Provider)) (*Provider, string, *prometheus.Registry) {
	t.Helper()
	pc = proxytest.NormalizedProvider(pc)
	reg := prometheus.NewRegistry()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := New(pc, tr, Hooks{}, NewMetrics(reg), proxytest.DiscardLogger(), nil)
	if before != nil {
		before(p)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return p, ts.URL + "/providers/" + pc.ID, reg
}

// getN sends n GETs one after the other, each expected to answer 200.
func getN(t *testing.T, url string, n int) {
	t.Helper()
	for i := range n {
		if resp, body := proxytest.Get(t, http.DefaultClient, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d %q; want 200", i, resp.StatusCode, body)
		}
	}
}

// delayed answers 200 after d (the upstream's own latency).
func delayed(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		w.Write([]byte("ok"))
	}
}

// TestLeastLatencyAvoidsTheSlowUpstream: with least_latency, a 100ms
// upstream among two fast ones gets few requests (round robin would give
// it a third).
func TestLeastLatencyAvoidsTheSlowUpstream(t *testing.T) {
	fast1, fast2 := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	slow := proxytest.NewScriptedUpstream(t, delayed(100*time.Millisecond))
	pc := proxytest.Provider(t, "p", fast1.URL, slow.URL, fast2.URL)
	pc.Balance = config.BalanceLeastLatency
	p, url, _ := serveProvider(t, pc, nil)
	const n = 60
	getN(t, url+"/x", n)
	t.Logf("requests: fast %d, slow %d, fast %d", fast1.Hits.Load(), slow.Hits.Load(), fast2.Hits.Load())
	if got := slow.Hits.Load(); got > n/10 {
		t.Errorf("the 100ms upstream got %d of %d requests; want at most %d (fast ones: %d, %d)",
			got, n, n/10, fast1.Hits.Load(), fast2.Hits.Load())
	}
	lat, inFlight, ok := p.Upstreams[1].Latency()
	if !ok || lat < 50*time.Millisecond || inFlight != 0 {
		t.Errorf("slow upstream's Latency() = %v, %d, %v; want about 100ms, 0 in flight", lat, inFlight, ok)
	}
	if _, _, ok := p.Upstreams[0].Latency(); !ok {
		t.Error("Latency() not ok with least_latency")
	}
}

// TestLeastLatencyCountsInFlight: two upstreams of the same latency,
// one of which holds every request it gets: once it holds some, new
// requests go to the other (round robin would split them; latency alone
// would send it nearly all, its estimate decaying while nothing returns).
func TestLeastLatencyCountsInFlight(t *testing.T) {
	busy, idle := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	busy.Hold()
	pc := proxytest.Provider(t, "p", busy.URL, idle.URL)
	pc.Balance = config.BalanceLeastLatency
	pc.Retry.Attempts = 1
	_, url, _ := serveProvider(t, pc, nil)
	const n = 30
	done := make(chan struct{}, n)
	var answered atomic.Int64
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			resp, err := http.Get(url + "/x")
			if err == nil {
				resp.Body.Close()
				answered.Add(1)
			}
		}()
		// the request is answered (idle: its attempt has ended) or held
		// (busy) before the next
		proxytest.Eventually(t, 5*time.Second, "request answered or held", func() bool {
			return answered.Load()+busy.InFlight.Load() == int64(i+1)
		})
	}
	// Each held request adds the upstream's whole latency to its cost;
	// a hiccup of the other (a peak) may win it one or two more.
	if got := busy.Hits.Load(); got > 5 {
		t.Errorf("the upstream holding its requests got %d of %d; want at most 5 (without counting requests in flight it gets nearly all: held requests teach no latency)", got, n)
	}
	busy.Release()
	for range n {
		<-done
	}
}

// TestWeightsSplitTraffic: weights 3:1:1 give 60/20/20.
func TestWeightsSplitTraffic(t *testing.T) {
	ups := []*proxytest.Upstream{proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t)}
	pc := proxytest.Provider(t, "p", ups[0].URL, ups[1].URL, ups[2].URL)
	pc.Weights = []int{3, 1, 1}
	_, url, _ := serveProvider(t, pc, nil)
	getN(t, url+"/x", 100)
	for i, want := range []int64{60, 20, 20} {
		if got := ups[i].Hits.Load(); got < want-3 || got > want+3 {
			t.Errorf("upstream %d (weight %d) got %d of 100; want %d±3", i, pc.Weights[i], got, want)
		}
	}
}

// TestRanksWinOverBalancing: a degraded upstream gets nothing while a
// healthy one serves, whatever its weight or latency.
func TestRanksWinOverBalancing(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Provider)
	}{
		{"weights", func(pc *config.Provider) { pc.Weights = []int{1, 10} }},
		{"least_latency", func(pc *config.Provider) { pc.Balance = config.BalanceLeastLatency }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow := proxytest.NewScriptedUpstream(t, delayed(20*time.Millisecond))
			degraded := proxytest.NewUpstream(t)
			pc := proxytest.Provider(t, "p", slow.URL, degraded.URL)
			pc.Retry.Attempts = 1 // not retryable: no degraded share
			tc.set(&pc)
			p, url, _ := serveProvider(t, pc, nil)
			p.Upstreams[1].Health.Fail(&breaker.Failure{Kind: breaker.KindStatus, StatusCode: 500, Message: "test"})
			if s := p.Upstreams[1].Health.Status(); s != breaker.Degraded {
				t.Fatalf("status after a failure = %v; want degraded", s)
			}
			getN(t, url+"/x", 12)
			if got := degraded.Hits.Load(); got != 0 {
				t.Errorf("the degraded upstream got %d of 12 requests; want 0", got)
			}
		})
	}
}

// BenchmarkPick is choosing an upstream of three: round robin (the
// default, which must stay as cheap as it was), weights and least_latency.
//
//	go test -run '^$' -bench Pick -benchmem ./provider/
func BenchmarkPick(b *testing.B) {
	for _, bc := range []struct {
		name string
		set  func(*config.Provider)
	}{
		{"round_robin", func(*config.Provider) {}},
		{"weights", func(pc *config.Provider) { pc.Weights = []int{3, 1, 1} }},
		{"least_latency", func(pc *config.Provider) { pc.Balance = config.BalanceLeastLatency }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pc := proxytest.Provider(b, "p", "http://a.test", "http://b.test", "http://c.test")
			bc.set(&pc)
			pc = proxytest.NormalizedProvider(pc)
			p := New(pc, http.DefaultTransport, Hooks{}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), nil)
			b.ReportAllocs()
			for b.Loop() {
				if i, _ := p.pick(p.rr.Add(1), 0, true); i < 0 {
					b.Fatal("no upstream")
				}
			}
		})
	}
}

// TestLatencyKeptOnReload: an upstream kept by a reload keeps its latency
// estimate; a provider that does not balance by latency has none.
func TestLatencyKeptOnReload(t *testing.T) {
	pc := proxytest.Provider(t, "p", "http://a.test", "http://b.test")
	pc.Balance = config.BalanceLeastLatency
	pc = proxytest.NormalizedProvider(pc)
	m := NewMetrics(prometheus.NewRegistry())
	old := New(pc, http.DefaultTransport, Hooks{}, m, proxytest.DiscardLogger(), nil)
	p := New(pc, http.DefaultTransport, Hooks{}, m, proxytest.DiscardLogger(), map[string]*Upstream{"http://a.test": old.Upstreams[0]})
	if p.Upstreams[0].ewma != old.Upstreams[0].ewma {
		t.Error("the kept upstream lost its latency estimate")
	}
	if p.Upstreams[1].ewma == nil || p.Upstreams[1].ewma == old.Upstreams[1].ewma {
		t.Error("the new upstream has no estimate of its own")
	}
	pc.Balance = ""
	rr := New(pc, http.DefaultTransport, Hooks{}, m, proxytest.DiscardLogger(), nil)
	if _, _, ok := rr.Upstreams[0].Latency(); ok || rr.balancer != nil {
		t.Error("round robin measures latency")
	}
}

// TestPickNoAllocs: choosing an upstream allocates nothing, whatever the
// policy, with quota steering on.
func TestPickNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Provider)
	}{
		{"round_robin", func(*config.Provider) {}},
		{"weights", func(pc *config.Provider) { pc.Weights = []int{3, 1, 1} }},
		{"least_latency", func(pc *config.Provider) { pc.Balance = config.BalanceLeastLatency }},
		{"quota", func(pc *config.Provider) { pc.Quota = &routecfg.Quota{Reserve: 0.1} }},
	} {
		pc := proxytest.Provider(t, "p", "http://a.test", "http://b.test", "http://c.test")
		tc.set(&pc)
		pc = proxytest.NormalizedProvider(pc)
		p := New(pc, http.DefaultTransport, Hooks{}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), nil)
		if a := testing.AllocsPerRun(1000, func() { p.pick(p.rr.Add(1), 0, true) }); a != 0 {
			t.Errorf("%s: pick allocates %v times; want 0", tc.name, a)
		}
	}
}

// TestRoundRobinSpreadsAnOutUpstreamsTurns: with one upstream of three
// out, round robin shares its turns between both peers, not only the one
// after it in the list (which would carry two thirds of the load).
func TestRoundRobinSpreadsAnOutUpstreamsTurns(t *testing.T) {
	ups := []*proxytest.Upstream{proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t)}
	pc := proxytest.Provider(t, "p", ups[0].URL, ups[1].URL, ups[2].URL)
	pc.Retry.Attempts = 1
	p, url, _ := serveProvider(t, pc, nil)
	p.Upstreams[1].Health.ForceOpen(time.Time{}, "test: out")
	getN(t, url+"/x", 100)
	if got := ups[1].Hits.Load(); got != 0 {
		t.Fatalf("the upstream forced open got %d requests", got)
	}
	for _, i := range []int{0, 2} {
		if got := ups[i].Hits.Load(); got < 49 || got > 51 {
			t.Errorf("upstream %d got %d of 100; want its half, 50±1", i, got)
		}
	}
}
