package provider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/outlier"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// outlierRules: every rule on, judged from 10 requests, at most half of
// the upstreams out.
func outlierRules() *routecfg.OutlierDetection {
	return &routecfg.OutlierDetection{Interval: time.Hour, MinRequests: 10, FailurePercentage: 50,
		SuccessRateStdev: 1.9, LatencyFactor: 3, MaxEjectionPercent: 50}
}

// outlierProvider is provider "p" over handlers, one upstream each, with
// od, a health block that never trips on its own (threshold 10000) and no
// retries unless tweak says otherwise. The detector's loop is not started:
// tests call tick.
func outlierProvider(t *testing.T, od *routecfg.OutlierDetection, tweak func(*config.Provider), handlers ...http.HandlerFunc) (*Provider, []*proxytest.Upstream, *prometheus.Registry) {
	t.Helper()
	var ups []*proxytest.Upstream
	var urls []string
	for _, h := range handlers {
		u := proxytest.NewScriptedUpstream(t, h)
		ups = append(ups, u)
		urls = append(urls, u.URL)
	}
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", urls...), 10000, time.Minute, 1)
	pc.Retry.Attempts = 1
	pc.OutlierDetection = od
	if tweak != nil {
		tweak(&pc)
	}
	reg := prometheus.NewRegistry()
	tr := &http.Transport{MaxIdleConnsPerHost: 16} // no dial in a latency measured
	t.Cleanup(tr.CloseIdleConnections)
	p := New(proxytest.NormalizedProvider(pc), tr, Hooks{}, NewMetrics(reg), proxytest.DiscardLogger(), nil)
	t.Cleanup(p.StopChecks)
	return p, ups, reg
}

func okHandler(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }

func failHandler(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusInternalServerError)
}

func slowHandler(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		w.Write([]byte("slow but correct"))
	}
}

// send sends n GETs to p, 8 at a time.
func send(p *Provider, n int) {
	sem := make(chan struct{}, 8)
	done := make(chan struct{}, n)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			p.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/providers/p/price", nil))
		}()
	}
	for range n {
		<-done
	}
}

func statuses(p *Provider) []breaker.Status {
	var out []breaker.Status
	for _, u := range p.Upstreams {
		out = append(out, u.Health.Status())
	}
	return out
}

func ejectionsTotal(t *testing.T, reg *prometheus.Registry, rule string) float64 {
	t.Helper()
	return proxytest.MetricValue(t, reg, "healproxy_outlier_ejections_total", map[string]string{"provider": "p", "rule": rule})
}

func TestOutlierEjectionNeverExceedsTheCap(t *testing.T) {
	p, _, reg := outlierProvider(t, outlierRules(), nil, failHandler, okHandler, failHandler, failHandler)
	send(p, 80) // 20 each
	got := p.outlier.tick()
	if len(got) != 2 {
		t.Fatalf("got %d ejections %+v; want 2 (4 upstreams, 50%%)", len(got), got)
	}
	unavailable := 0
	for i, u := range p.Upstreams {
		s := u.Health.Snapshot()
		if s.Status != breaker.Unavailable {
			continue
		}
		unavailable++
		if i == 1 {
			t.Fatal("the good upstream was ejected")
		}
		if want := "ejected: failure percentage 100% of 20 requests ≥ 50%; cooling down until"; !strings.HasPrefix(s.Reason, want) {
			t.Fatalf("got reason %q; want it to start with %q", s.Reason, want)
		}
	}
	if unavailable != 2 || ejectionsTotal(t, reg, outlier.RuleFailurePercentage) != 2 {
		t.Fatalf("got %v, %v ejections counted; want 2 unavailable", statuses(p), ejectionsTotal(t, reg, outlier.RuleFailurePercentage))
	}
	// the next interval: the third bad one stays, the cap is reached
	send(p, 40)
	if got := p.outlier.tick(); len(got) != 0 {
		t.Fatalf("got ejections %+v with the cap reached; want none", got)
	}
}

