package provider

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/internal/healthcheck"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// checkProvider is provider pc (without an active check of its own) and
// a checker for it with hc, sending over http.Transport, with its metrics
// registered on a registry of their own.
type checkProvider struct {
	reg *prometheus.Registry
	m   *Metrics
}

func checkServer(t *testing.T, pc config.Provider, hc config.HealthCheck) (*checkProvider, *Provider, *healthcheck.Checker, *proxytest.LogBuffer) {
	t.Helper()
	log, logs := proxytest.CaptureLogs()
	pc.HealthCheck = nil
	cp := &checkProvider{reg: prometheus.NewRegistry()}
	cp.m = NewMetrics(cp.reg)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := New(proxytest.NormalizedProvider(pc), tr, Hooks{}, cp.m, log, nil)
	c := newChecker(p, hc, tr, cp.m, log)
	t.Cleanup(c.Stop)
	return cp, p, c, logs
}

func pingCheck() config.HealthCheck {
	return config.HealthCheck{Path: "/ping", Interval: 30 * time.Second, Timeout: 2 * time.Second, ExpectStatus: []int{200}}
}

func checksTotal(t *testing.T, s *checkProvider, id, result string) float64 {
	t.Helper()
	return proxytest.MetricValue(t, s.reg, "healproxy_health_checks_total", map[string]string{"provider": id, "result": result})
}

func TestProbeResults(t *testing.T) {
	up := proxytest.NewUpstream(t)
	dead := proxytest.DeadURL(t)
	pc := proxytest.Provider(t, "p", up.URL+"/api/v3?key=qsecret", dead+"/base?key=qsecret")
	pc.Headers = map[string]string{"Authorization": "Bearer hsecret", "X-Empty": ""}
	_, p, c, _ := checkServer(t, pc, pingCheck())
	const live, down = 0, 1 // the checker's targets: p's upstreams, in order
	ctx := context.Background()

	t.Run("pass", func(t *testing.T) {
		ok, f := c.Probe(ctx, live)
		if !ok || f != nil {
			t.Fatalf("probe = %v, %+v; want a pass", ok, f)
		}
		r := up.Last(t)
		if r.Method != http.MethodGet || r.RequestURI != "/api/v3/ping?key=qsecret" {
			t.Errorf("upstream got %s %s; want GET /api/v3/ping?key=qsecret", r.Method, r.RequestURI)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer hsecret" {
			t.Errorf("Authorization = %q; want the configured header", got)
		}
		if _, ok := r.Header["X-Empty"]; ok {
			t.Error("an empty configured header was sent")
		}
		if got := r.Header.Get("User-Agent"); got != healthcheck.UserAgent {
			t.Errorf("User-Agent = %q; want %q", got, healthcheck.UserAgent)
		}
	})

	t.Run("unexpected status", func(t *testing.T) {
		for _, code := range []int{503, 404, 204} {
			up.Code.Store(int32(code))
			ok, f := c.Probe(ctx, live)
			if ok || f == nil || f.Kind != breaker.KindStatus || f.StatusCode != code {
				t.Fatalf("status %d: probe = %v, %+v; want a status failure", code, ok, f)
			}
			wantClean(t, f.Message)
		}
		up.Code.Store(0)
	})

	t.Run("expected statuses", func(t *testing.T) {
		hc := pingCheck()
		hc.ExpectStatus = []int{200, 204}
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c2 := newChecker(p, hc, tr, nil, nil)
		up.Code.Store(204)
		defer up.Code.Store(0)
		if ok, f := c2.Probe(ctx, live); !ok {
			t.Fatalf("204 with expect_status [200, 204]: probe failed: %+v", f)
		}
	})

	t.Run("connect refused", func(t *testing.T) {
		ok, f := c.Probe(ctx, down)
		if ok || f == nil || f.Kind != breaker.KindConnect {
			t.Fatalf("probe = %v, %+v; want a connect failure", ok, f)
		}
		wantClean(t, f.Message)
	})

	t.Run("timeout", func(t *testing.T) {
		slow := proxytest.NewUpstream(t)
		slow.Hold()
		pc := proxytest.Provider(t, "slow", slow.URL+"?key=qsecret")
		hc := pingCheck()
		hc.Timeout = 100 * time.Millisecond
		_, _, sc, _ := checkServer(t, pc, hc)
		start := time.Now()
		ok, f := sc.Probe(ctx, 0)
		if ok || f == nil || f.Kind != breaker.KindTimeout {
			t.Fatalf("probe = %v, %+v; want a timeout", ok, f)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("probe took %v; want about the 100ms timeout", d)
		}
		wantClean(t, f.Message)
	})
}

// wantClean fails when a message shows a secret or a URL.
func wantClean(t *testing.T, msg string) {
	t.Helper()
	for _, bad := range []string{"qsecret", "hsecret", "?", "http://", "127.0.0.1"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message %q contains %q", msg, bad)
		}
	}
}

