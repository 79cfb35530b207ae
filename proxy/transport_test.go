package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/proxytest"
)

func parseStamp(t *testing.T, what string, s *string) time.Time {
	t.Helper()
	if s == nil {
		t.Fatalf("%s is null; want a timestamp", what)
	}
	ts, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, *s, err)
	}
	if ts.Location() != time.UTC {
		t.Errorf("%s = %q; want UTC", what, *s)
	}
	return ts
}

// TestTransportHealthRows walks every row of the state machine's table
// (docs/behaviour.md) with real
// requests to one upstream: T=4 (degraded at 2), C=500ms, R=2.
func TestTransportHealthRows(t *testing.T) {
	up := proxytest.NewUpstream(t)
	const cooldown = 500 * time.Millisecond
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 4, cooldown, 2))
	c := ts.Client()

	check := func(t *testing.T, wantStatus string, wantErrors int64, wantCooldown bool) api.Provider {
		t.Helper()
		p := fetchProvider(t, ts.URL, "p")
		u := p.Upstreams[0]
		if u.Status != wantStatus || p.Status != wantStatus {
			t.Errorf("got status %s (upstream %s); want %s (reason %q)", p.Status, u.Status, wantStatus, u.Reason)
		}
		if u.ErrorCount != wantErrors {
			t.Errorf("got error_count %d; want %d", u.ErrorCount, wantErrors)
		}
		if u.InCooldown != wantCooldown || p.InCooldown != wantCooldown {
			t.Errorf("got in_cooldown %v (upstream %v); want %v", p.InCooldown, u.InCooldown, wantCooldown)
		}
		if (u.CooldownUntil != nil) != wantCooldown {
			t.Errorf("got cooldown_until %v; want set: %v", u.CooldownUntil, wantCooldown)
		}
		return p
	}
	call := func(t *testing.T, upstreamCode int32, wantCode int, wantHits int64) {
		t.Helper()
		up.Code.Store(upstreamCode)
		before := up.Hits.Load()
		resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
		if resp.StatusCode != wantCode {
			t.Errorf("got status %d; want %d (body %q)", resp.StatusCode, wantCode, body)
		}
		if g := up.Hits.Load() - before; g != wantHits {
			t.Errorf("got %d upstream requests; want %d", g, wantHits)
		}
	}

	t.Run("no call yet: unknown", func(t *testing.T) {
		check(t, "unknown", 0, false)
		h := fetchHealth(t, ts.URL)
		if g := h.Providers.Summary.Unknown; g != 1 {
			t.Errorf("got summary unknown %d; want 1", g)
		}
	})
	t.Run("success: healthy", func(t *testing.T) {
		call(t, 200, 200, 1)
		check(t, "healthy", 0, false)
	})
	t.Run("failure below T/2: healthy, error_count 1", func(t *testing.T) {
		call(t, 500, 500, 1)
		check(t, "healthy", 1, false)
	})
	t.Run("429 is a failure: degraded at T/2", func(t *testing.T) {
		call(t, 429, 429, 1)
		check(t, "degraded", 2, false)
	})
	t.Run("404 is a success: error_count -1", func(t *testing.T) {
		call(t, 404, 404, 1)
		check(t, "healthy", 1, false)
	})
	t.Run("success: error_count -1, not below 0", func(t *testing.T) {
		call(t, 200, 200, 1)
		check(t, "healthy", 0, false)
		call(t, 200, 200, 1)
		check(t, "healthy", 0, false)
	})
	t.Run("T failures: unavailable with a cooldown", func(t *testing.T) {
		for range 3 {
			call(t, 503, 503, 1)
		}
		check(t, "degraded", 3, false)
		call(t, 503, 503, 1)
		p := check(t, "unavailable", 4, true)
		until := parseStamp(t, "cooldown_until", p.CooldownUntil)
		if d := time.Until(until); d <= 0 || d > cooldown {
			t.Errorf("cooldown_until is %v from now; want within (0, %v]", d, cooldown)
		}
		h := fetchHealth(t, ts.URL)
		if h.Providers.Summary.Unavailable != 1 || h.Providers.Summary.InCooldown != 1 || h.Overall.ProvidersOK {
			t.Errorf("got summary %v, providers_ok %v; want 1 unavailable, 1 in_cooldown, providers_ok false", h.Providers.Summary, h.Overall.ProvidersOK)
		}
	})
	t.Run("in cooldown: 503, nothing sent", func(t *testing.T) {
		up.Code.Store(200)
		before := up.Hits.Load()
		resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
		if resp.StatusCode != 503 {
			t.Fatalf("got status %d; want 503", resp.StatusCode)
		}
		e := decodeError(t, body)
		if e.Status != "cooldown" || e.ProviderID != "p" || e.Error == "" || e.CooldownRemaining == nil {
			t.Errorf("got body %s; want status cooldown, provider_id p, an error and cooldown_remaining", body)
		} else if r := *e.CooldownRemaining; r <= 0 || r > cooldown.Seconds() {
			t.Errorf("got cooldown_remaining %v; want within (0, %v]", r, cooldown.Seconds())
		}
		if g, w := resp.Header.Get("Retry-After"), "1"; g != w {
			t.Errorf("got Retry-After %q; want %q", g, w)
		}
		if n := up.Hits.Load() - before; n != 0 {
			t.Errorf("upstream got %d requests during the cooldown; want 0", n)
		}
	})
	t.Run("cooldown over: half-open, shown degraded", func(t *testing.T) {
		proxytest.Eventually(t, 5*time.Second, "the cooldown to end", func() bool {
			return fetchProvider(t, ts.URL, "p").Status == "degraded"
		})
		check(t, "degraded", 4, false)
	})
	t.Run("a trial failure: exactly one request, unavailable again", func(t *testing.T) {
		call(t, 500, 500, 1)
		p := check(t, "unavailable", 5, true)
		if r := p.Upstreams[0].Reason; !strings.Contains(strings.ToLower(r), "trial") {
			t.Errorf("got reason %q; want it to name the failed trial", r)
		}
		call(t, 200, 503, 0)
	})
	t.Run("R trial successes: healthy, counters and cooldown cleared", func(t *testing.T) {
		proxytest.Eventually(t, 5*time.Second, "the cooldown to end", func() bool {
			return fetchProvider(t, ts.URL, "p").Status == "degraded"
		})
		call(t, 200, 200, 1)
		p := check(t, "degraded", 4, false) // success while not unavailable: −1, trials too
		if r := p.Upstreams[0].Recovery; r == nil || r.TrialSuccesses != 1 || r.TrialsNeeded != 2 {
			t.Errorf("got recovery %+v; want 1 of 2 trials", r)
		}
		call(t, 200, 200, 1)
		p = check(t, "healthy", 0, false)
		if p.Upstreams[0].Recovery != nil || p.Upstreams[0].NextTrialAt != nil {
			t.Errorf("got recovery %+v, next_trial_at %v; want neither once healthy", p.Upstreams[0].Recovery, p.Upstreams[0].NextTrialAt)
		}
	})
}