func TestOutlierSlowUpstreamEjectedByLatencyAndBack(t *testing.T) {
	var slow atomic.Bool
	const delay = 150 * time.Millisecond
	maybeSlow := func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			slowHandler(delay)(w, r)
			return
		}
		okHandler(w, r)
	}
	p, ups, reg := outlierProvider(t, outlierRules(), func(pc *config.Provider) {
		pc.Health.Cooldown = 150 * time.Millisecond
		pc.Health.CooldownMultiplier, pc.Health.StablePeriod = 2, time.Hour
		pc.Retry.Attempts = 3 // a retryable GET: a recovering upstream gets its trials
	}, okHandler, maybeSlow, okHandler)
	send(p, 36) // connections made
	if got := p.outlier.tick(); len(got) != 0 {
		t.Fatalf("got ejections %+v; want none while every upstream is fast", got)
	}
	slow.Store(true)
	send(p, 36)
	got := p.outlier.tick()
	if len(got) != 1 || got[0].Index != 1 || got[0].Rule != outlier.RuleLatency {
		t.Fatalf("got ejections %+v; want the slow upstream by latency", got)
	}
	s := p.Upstreams[1].Health.Snapshot()
	if s.Status != breaker.Unavailable || !strings.HasPrefix(s.Reason, "ejected: p90 latency ") ||
		!strings.Contains(s.Reason, " > 3 × peers' median ") {
		t.Fatalf("got %v, reason %q; want ejected by its p90 latency", s.Status, s.Reason)
	}
	if ejectionsTotal(t, reg, outlier.RuleLatency) != 1 {
		t.Fatal("the ejection was not counted")
	}
	hits := ups[1].Hits.Load()
	send(p, 10)
	if ups[1].Hits.Load() != hits {
		t.Fatal("an ejected upstream was sent requests")
	}

	// after its cooldown, recovery trials bring it back (it still answers
	// correctly, slowly)
	proxytest.Eventually(t, 2*time.Second, "the end of the cooldown", func() bool {
		return p.Upstreams[1].Health.Status() != breaker.Unavailable
	})
	proxytest.Eventually(t, 5*time.Second, "recovery", func() bool {
		send(p, 4)
		return p.Upstreams[1].Health.Status() == breaker.Healthy
	})

	// still slow: ejected again, for a cooldown grown by the backoff
	p.outlier.tick()
	send(p, 36)
	if got := p.outlier.tick(); len(got) != 1 || got[0].Index != 1 {
		t.Fatalf("got ejections %+v; want the slow upstream again", got)
	}
	s = p.Upstreams[1].Health.Snapshot()
	if !strings.Contains(s.Reason, "trip 2 since it was last stable") {
		t.Fatalf("got reason %q; want the second trip's grown cooldown", s.Reason)
	}
	if left := time.Until(s.CooldownUntil); left <= 150*time.Millisecond || left > 300*time.Millisecond {
		t.Fatalf("got %v of cooldown left; want about 300ms (150ms × 2)", left)
	}

	// fast again: it stays in once back
	slow.Store(false)
	proxytest.Eventually(t, 5*time.Second, "recovery", func() bool {
		send(p, 4)
		return p.Upstreams[1].Health.Status() == breaker.Healthy
	})
	p.outlier.tick()
	send(p, 36)
	if got := p.outlier.tick(); len(got) != 0 {
		t.Fatalf("got ejections %+v of a fast upstream; want none", got)
	}
}

func TestOutlierSuccessRateAgainstPeers(t *testing.T) {
	var n atomic.Int64
	flaky := func(w http.ResponseWriter, r *http.Request) { // 2 in 5 fail
		if n.Add(1)%5 < 2 {
			failHandler(w, r)
			return
		}
		okHandler(w, r)
	}
	od := outlierRules()
	od.FailurePercentage, od.LatencyFactor = 0, 0 // the success-rate rule alone
	p, _, reg := outlierProvider(t, od, nil, okHandler, okHandler, flaky, okHandler, okHandler)
	send(p, 100)
	got := p.outlier.tick()
	if len(got) != 1 || got[0].Index != 2 || got[0].Rule != outlier.RuleSuccessRate {
		t.Fatalf("got ejections %+v; want the flaky upstream by success rate", got)
	}
	s := p.Upstreams[2].Health.Snapshot()
	if want := "ejected: success rate 60% of 20 requests < peers' mean 92% − 1.9 × stdev 16%"; !strings.HasPrefix(s.Reason, want) {
		t.Fatalf("got reason %q; want it to start with %q", s.Reason, want)
	}
	if ejectionsTotal(t, reg, outlier.RuleSuccessRate) != 1 {
		t.Fatal("the ejection was not counted")
	}
}