func TestProbePathJoin(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"/api/v3", "/ping", "/api/v3/ping"},
		{"/api/v3/", "/ping", "/api/v3/ping"},
		{"", "/ping", "/ping"},
		{"/api", "", "/api/"},
		{"/api", "health", "/api/health"},
		{"/api", "/a%20b", "/api/a%20b"},
		{"?k=v", "/ping?x=1", "/ping?k=v&x=1"},
	} {
		up := proxytest.NewUpstream(t)
		pc := proxytest.Provider(t, "j", up.URL+tc.base)
		hc := pingCheck()
		hc.Path = tc.path
		_, _, c, _ := checkServer(t, pc, hc)
		if ok, f := c.Probe(context.Background(), 0); !ok {
			t.Fatalf("base %q path %q: probe failed: %+v", tc.base, tc.path, f)
		}
		if got := up.Last(t).RequestURI; got != tc.want {
			t.Errorf("base %q path %q: upstream got %q; want %q", tc.base, tc.path, got, tc.want)
		}
	}
}

func TestHealthCheckEndsCooldown(t *testing.T) {
	up := proxytest.NewUpstream(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "cd", up.URL), 1, time.Hour, 2)
	s, p, c, logs := checkServer(t, pc, pingCheck())
	u := p.Upstreams[0]
	u.Health.Fail(&breaker.Failure{Kind: breaker.KindStatus, StatusCode: 503, Message: "user request failed"})
	if snap := u.Health.Snapshot(); !snap.InCooldown || snap.Status != breaker.Unavailable {
		t.Fatalf("after a failure with threshold 1: %v, in_cooldown %v; want unavailable in cooldown", snap.Status, snap.InCooldown)
	}

	up.Code.Store(503)
	c.Check(context.Background(), 0)
	if snap := u.Health.Snapshot(); !snap.InCooldown || snap.Status != breaker.Unavailable {
		t.Fatalf("after a failing probe: %v, in_cooldown %v; want still in cooldown", snap.Status, snap.InCooldown)
	}

	up.Code.Store(0)
	c.Check(context.Background(), 0)
	snap := u.Health.Snapshot()
	if snap.InCooldown || snap.Status != breaker.Degraded || !snap.HalfOpen {
		t.Fatalf("after a passing probe: %v, in_cooldown %v, half_open %v; want degraded, half-open, not in cooldown",
			snap.Status, snap.InCooldown, snap.HalfOpen)
	}
	if snap.LastProbe == nil || !snap.LastProbe.OK {
		t.Errorf("LastProbe = %+v; want the passing probe", snap.LastProbe)
	}
	if up.Hits.Load() != 2 {
		t.Errorf("upstream got %d requests; want the 2 probes only", up.Hits.Load())
	}
	if n := proxytest.MetricValue(t, s.reg, "healproxy_upstream_requests_total", map[string]string{"provider": "cd"}); n != 0 {
		t.Errorf("healproxy_upstream_requests_total = %v; want 0 (probes are not requests)", n)
	}
	if pass, fail := checksTotal(t, s, "cd", "pass"), checksTotal(t, s, "cd", "fail"); pass != 1 || fail != 1 {
		t.Errorf("healproxy_health_checks_total pass %v fail %v; want 1 and 1", pass, fail)
	}
	if !strings.Contains(logs.String(), "cooldown ended early") {
		t.Errorf("no log of the early end of the cooldown:\n%s", logs)
	}
}

func TestHealthCheckFailuresWhileClosed(t *testing.T) {
	up := proxytest.NewUpstream(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "cl", up.URL+"?key=qsecret"), 3, time.Hour, 1)
	pc.Headers = map[string]string{"Authorization": "Bearer hsecret"}
	s, p, c, logs := checkServer(t, pc, pingCheck())
	u := p.Upstreams[0]
	ctx := context.Background()

	up.Code.Store(500)
	for i := int64(1); i <= 2; i++ {
		c.Check(ctx, 0)
		if snap := u.Health.Snapshot(); snap.ErrorCount != i || snap.InCooldown {
			t.Fatalf("after %d failing probes: error_count %d, in_cooldown %v; want %d, not in cooldown", i, snap.ErrorCount, snap.InCooldown, i)
		}
	}
	c.Check(ctx, 0)
	snap := u.Health.Snapshot()
	if !snap.InCooldown || snap.Status != breaker.Unavailable {
		t.Fatalf("after 3 failing probes (threshold 3): %v, in_cooldown %v; want tripped", snap.Status, snap.InCooldown)
	}
	if snap.SuccessCount != 0 {
		t.Errorf("success_count = %d; want 0", snap.SuccessCount)
	}
	if n := proxytest.MetricValue(t, s.reg, "healproxy_upstream_requests_total", map[string]string{"provider": "cl"}); n != 0 {
		t.Errorf("healproxy_upstream_requests_total = %v; want 0", n)
	}
	if n := checksTotal(t, s, "cl", "fail"); n != 3 {
		t.Errorf("healproxy_health_checks_total{result=fail} = %v; want 3", n)
	}
	out := logs.String()
	if !strings.Contains(out, "health check failed") {
		t.Errorf("failures not logged at debug:\n%s", out)
	}
	for _, secret := range []string{"qsecret", "hsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs show secret %q:\n%s", secret, out)
		}
	}
}