func TestTransportRetryAfterRoundsUp(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, 1500*time.Millisecond, 1))
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	if resp.StatusCode != 503 {
		t.Fatalf("got status %d; want 503", resp.StatusCode)
	}
	e := decodeError(t, body)
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || e.CooldownRemaining == nil {
		t.Fatalf("got Retry-After %q and body %s; want whole seconds and cooldown_remaining", resp.Header.Get("Retry-After"), body)
	}
	rem := *e.CooldownRemaining
	if rem <= 0 || rem > 1.5 {
		t.Errorf("got cooldown_remaining %v; want within (0, 1.5]", rem)
	}
	// rem is rounded to milliseconds; Retry-After is the exact value rounded up.
	if float64(ra) < rem-0.001 || float64(ra) >= math.Max(1, rem+1.001) {
		t.Errorf("got Retry-After %d for cooldown_remaining %v; want it rounded up", ra, rem)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int
	}{
		{0, 1},
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{1500 * time.Millisecond, 2},
		{299*time.Second + 200*time.Millisecond, 300},
		{-time.Second, 1},
	}
	for _, tt := range tests {
		if got := api.RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("api.RetryAfterSeconds(%v) = %d; want %d", tt.d, got, tt.want)
		}
	}
}

// TestTransportConcurrentTrials: after the cooldown at most R requests
// are sent at once; the others get 503 without reaching the upstream.
func TestTransportConcurrentTrials(t *testing.T) {
	const R = 2
	up := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, 200*time.Millisecond, R))
	c := ts.Client()
	up.Code.Store(500)
	proxytest.Get(t, c, ts.URL+"/providers/p/trip")
	proxytest.Eventually(t, 5*time.Second, "the cooldown to end", func() bool {
		return fetchProvider(t, ts.URL, "p").Status == "degraded"
	})
	up.Code.Store(200)
	up.Hold()
	defer up.Release()
	before := up.Hits.Load()

	type result struct {
		code       int
		retryAfter string
	}
	results := make(chan result, R+2)
	for range R + 2 {
		go func() {
			resp, err := c.Get(ts.URL + "/providers/p/trial")
			if err != nil {
				results <- result{code: -1}
				return
			}
			resp.Body.Close()
			results <- result{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	// The two refused requests answer while the trials are held.
	for range 2 {
		select {
		case r := <-results:
			if r.code != 503 || r.retryAfter == "" {
				t.Errorf("a request beyond the trials got %d (Retry-After %q); want 503 with Retry-After", r.code, r.retryAfter)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("timed out waiting for the requests beyond the trials")
		}
	}
	proxytest.Eventually(t, 5*time.Second, "R trials to reach the upstream", func() bool { return up.InFlight.Load() == R })
	up.Release()
	for range R {
		if r := <-results; r.code != 200 {
			t.Errorf("a trial got %d; want 200", r.code)
		}
	}
	if g := up.Hits.Load() - before; g != R {
		t.Errorf("upstream got %d trial requests; want %d", g, R)
	}
	if g := up.MaxInFlight.Load(); g > R {
		t.Errorf("upstream had %d requests at once; want at most %d", g, R)
	}
	if p := fetchProvider(t, ts.URL, "p"); p.Status != "healthy" || p.ErrorCount != 0 {
		t.Errorf("after %d trial successes got %s with error_count %d; want healthy, 0", R, p.Status, p.ErrorCount)
	}
}

func TestTransportTimeout(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Hold()
	defer up.Release()
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 3, time.Minute, 1)
	pc.Timeout = 100 * time.Millisecond
	_, ts := startProviders(t, pc)
	start := time.Now()
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/slow")
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("answer took %v; want about the 100ms timeout", el)
	}
	if g, w := resp.StatusCode, http.StatusGatewayTimeout; g != w {
		t.Errorf("got status %d; want %d", g, w)
	}
	if e := decodeError(t, body); e.Status != "error" || e.ProviderID != "p" || !strings.Contains(e.Error, "timed out") {
		t.Errorf("got body %s; want status error, provider_id p, a timeout message", body)
	}
	u := fetchProvider(t, ts.URL, "p").Upstreams[0]
	if u.ErrorCount != 1 || len(u.RecentFailures) != 1 || u.RecentFailures[0].Kind != "timeout" {
		t.Errorf("got error_count %d, recent_failures %+v; want one timeout failure", u.ErrorCount, u.RecentFailures)
	}
}

func TestTransportDeadUpstream(t *testing.T) {
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", proxytest.DeadURL(t)), 2, time.Minute, 1))
	for i, want := range []int{502, 502, 503} {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if resp.StatusCode != want {
			t.Errorf("request %d: got status %d; want %d (body %s)", i, resp.StatusCode, want, body)
		}
		if want == 502 {
			if e := decodeError(t, body); e.Status != "error" || e.ProviderID != "p" || e.Error == "" {
				t.Errorf("request %d: got body %s; want status error, provider_id p, a message", i, body)
			}
		}
	}
	u := fetchProvider(t, ts.URL, "p").Upstreams[0]
	if u.Status != "unavailable" || len(u.RecentFailures) == 0 || u.RecentFailures[0].Kind != "connect" {
		t.Errorf("got %s, recent_failures %+v; want unavailable after connect failures", u.Status, u.RecentFailures)
	}
}

func TestTransportFailover(t *testing.T) {
	tests := []struct {
		name   string
		broken []string // "dead" or "500"
	}{
		{"one dead of two", []string{"dead"}},
		{"one 500ing of two", []string{"500"}},
		{"dead and 500ing of three", []string{"dead", "500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := proxytest.NewUpstream(t)
			var ups []string
			for _, b := range tt.broken {
				if b == "dead" {
					ups = append(ups, proxytest.DeadURL(t))
					continue
				}
				bad := proxytest.NewUpstream(t)
				bad.Code.Store(500)
				ups = append(ups, bad.URL)
			}
			ups = append(ups, good.URL)
			_, ts := startProviders(t, proxytest.Provider(t, "p", ups...))
			for i := range 50 {
				if resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
					t.Fatalf("request %d: got status %d; want 200 (body %s)", i, resp.StatusCode, body)
				}
			}
			if g := good.Hits.Load(); g != 50 {
				t.Errorf("working upstream got %d requests; want 50", g)
			}
		})
	}
}