func TestOutlierNotBelowMinRequests(t *testing.T) {
	od := outlierRules()
	od.MinRequests = 30
	p, _, _ := outlierProvider(t, od, nil, okHandler, failHandler, okHandler)
	send(p, 60) // 20 each
	if got := p.outlier.tick(); len(got) != 0 {
		t.Fatalf("got ejections %+v below min_requests; want none", got)
	}
	send(p, 90) // 30 each, in a new interval
	if got := p.outlier.tick(); len(got) != 1 || got[0].Index != 1 {
		t.Fatalf("got ejections %+v; want the failing upstream", got)
	}
}

func TestOutlierOffCostsNothing(t *testing.T) {
	p, _, _ := outlierProvider(t, nil, nil, okHandler, failHandler)
	if p.outlier != nil || p.Upstreams[0].outlier != nil {
		t.Fatal("outlier detection built without its block")
	}
	p.StartChecks() // nil-safe
	send(p, 4)
	fn := func() (time.Duration, error) { return 0, nil }
	if allocs := testing.AllocsPerRun(100, func() { _ = p.Upstreams[0].observed(fn) }); allocs != 0 {
		t.Fatalf("observed allocates %v times when off; want 0", allocs)
	}
}

func TestOutlierReloadKeepsItWorking(t *testing.T) {
	var bad atomic.Bool
	maybeBad := func(w http.ResponseWriter, r *http.Request) {
		if bad.Load() {
			failHandler(w, r)
			return
		}
		okHandler(w, r)
	}
	p1, _, reg := outlierProvider(t, outlierRules(), nil, okHandler, maybeBad, okHandler)
	p1.StartChecks()
	send(p1, 30)

	// a reload that changes the block: a new provider keeping the upstreams'
	// health, its detector started, the old one stopped
	pc := p1.Config()
	od := *pc.OutlierDetection
	od.Interval, od.MinRequests = 100*time.Millisecond, 3 // a few requests per interval, however slow the machine
	pc.OutlierDetection = &od
	keep := map[string]*Upstream{}
	for _, u := range p1.Upstreams {
		keep[u.Target()] = u
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p2 := New(pc, tr, Hooks{}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), keep)
	t.Cleanup(p2.StopChecks)
	p1.StopChecks()
	p2.StartChecks()
	if p2.Upstreams[1].Health != p1.Upstreams[1].Health {
		t.Fatal("the reload did not keep the health entry")
	}

	bad.Store(true)
	proxytest.Eventually(t, 5*time.Second, "an ejection by the reloaded detector's own loop", func() bool {
		send(p2, 30)
		return p2.Upstreams[1].Health.Status() == breaker.Unavailable
	})
	if s := p2.Upstreams[1].Health.Snapshot(); !strings.HasPrefix(s.Reason, "ejected: failure percentage 100%") {
		t.Fatalf("got reason %q; want an ejection", s.Reason)
	}
	if ejectionsTotal(t, reg, outlier.RuleFailurePercentage) != 0 {
		t.Fatal("the stopped detector ejected")
	}
}

func TestOutlierEjectionIsAStatusChange(t *testing.T) {
	var got atomic.Value
	p, _, _ := outlierProvider(t, outlierRules(), nil, okHandler, failHandler, okHandler)
	// the hooks as the server gives them: every status change is an event
	p2 := New(p.Config(), &http.Transport{}, Hooks{Changed: func(id, upstream string, e *breaker.Entry, from, to breaker.Status) {
		if to == breaker.Unavailable {
			got.Store(id + " " + upstream + " " + from.String() + "->" + to.String() + ": " + e.Snapshot().Reason)
		}
	}}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), nil)
	t.Cleanup(p2.StopChecks)
	send(p2, 30)
	if d := p2.outlier.tick(); len(d) != 1 {
		t.Fatalf("got ejections %+v; want 1", d)
	}
	want := "p " + p2.Upstreams[1].Display + " healthy->unavailable: ejected: failure percentage 100% of 10 requests ≥ 50%"
	if s, _ := got.Load().(string); !strings.HasPrefix(s, want) {
		t.Fatalf("got change %q; want it to start with %q", s, want)
	}
}