func TestHealthCheckPassWhileDegraded(t *testing.T) {
	up := proxytest.NewUpstream(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "dg", up.URL), 4, time.Hour, 1)
	s, p, c, _ := checkServer(t, pc, pingCheck())
	u := p.Upstreams[0]
	u.Health.Reset() // called: healthy, not unknown
	for range 2 {
		u.Health.Fail(&breaker.Failure{Kind: breaker.KindStatus, StatusCode: 502, Message: "user request failed"})
	}
	if snap := u.Health.Snapshot(); snap.Status != breaker.Degraded || snap.ErrorCount != 2 {
		t.Fatalf("setup: %v with error_count %d; want degraded with 2", snap.Status, snap.ErrorCount)
	}
	c.Check(context.Background(), 0)
	snap := u.Health.Snapshot()
	if snap.ErrorCount != 1 || snap.Status != breaker.Healthy {
		t.Errorf("after a passing probe: %v with error_count %d; want healthy with 1", snap.Status, snap.ErrorCount)
	}
	if snap.SuccessCount != 0 {
		t.Errorf("success_count = %d; want 0 (probes never count as successes)", snap.SuccessCount)
	}
	if n := checksTotal(t, s, "dg", "pass"); n != 1 {
		t.Errorf("healproxy_health_checks_total{result=pass} = %v; want 1", n)
	}
	if n := proxytest.MetricValue(t, s.reg, "healproxy_upstream_requests_total", map[string]string{"provider": "dg"}); n != 0 {
		t.Errorf("healproxy_upstream_requests_total = %v; want 0", n)
	}
}

func TestHealthCheckLoopStartStop(t *testing.T) {
	a, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	pc := proxytest.Provider(t, "lp", a.URL, b.URL)
	hc := pingCheck()
	hc.Interval, hc.Timeout = 20*time.Millisecond, 20*time.Millisecond
	s, p, _, _ := checkServer(t, pc, hc)
	// A transport of the test's own, whose kept-alive connections (and
	// their goroutines) it can close.
	rt := &http.Transport{}
	t.Cleanup(rt.CloseIdleConnections)
	c := newChecker(p, hc, rt, s.m, proxytest.DiscardLogger())
	t.Cleanup(c.Stop)
	runtime.GC()
	base := runtime.NumGoroutine()

	c.Start()
	c.Start() // a second start does nothing
	// Wait on the recorded results, not on upstream hits: a probe that has
	// reached the upstream but not returned yet is cut short by stop and
	// never recorded.
	recorded := func(u string) float64 {
		return proxytest.MetricValue(t, s.reg, "healproxy_health_checks_total", map[string]string{"upstream": u, "result": "pass"})
	}
	proxytest.Eventually(t, 5*time.Second, "3 passed probes recorded for each upstream", func() bool {
		return recorded(a.URL) >= 3 && recorded(b.URL) >= 3
	})
	stopped := make(chan struct{})
	go func() { c.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("stop did not return within 2s")
	}
	c.Stop()  // idempotent
	c.Start() // no restart after stop
	rt.CloseIdleConnections()
	waitGoroutines(t, base)

	hits := a.Hits.Load() + b.Hits.Load()
	time.Sleep(3 * hc.Interval)
	if n := a.Hits.Load() + b.Hits.Load(); n != hits {
		t.Errorf("%d probes after stop", n-hits)
	}
	for _, u := range []string{a.URL, b.URL} {
		if n := proxytest.MetricValue(t, s.reg, "healproxy_health_checks_total", map[string]string{"upstream": u, "result": "pass"}); n < 3 {
			t.Errorf("healproxy_health_checks_total{upstream=%s} = %v; want at least 3", u, n)
		}
	}
}

// waitGoroutines waits until the goroutine count is back to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines; want at most %d:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An injected fault (chaos rehearsal) fails active health checks too, or
// passing checks would end the cooldown it caused.
func TestProbeSeesInjectedFault(t *testing.T) {
	up := proxytest.NewUpstream(t)
	_, p, c, _ := checkServer(t, proxytest.Provider(t, "p", up.URL), pingCheck())
	u := p.Upstreams[0]
	u.fault.Store(&fault.Fault{Kind: fault.KindError, Status: http.StatusServiceUnavailable, Percent: 100, Until: time.Now().Add(time.Minute)})
	hits := up.Hits.Load()
	if ok, f := c.Probe(context.Background(), 0); ok || f == nil {
		t.Fatalf("probe under an injected 503 = %v, %+v; want a failure", ok, f)
	}
	if up.Hits.Load() != hits {
		t.Error("the probe reached the upstream through an injected error fault")
	}
}