func TestTransportRetryOnlyIdempotent(t *testing.T) {
	bad := proxytest.NewUpstream(t)
	bad.Code.Store(500)
	good := proxytest.NewUpstream(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", bad.URL, good.URL), 1000, time.Minute, 1)
	_, ts := startProviders(t, pc)
	c := ts.Client()

	tests := []struct {
		method    string
		body      string
		wantRetry bool
	}{
		{"GET", "", true},
		{"HEAD", "", true},
		{"OPTIONS", "", true},
		{"DELETE", "", true},
		{"PUT", "", true},
		{"PUT", "with body", true}, // a small body is buffered and replayed (idempotent methods retry)
		{"POST", "", false},
		{"POST", "with body", false},
		{"PATCH", "with body", false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.body, func(t *testing.T) {
			const n = 8
			badBefore, goodBefore := bad.Hits.Load(), good.Hits.Load()
			var failures int
			for range n {
				var body *strings.Reader
				req, _ := http.NewRequest(tt.method, ts.URL+"/providers/p/x", nil)
				if tt.body != "" {
					body = strings.NewReader(tt.body)
					req, _ = http.NewRequest(tt.method, ts.URL+"/providers/p/x", body)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures++
					if resp.StatusCode != 500 {
						t.Errorf("got status %d; want 200 or the upstream's 500", resp.StatusCode)
					}
				}
			}
			badHits, goodHits := bad.Hits.Load()-badBefore, good.Hits.Load()-goodBefore
			if badHits == 0 {
				t.Fatalf("the failing upstream got no request; the test proves nothing")
			}
			if tt.wantRetry {
				if failures != 0 || goodHits != n {
					t.Errorf("got %d failures, %d requests to the working upstream; want 0 and %d (retried)", failures, goodHits, n)
				}
				return
			}
			if badHits+goodHits != n || int64(failures) != badHits {
				t.Errorf("got %d+%d upstream requests and %d failures; want %d requests in all, one per client request, and a 500 per failing-upstream request (not retried)",
					badHits, goodHits, failures, n)
			}
		})
	}
}

// TestTransportPrefersHealthy: a degraded upstream gets a small share of
// the requests while a healthy one exists.
func TestTransportPrefersHealthy(t *testing.T) {
	bad := proxytest.NewUpstream(t)
	bad.Code.Store(500)
	good := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", bad.URL, good.URL), 50, time.Minute, 1))
	c := ts.Client()
	proxytest.Eventually(t, 20*time.Second, "the failing upstream to degrade", func() bool {
		proxytest.Get(t, c, ts.URL+"/providers/p/x")
		return fetchProvider(t, ts.URL, "p").Upstreams[0].Status == "degraded"
	})
	const n = 160
	before := bad.Hits.Load()
	for i := range n {
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
			t.Fatalf("request %d: got status %d; want 200", i, resp.StatusCode)
		}
	}
	if g, limit := bad.Hits.Load()-before, int64(n/8); g > limit {
		t.Errorf("degraded upstream got %d of %d requests; want at most %d", g, n, limit)
	}
	if g := fetchProvider(t, ts.URL, "p").Upstreams[0].Status; g != "degraded" {
		t.Errorf("failing upstream is %s; want still degraded (the share must not trip it)", g)
	}
}

// TestTransportAllInCooldown: the 503 names the earliest end.
func TestTransportAllInCooldown(t *testing.T) {
	dead := proxytest.DeadURL(t)
	late := proxytest.NewUpstream(t)
	const cooldown = 3 * time.Second
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", dead, late.URL), 1, cooldown, 1))
	c := ts.Client()
	proxytest.Eventually(t, 5*time.Second, "the dead upstream to trip", func() bool {
		proxytest.Get(t, c, ts.URL+"/providers/p/x")
		return fetchProvider(t, ts.URL, "p").Upstreams[0].Status == "unavailable"
	})
	first := fetchProvider(t, ts.URL, "p")
	if first.Status != "degraded" || first.InCooldown || first.CooldownUntil != nil {
		t.Errorf("with one of two upstreams in cooldown got %s, in_cooldown %v, cooldown_until %v; want degraded, false, null",
			first.Status, first.InCooldown, first.CooldownUntil)
	}
	deadUntil := parseStamp(t, "dead upstream cooldown_until", first.Upstreams[0].CooldownUntil)
	proxytest.Eventually(t, 5*time.Second, "a gap between the two trips", func() bool { return time.Since(deadUntil.Add(-cooldown)) > 300*time.Millisecond })
	late.Code.Store(500)
	proxytest.Get(t, c, ts.URL+"/providers/p/x")

	p := fetchProvider(t, ts.URL, "p")
	if p.Status != "unavailable" || !p.InCooldown {
		t.Fatalf("got %s, in_cooldown %v; want unavailable, true", p.Status, p.InCooldown)
	}
	if g := parseStamp(t, "provider cooldown_until", p.CooldownUntil); !g.Equal(deadUntil) {
		t.Errorf("got provider cooldown_until %v; want the earliest, %v", g, deadUntil)
	}
	lateUntil := parseStamp(t, "late upstream cooldown_until", p.Upstreams[1].CooldownUntil)
	resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
	if resp.StatusCode != 503 {
		t.Fatalf("got status %d; want 503", resp.StatusCode)
	}
	e := decodeError(t, body)
	if e.CooldownRemaining == nil {
		t.Fatalf("got body %s; want cooldown_remaining", body)
	}
	rem := time.Duration(*e.CooldownRemaining * float64(time.Second))
	if rem > time.Until(deadUntil)+50*time.Millisecond || rem >= time.Until(lateUntil) {
		t.Errorf("got cooldown_remaining %v; want the dead upstream's %v, not the later %v", rem, time.Until(deadUntil), time.Until(lateUntil))
	}
}

func TestTransportProviderAggregation(t *testing.T) {
	t.Run("all unknown", func(t *testing.T) {
		_, ts := startProviders(t, proxytest.Provider(t, "p", proxytest.NewUpstream(t).URL, proxytest.NewUpstream(t).URL))
		if p := fetchProvider(t, ts.URL, "p"); p.Status != "unknown" || len(p.Upstreams) != 2 {
			t.Errorf("got %s with %d upstreams; want unknown with 2", p.Status, len(p.Upstreams))
		}
	})
	t.Run("unknown upstreams left out", func(t *testing.T) {
		_, ts := startProviders(t, proxytest.Provider(t, "p", proxytest.NewUpstream(t).URL, proxytest.NewUpstream(t).URL))
		proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		p := fetchProvider(t, ts.URL, "p")
		statuses := []string{p.Upstreams[0].Status, p.Upstreams[1].Status}
		if p.Status != "healthy" || p.SuccessCount != 1 {
			t.Errorf("with upstreams %v got %s, success_count %d; want healthy, 1", statuses, p.Status, p.SuccessCount)
		}
		if !(statuses[0] == "unknown") && !(statuses[1] == "unknown") {
			t.Errorf("got upstreams %v; want one unknown", statuses)
		}
	})
	t.Run("healthy and degraded: degraded, sums", func(t *testing.T) {
		bad := proxytest.NewUpstream(t)
		bad.Code.Store(500)
		_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", bad.URL, proxytest.NewUpstream(t).URL), 4, time.Minute, 1))
		proxytest.Eventually(t, 5*time.Second, "a degraded upstream", func() bool {
			proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
			return fetchProvider(t, ts.URL, "p").Upstreams[0].Status == "degraded"
		})
		p := fetchProvider(t, ts.URL, "p")
		u0, u1 := p.Upstreams[0], p.Upstreams[1]
		if p.Status != "degraded" || u1.Status != "healthy" {
			t.Errorf("got %s (upstreams %s, %s); want degraded (degraded, healthy)", p.Status, u0.Status, u1.Status)
		}
		if p.ErrorCount != u0.ErrorCount+u1.ErrorCount || p.SuccessCount != u0.SuccessCount+u1.SuccessCount {
			t.Errorf("got counts %d/%d; want the sums %d/%d", p.ErrorCount, p.SuccessCount,
				u0.ErrorCount+u1.ErrorCount, u0.SuccessCount+u1.SuccessCount)
		}
		if p.LastErrorMessage == nil || *p.LastErrorMessage != *u0.LastErrorMessage {
			t.Errorf("got last_error_message %v; want the failing upstream's %v", p.LastErrorMessage, u0.LastErrorMessage)
		}
		if p.InCooldown || p.CooldownUntil != nil {
			t.Errorf("got in_cooldown %v, cooldown_until %v; want false, null", p.InCooldown, p.CooldownUntil)
		}
	})
	t.Run("all unavailable", func(t *testing.T) {
		_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", proxytest.DeadURL(t), proxytest.DeadURL(t)), 1, time.Minute, 1))
		resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if resp.StatusCode != 502 {
			t.Errorf("got status %d; want 502", resp.StatusCode)
		}
		p := fetchProvider(t, ts.URL, "p")
		if p.Status != "unavailable" || !p.InCooldown || p.CooldownUntil == nil || p.ErrorCount != 2 {
			t.Errorf("got %s, in_cooldown %v, cooldown_until %v, error_count %d; want unavailable, true, set, 2",
				p.Status, p.InCooldown, p.CooldownUntil, p.ErrorCount)
		}
	})
}

// TestTransportClientCancel: a client that leaves while the upstream
// works is no failure.
func TestTransportClientCancel(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Hold()
	defer up.Release()
	s, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, time.Minute, 1))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/providers/p/x", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := ts.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	proxytest.Eventually(t, 5*time.Second, "the request to reach the upstream", func() bool { return up.InFlight.Load() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client got %v; want context.Canceled", err)
	}
	proxytest.Eventually(t, 5*time.Second, "the upstream request to end", func() bool { return up.InFlight.Load() == 0 })
	proxytest.Eventually(t, 5*time.Second, "the attempt to be counted as canceled", func() bool {
		return proxytest.MetricValue(t, s.metrics.reg, "healproxy_upstream_requests_total", map[string]string{"code": "canceled"}) == 1
	})
	u := fetchProvider(t, ts.URL, "p").Upstreams[0]
	if u.Status != "unknown" || u.ErrorCount != 0 || len(u.RecentFailures) != 0 {
		t.Errorf("got %s, error_count %d, failures %+v; want unknown, 0, none", u.Status, u.ErrorCount, u.RecentFailures)
	}
	up.Release()
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
		t.Errorf("next request got %d; want 200", resp.StatusCode)
	}
}

// TestTransportConcurrentMixed runs many requests at once against a
// flapping upstream pair under the race detector.
func TestTransportConcurrentMixed(t *testing.T) {
	bad := proxytest.NewUpstream(t)
	bad.Code.Store(502)
	good := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", bad.URL, good.URL), 3, 100*time.Millisecond, 2))
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 8 {
		wg.Go(func() {
			for range 40 {
				resp, err := ts.Client().Get(ts.URL + "/providers/p/x")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[200] != 320 {
		t.Errorf("got status counts %v; want all 320 requests 200", codes)
	}
}

// TestTransportUpgradeHeaderTimeout: a request asking for a protocol
// upgrade still gets the provider timeout until the upstream answers.
// Today an upgrade request gets no timeout at all, so a hung upstream
// holds it, and the breaker slot (a half-open trial slot too), for as long
// as the client waits.
func TestTransportUpgradeHeaderTimeout(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Hold()
	defer up.Release()
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 3, time.Minute, 1)
	pc.Timeout = 100 * time.Millisecond
	_, ts := startProviders(t, pc)
	c := &http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequest("GET", ts.URL+"/providers/p/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("got %v; want a 504 after the 100ms provider timeout", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("got status %d; want %d", resp.StatusCode, http.StatusGatewayTimeout)
	}
}

// TestTransportUpgradeOutlivesTimeout: an upgraded connection may live
// longer than the provider timeout, which bounds only the wait for the
// upstream's answer.
func TestTransportUpgradeOutlivesTimeout(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Timeout = 100 * time.Millisecond
	_, ts := startProviders(t, pc)

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /providers/p/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got status %d; want 101", resp.StatusCode)
	}
	time.Sleep(3 * pc.Timeout) // the point of the test: outlive the timeout
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Errorf("got %q, %v from the upgraded connection; want %q", line, err, "echo: hello\n")
	}
}
