package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// End-to-end tests of the resilience features (README, "Resilience
// settings (per provider)": rate-limit
// pauses, retry budget and backoff, retried methods, cooldown backoff, slow
// calls, stale-if-error, the all-down order, shadow mode and active health
// checks), through real HTTP: loopback upstreams, a Server behind
// httptest.NewServer, and the health document and metrics as a client
// reads them.

// answer is a handler answering code with the header pairs and a body
// naming the request.
func answer(code int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		io.WriteString(w, "answer "+strconv.Itoa(code)+" for "+r.URL.Path)
	}
}

// resUpstreams reads the upstreams of provider id from the health document.
// within fails unless lo <= got <= hi.
func within(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Errorf("%s = %s; want between %s and %s (now+%v … now+%v)", what, got.Format(time.RFC3339Nano),
			lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano), time.Until(lo).Round(time.Millisecond), time.Until(hi).Round(time.Millisecond))
	}
}

// retryAfter is the whole seconds of a Retry-After header.
func retryAfter(t *testing.T, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("got Retry-After %q; want whole seconds", v)
	}
	return n
}

// resProvider is a provider with explicit health and retry settings.
func resProvider(t *testing.T, id string, h config.Health, r config.Retry, upstreams ...string) config.Provider {
	t.Helper()
	pc := proxytest.Provider(t, id, upstreams...)
	pc.Health = h
	pc.Retry = r
	return pc
}

// noTrip is a health block that a test's failures never trip.
var noTrip = config.Health{ErrorThreshold: 1_000_000, Cooldown: time.Minute, RecoveryCount: 1}

// ---- 1. Rate limits ----

// TestResilienceRateLimitSingleUpstream: a 429 (or 503) saying when to come
// back reaches the client once; then the upstream is paused until then,
// without a failure counted, and the client gets 503 with an accurate
// Retry-After while no request reaches the upstream.
func TestResilienceRateLimitSingleUpstream(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		header   func(now time.Time) (string, string)
		maxPause time.Duration
		lo, hi   time.Duration // the pause, from before the request to after it
		wantRA   [2]int        // bounds of the 503's Retry-After
		resume   bool          // also wait for the pause to end
	}{
		{name: "Retry-After seconds", code: 429, header: func(time.Time) (string, string) { return "Retry-After", "2" },
			lo: 2 * time.Second, hi: 2 * time.Second, wantRA: [2]int{1, 2}, resume: true},
		{name: "Retry-After HTTP date", code: 429, header: func(now time.Time) (string, string) {
			return "Retry-After", now.Add(3 * time.Second).UTC().Format(http.TimeFormat)
		}, lo: 2 * time.Second, hi: 3 * time.Second, wantRA: [2]int{2, 3}},
		{name: "503 with Retry-After", code: 503, header: func(time.Time) (string, string) { return "Retry-After", "2" },
			lo: 2 * time.Second, hi: 2 * time.Second, wantRA: [2]int{1, 2}},
		{name: "X-RateLimit-Reset delta seconds", code: 429, header: func(time.Time) (string, string) { return "X-RateLimit-Reset", "2" },
			lo: 2 * time.Second, hi: 2 * time.Second, wantRA: [2]int{1, 2}},
		{name: "X-RateLimit-Reset Unix time", code: 429, header: func(now time.Time) (string, string) {
			return "X-RateLimit-Reset", strconv.FormatInt(now.Unix()+3, 10)
		}, lo: 2 * time.Second, hi: 3 * time.Second, wantRA: [2]int{2, 3}},
		{name: "max_rate_limit_pause caps", code: 429, header: func(time.Time) (string, string) { return "Retry-After", "86400" },
			maxPause: time.Second, lo: time.Second, hi: time.Second, wantRA: [2]int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				k, v := tt.header(time.Now())
				answer(tt.code, k, v)(w, r)
			})
			pc := resProvider(t, "p", config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
			pc.MaxRateLimitPause = tt.maxPause
			_, ts := startProviders(t, pc)
			c := ts.Client()

			t0 := time.Now()
			resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x")
			t1 := time.Now()
			if resp.StatusCode != tt.code {
				t.Fatalf("first request: got status %d; want the upstream's %d", resp.StatusCode, tt.code)
			}
			u := upstreamAt(t, ts.URL, "p", 0)
			paused := parseStamp(t, "paused_until", u.PausedUntil)
			// paused_until has whole seconds when it comes from a date.
			within(t, "paused_until", paused, t0.Add(tt.lo).Add(-time.Second), t1.Add(tt.hi))
			if tt.lo == tt.hi {
				within(t, "paused_until", paused, t0.Add(tt.lo), t1.Add(tt.hi))
			}
			if !strings.HasPrefix(u.Reason, "rate_limited") {
				t.Errorf("reason %q; want it to start with rate_limited", u.Reason)
			}
			if u.Status != "unavailable" {
				t.Errorf("status %q while paused; want unavailable", u.Status)
			}
			if u.ErrorCount != 0 || len(u.RecentFailures) != 0 || u.InCooldown {
				t.Errorf("error_count %d, recent_failures %v, in_cooldown %v; want 0, none, false: a rate limit is no failure",
					u.ErrorCount, u.RecentFailures, u.InCooldown)
			}

			for range 3 {
				// The server computes what is left after the request is
				// sent: at most the pause's end less the time of sending
				// (and a few milliseconds of stamp rounding), however slow the machine.
				sent := time.Now()
				resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
				if resp.StatusCode != 503 {
					t.Fatalf("during the pause: got status %d (%s); want 503", resp.StatusCode, body)
				}
				if ra := retryAfter(t, resp); ra < tt.wantRA[0] || ra > tt.wantRA[1] {
					t.Errorf("during the pause: got Retry-After %d; want %d…%d", ra, tt.wantRA[0], tt.wantRA[1])
				}
				if e := decodeError(t, body); e.CooldownRemaining == nil || *e.CooldownRemaining <= 0 ||
					*e.CooldownRemaining > paused.Sub(sent).Seconds()+0.005 {
					t.Errorf("during the pause: cooldown_remaining %v; want (0, %v]", e.CooldownRemaining, paused.Sub(sent).Seconds())
				}
			}
			if n := int(up.Hits.Load()); n != 1 {
				t.Errorf("upstream got %d requests; want only the first during the pause", n)
			}
			if !tt.resume {
				return
			}

			up.Set(answer(200))
			proxytest.Eventually(t, tt.hi+3*time.Second, "a 200 after the pause", func() bool {
				resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x")
				return resp.StatusCode == 200
			})
			hits := up.Requests()
			if len(hits) != 2 {
				t.Fatalf("upstream got %d requests; want 2 (one before, one after the pause)", len(hits))
			}
			if hits[1].At.Before(paused) {
				t.Errorf("a request reached the upstream at %s, before paused_until %s", hits[1].At.Format(time.RFC3339Nano), paused.Format(time.RFC3339Nano))
			}
			if u := upstreamAt(t, ts.URL, "p", 0); u.PausedUntil != nil || u.Status != "healthy" || u.ErrorCount != 0 {
				t.Errorf("after the pause: paused_until %v, status %q, error_count %d; want none, healthy, 0", u.PausedUntil, u.Status, u.ErrorCount)
			}
		})
	}
}

// TestResilienceRateLimitPauseExtends: of two rate-limit signals that
// arrive during one pause, a longer one extends it, a shorter one does not
// shorten it. Both requests are held in the upstream until the test lets
// each answer in turn.
func TestResilienceRateLimitPauseExtends(t *testing.T) {
	for _, tt := range []struct {
		name       string
		first, sec int // Retry-After seconds
		wantRA     int
	}{
		{"longer extends", 1, 3, 3},
		{"shorter keeps", 3, 1, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gates := map[string]chan struct{}{"/a": make(chan struct{}), "/b": make(chan struct{})}
			var arrived atomic.Int32
			up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				arrived.Add(1)
				select {
				case <-gates[r.URL.Path]:
				case <-r.Context().Done():
					return
				}
				answer(429, "Retry-After", r.URL.Query().Get("ra"))(w, r)
			})
			t.Cleanup(func() {
				for _, g := range gates {
					select {
					case <-g:
					default:
						close(g)
					}
				}
			})
			_, ts := startProviders(t, resProvider(t, "p", noTrip, config.Retry{Attempts: 1}, up.URL))
			c := ts.Client()
			codes := map[string]chan int{"/a": make(chan int, 1), "/b": make(chan int, 1)}
			send := func(path string, ra int) {
				go func() {
					resp, err := c.Get(ts.URL + "/providers/p" + path + "?ra=" + strconv.Itoa(ra))
					if err != nil {
						codes[path] <- -1
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[path] <- resp.StatusCode
				}()
			}
			send("/a", tt.first)
			send("/b", tt.sec)
			proxytest.Eventually(t, 5*time.Second, "both requests at the upstream", func() bool { return arrived.Load() == 2 })

			close(gates["/a"])
			if code := <-codes["/a"]; code != 429 {
				t.Fatalf("first: got status %d; want 429", code)
			}
			p1 := parseStamp(t, "paused_until after the first", upstreamAt(t, ts.URL, "p", 0).PausedUntil)
			close(gates["/b"])
			if code := <-codes["/b"]; code != 429 {
				t.Fatalf("second: got status %d; want 429", code)
			}
			u := upstreamAt(t, ts.URL, "p", 0)
			p2 := parseStamp(t, "paused_until after the second", u.PausedUntil)
			if tt.sec > tt.first {
				if d := p2.Sub(p1); d < time.Duration(tt.sec-tt.first)*time.Second-500*time.Millisecond {
					t.Errorf("paused_until moved by %v; want extended by about %ds", d, tt.sec-tt.first)
				}
			} else if !p2.Equal(p1) {
				t.Errorf("paused_until changed from %s to %s; a shorter signal must not shorten the pause", p1, p2)
			}
			if want := "Retry-After: " + strconv.Itoa(max(tt.first, tt.sec)); !strings.Contains(u.Reason, want) {
				t.Errorf("reason %q; want it to name the signal in force, %q", u.Reason, want)
			}
			resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/c")
			if resp.StatusCode != 503 {
				t.Fatalf("during the pause: got %d; want 503", resp.StatusCode)
			}
			if ra := retryAfter(t, resp); ra < tt.wantRA-1 || ra > tt.wantRA {
				t.Errorf("Retry-After %d; want %d or just under", ra, tt.wantRA)
			}
			if n := int(up.Hits.Load()); n != 2 {
				t.Errorf("upstream got %d requests; want 2", n)
			}
		})
	}
}

// TestResilienceRateLimitTwoUpstreams: a 429 with Retry-After on one
// upstream is retried on the other, so the client gets 200, and the paused
// upstream gets no traffic while the pause lasts.
func TestResilienceRateLimitTwoUpstreams(t *testing.T) {
	limited := proxytest.NewScriptedUpstream(t, answer(429, "Retry-After", "30"))
	ok := proxytest.NewScriptedUpstream(t, answer(200))
	_, ts := startProviders(t, resProvider(t, "p", noTrip, config.Retry{Attempts: 2, Budget: 1}, limited.URL, ok.URL))
	c := ts.Client()
	const n = 20
	for i := range n {
		resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: got status %d (%s); want 200", i, resp.StatusCode, body)
		}
	}
	if got := int(limited.Hits.Load()); got != 1 {
		t.Errorf("the rate-limited upstream got %d requests; want exactly 1 (none during its pause)", got)
	}
	if got := int(ok.Hits.Load()); got != n {
		t.Errorf("the other upstream got %d requests; want %d", got, n)
	}
	u := upstreamAt(t, ts.URL, "p", 0)
	if u.PausedUntil == nil || !strings.HasPrefix(u.Reason, "rate_limited") || u.ErrorCount != 0 {
		t.Errorf("rate-limited upstream: paused_until %v, reason %q, error_count %d; want a pause, rate_limited, 0", u.PausedUntil, u.Reason, u.ErrorCount)
	}
}

// TestResilienceRateLimitPauseNoBackoff: a rate-limit pause does not count
// as a trip for the cooldown backoff: the first trip after a pause cools
// down for the base cooldown.
func TestResilienceRateLimitPauseNoBackoff(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, answer(429, "Retry-After", "1"))
	h := config.Health{ErrorThreshold: 1, Cooldown: 300 * time.Millisecond, RecoveryCount: 1,
		CooldownMultiplier: 2, MaxCooldown: 2 * time.Second, StablePeriod: 10 * time.Second}
	_, ts := startProviders(t, resProvider(t, "p", h, config.Retry{Attempts: 1}, up.URL))
	c := ts.Client()
	for round := range 2 { // two pauses in a row
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 429 {
			t.Fatalf("round %d: got %d; want 429", round, resp.StatusCode)
		}
		proxytest.Eventually(t, 4*time.Second, "the pause to end", func() bool {
			u := upstreamAt(t, ts.URL, "p", 0)
			return u.PausedUntil == nil && u.Status != "unavailable"
		})
	}
	up.Set(answer(500))
	t0 := time.Now()
	if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 500 {
		t.Fatalf("got %d; want the upstream's 500", resp.StatusCode)
	}
	t1 := time.Now()
	u := upstreamAt(t, ts.URL, "p", 0)
	if !u.InCooldown {
		t.Fatalf("not in cooldown after a 500 with threshold 1: %+v", u)
	}
	within(t, "cooldown_until", parseStamp(t, "cooldown_until", u.CooldownUntil), t0.Add(300*time.Millisecond), t1.Add(300*time.Millisecond))
	if strings.Contains(u.Reason, "grown") {
		t.Errorf("reason %q; the pauses must not grow the cooldown", u.Reason)
	}
}

// ---- 2. Retry budget and backoff ----

// TestResilienceRetryBudget: with every upstream failing, retries stay
// within the budget (a share of the requests, or the minimum), and the
// refused retries are counted.
func TestResilienceRetryBudget(t *testing.T) {
	a, b := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(500))
	r := config.Retry{Attempts: 2, Budget: 0.2, BudgetWindow: 10 * time.Second, MinRetries: 1}
	s, ts := startProviders(t, resProvider(t, "p", noTrip, r, a.URL, b.URL))
	c := ts.Client()
	const n = 200
	start := time.Now()
	for i := range n {
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 500 {
			t.Fatalf("request %d: got %d; want the upstreams' 500", i, resp.StatusCode)
		}
	}
	if time.Since(start) > 9*time.Second {
		t.Skipf("%d requests took %v, more than the budget window: the bound below does not apply", n, time.Since(start))
	}
	retries := int(a.Hits.Load()) + int(b.Hits.Load()) - n
	// A retry is made while retries < max(budget × requests, min_retries × window).
	limit := max(int(r.Budget*n), r.MinRetries*int(r.BudgetWindow/time.Second))
	t.Logf("%d requests, %d retries (limit %d)", n, retries, limit)
	if retries > limit {
		t.Errorf("%d retries for %d requests; want at most %d (budget %.0f%%)", retries, n, limit, 100*r.Budget)
	}
	if retries < limit/2 {
		t.Errorf("%d retries for %d requests; want close to the budget %d", retries, n, limit)
	}
	refused := proxytest.MetricValue(t, s.metrics.reg, "healproxy_retry_budget_exhausted_total", map[string]string{"provider": "p"})
	if int(refused) != n-retries {
		t.Errorf("healproxy_retry_budget_exhausted_total = %v; want %d (each request not retried for lack of budget)", refused, n-retries)
	}
}

// TestResilienceRetryBudgetConcurrent: under concurrent load at the edge
// of the budget every client still gets the upstream's own failure answer
// (never a 502 of healproxy's for a retry the budget then refused), the
// retries stay near the budget, and each request not retried is counted.
func TestResilienceRetryBudgetConcurrent(t *testing.T) {
	a, b := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(500))
	r := config.Retry{Attempts: 2, Budget: 0.2, BudgetWindow: 10 * time.Second, MinRetries: 1}
	s, ts := startProviders(t, resProvider(t, "p", noTrip, r, a.URL, b.URL))
	const workers, each = 16, 25
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range each {
				code := -1
				if resp, err := ts.Client().Get(ts.URL + "/providers/p/x"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if time.Since(start) > 9*time.Second {
		t.Skipf("the requests took %v, more than the budget window", time.Since(start))
	}
	const n = workers * each
	if codes[500] != n {
		t.Errorf("answers by status %v; want all %d to be the upstreams' own 500", codes, n)
	}
	retries := int(a.Hits.Load()) + int(b.Hits.Load()) - n
	limit := max(int(r.Budget*n), r.MinRetries*int(r.BudgetWindow/time.Second))
	t.Logf("%d requests, %d retries (limit %d), answers %v", n, retries, limit, codes)
	if retries > limit+workers { // check-then-take may overshoot by one per worker
		t.Errorf("%d retries for %d requests; want at most about %d", retries, n, limit)
	}
	refused := proxytest.MetricValue(t, s.metrics.reg, "healproxy_retry_budget_exhausted_total", map[string]string{"provider": "p"})
	if int(refused) != n-retries {
		t.Errorf("healproxy_retry_budget_exhausted_total = %v; want %d (each request not retried for lack of budget)", refused, n-retries)
	}
}

// TestResilienceRetryBackoff: with a backoff, retries go to the other
// upstream after a (jittered) wait. Only the count is exact; the spacing
// is checked as a loose lower bound on the sum of the waits.
func TestResilienceRetryBackoff(t *testing.T) {
	a, b := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(500))
	r := config.Retry{Attempts: 2, Backoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Budget: 1}
	_, ts := startProviders(t, resProvider(t, "p", noTrip, r, a.URL, b.URL))
	c := ts.Client()
	const n = 20
	for i := range n {
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/r"+strconv.Itoa(i)); resp.StatusCode != 500 {
			t.Fatalf("request %d: got %d; want 500", i, resp.StatusCode)
		}
	}
	var total time.Duration
	for i := range n {
		path := "/r" + strconv.Itoa(i)
		var at []time.Time
		for _, u := range []*proxytest.Upstream{a, b} {
			k := 0
			for _, h := range u.Requests() {
				if h.RequestURI == path {
					at = append(at, h.At)
					k++
				}
			}
			if k != 1 {
				t.Errorf("%s: upstream %s got it %d times; want once (one try, one retry on the other)", path, u.URL, k)
			}
		}
		if len(at) == 2 {
			total += max(at[1].Sub(at[0]), at[0].Sub(at[1]))
		}
	}
	// 20 waits drawn from [0, 20ms] sum to about 200ms; below 50ms is
	// all but impossible (p < 1e-6) with the backoff, certain without.
	if total < 50*time.Millisecond {
		t.Errorf("the %d retries followed their tries by %v in all; want the backoff to space them (expected ~%v)", n, total, n*10*time.Millisecond)
	}
	t.Logf("sum of the gaps between try and retry: %v", total)
}

// ---- 3. Retried methods and bodies ----

func TestResilienceRetryMethods(t *testing.T) {
	post := func(t *testing.T, c *http.Client, u string, body io.Reader) (int, string) {
		t.Helper()
		resp, b := proxytest.Do(t, c, http.MethodPost, u, body, nil)
		return resp.StatusCode, b
	}
	// gets is how many times u got a request with that body.
	gets := func(u *proxytest.Upstream, body string) int {
		n := 0
		for _, h := range u.Requests() {
			if h.Body == body {
				n++
			}
		}
		return n
	}

	t.Run("POST not retried by default", func(t *testing.T) {
		bad, good := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(200))
		_, ts := startProviders(t, resProvider(t, "p", noTrip, config.Retry{Attempts: 2, Budget: 1}, bad.URL, good.URL))
		var failed int
		for i := range 4 {
			body := "post-" + strconv.Itoa(i)
			code, _ := post(t, ts.Client(), ts.URL+"/providers/p/x", strings.NewReader(body))
			if code == 500 {
				failed++
			}
			if n := gets(bad, body) + gets(good, body); n != 1 {
				t.Errorf("%s reached the upstreams %d times; want once (POST is not retried)", body, n)
			}
		}
		if failed == 0 {
			t.Errorf("no POST got the failing upstream's 500; want the ones sent there to fail")
		}
	})

	t.Run("POST retried when listed, body intact", func(t *testing.T) {
		bad, good := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(200))
		r := config.Retry{Attempts: 2, Budget: 1, Methods: []string{"GET", "POST"}}
		_, ts := startProviders(t, resProvider(t, "p", noTrip, r, bad.URL, good.URL))
		for i := range 4 {
			body := `{"order":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat("x", 1000) + `"}`
			var rd io.Reader = strings.NewReader(body)
			if i%2 == 1 {
				rd = io.MultiReader(rd) // unknown length: sent chunked
			}
			if code, got := post(t, ts.Client(), ts.URL+"/providers/p/x", rd); code != 200 {
				t.Fatalf("POST %d: got %d (%s); want 200 after a retry", i, code, got)
			}
			if n := gets(good, body); n != 1 {
				t.Errorf("POST %d: the working upstream got the exact body %d times; want once", i, n)
			}
		}
		if n := int(bad.Hits.Load()); n == 0 || gets(bad, "") != 0 {
			t.Errorf("the failing upstream got %d requests (%d with an empty body); want some, each with its body", n, gets(bad, ""))
		}
		for _, h := range bad.Requests() {
			if gets(good, h.Body) != 1 {
				t.Errorf("the failing upstream got a body the working one did not get intact: %.40q…", h.Body)
			}
		}
	})

	t.Run("body over 64 KiB not retried", func(t *testing.T) {
		bad, good := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(200))
		r := config.Retry{Attempts: 2, Budget: 1, Methods: []string{"GET", "POST"}}
		_, ts := startProviders(t, resProvider(t, "p", noTrip, r, bad.URL, good.URL))
		for i, chunked := range []bool{false, false, true, true} {
			body := strconv.Itoa(i) + ":" + strings.Repeat("0123456789abcdef", (100<<10)/16)
			var rd io.Reader = strings.NewReader(body)
			if chunked {
				rd = io.MultiReader(rd)
			}
			code, _ := post(t, ts.Client(), ts.URL+"/providers/p/big", rd)
			nb, ng := gets(bad, body), gets(good, body)
			switch {
			case nb+ng != 1:
				t.Errorf("large POST %d (chunked %v) arrived intact %d times at the failing upstream and %d at the working one; want once in all",
					i, chunked, nb, ng)
			case nb == 1 && code != 500:
				t.Errorf("large POST %d (chunked %v) went to the failing upstream; got %d, want its 500 (no retry)", i, chunked, code)
			case ng == 1 && code != 200:
				t.Errorf("large POST %d (chunked %v) went to the working upstream; got %d, want 200", i, chunked, code)
			}
		}
		if int(bad.Hits.Load()) == 0 {
			t.Errorf("no large POST went to the failing upstream; the test proves nothing")
		}
		if n := int(bad.Hits.Load()) + int(good.Hits.Load()); n != 4 {
			t.Errorf("the upstreams got %d requests for 4 large POSTs; want 4", n)
		}
	})
}

// ---- 4. Cooldown backoff ----

func TestResilienceCooldownBackoff(t *testing.T) {
	setup := func(t *testing.T, stable time.Duration) (*proxytest.Upstream, *httptest.Server) {
		up := proxytest.NewScriptedUpstream(t, answer(200))
		h := config.Health{ErrorThreshold: 1, Cooldown: 300 * time.Millisecond, RecoveryCount: 1,
			CooldownMultiplier: 2, MaxCooldown: 2 * time.Second, StablePeriod: stable}
		_, ts := startProviders(t, resProvider(t, "p", h, config.Retry{Attempts: 1}, up.URL))
		return up, ts
	}
	// trip makes the upstream fail once and checks the cooldown it starts.
	trip := func(t *testing.T, up *proxytest.Upstream, ts *httptest.Server, want time.Duration) api.Upstream {
		t.Helper()
		up.Set(answer(500))
		t0 := time.Now()
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 500 {
			t.Fatalf("got %d; want the upstream's 500", resp.StatusCode)
		}
		t1 := time.Now()
		u := upstreamAt(t, ts.URL, "p", 0)
		if !u.InCooldown {
			t.Fatalf("not in cooldown after a 500 with threshold 1: %+v", u)
		}
		within(t, "cooldown_until for a cooldown of "+want.String(), parseStamp(t, "cooldown_until", u.CooldownUntil), t0.Add(want), t1.Add(want))
		return u
	}
	// recoverTrial waits for the cooldown to end and lets a trial succeed.
	recoverTrial := func(t *testing.T, up *proxytest.Upstream, ts *httptest.Server, d time.Duration) time.Time {
		t.Helper()
		up.Set(answer(200))
		proxytest.Eventually(t, d+3*time.Second, "the cooldown to end", func() bool { return !upstreamAt(t, ts.URL, "p", 0).InCooldown })
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
			t.Fatalf("trial: got %d; want 200", resp.StatusCode)
		}
		done := time.Now()
		if u := upstreamAt(t, ts.URL, "p", 0); u.Status != "healthy" {
			t.Fatalf("after a successful trial with recovery 1: status %q; want healthy", u.Status)
		}
		return done
	}

	t.Run("grows and caps", func(t *testing.T) {
		t.Parallel()
		up, ts := setup(t, 10*time.Second)
		if u := trip(t, up, ts, 300*time.Millisecond); strings.Contains(u.Reason, "grown") {
			t.Errorf("first trip: reason %q; want no growth yet", u.Reason)
		}
		for _, want := range []time.Duration{600 * time.Millisecond, 1200 * time.Millisecond, 2 * time.Second} {
			recoverTrial(t, up, ts, want)
			u := trip(t, up, ts, want)
			if !strings.Contains(u.Reason, "grown") || !strings.Contains(u.Reason, "×2") {
				t.Errorf("cooldown %v: reason %q; want it to say the cooldown grew ×2", want, u.Reason)
			}
		}
	})

	t.Run("resets after the stable period", func(t *testing.T) {
		t.Parallel()
		const stable = 300 * time.Millisecond
		up, ts := setup(t, stable)
		trip(t, up, ts, 300*time.Millisecond)
		recoverTrial(t, up, ts, 300*time.Millisecond)
		trip(t, up, ts, 600*time.Millisecond)
		recovered := recoverTrial(t, up, ts, 600*time.Millisecond)
		// Nothing to poll: the entry must stay closed for the stable period.
		proxytest.Eventually(t, 2*time.Second, "the stable period to pass", func() bool { return time.Since(recovered) > stable+50*time.Millisecond })
		if u := trip(t, up, ts, 300*time.Millisecond); strings.Contains(u.Reason, "grown") {
			t.Errorf("after a stable period: reason %q; want the base cooldown again", u.Reason)
		}
	})
}

// ---- 5. Slow calls ----

// slowAnswer answers 200 after d (or when the client leaves).
func slowAnswer(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		answer(200)(w, r)
	}
}

func TestResilienceSlowCalls(t *testing.T) {
	t.Run("counted as failures, trip", func(t *testing.T) {
		t.Parallel()
		up := proxytest.NewScriptedUpstream(t, slowAnswer(300*time.Millisecond))
		pc := resProvider(t, "p", config.Health{ErrorThreshold: 2, Cooldown: time.Minute, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
		pc.SlowCallThreshold = 100 * time.Millisecond
		_, ts := startProviders(t, pc)
		c := ts.Client()
		resp, body := proxytest.Get(t, c, ts.URL+"/providers/p/x")
		if resp.StatusCode != 200 || body != "answer 200 for /x" {
			t.Fatalf("slow call: got %d %q; want the upstream's 200", resp.StatusCode, body)
		}
		u := upstreamAt(t, ts.URL, "p", 0)
		if u.ErrorCount != 1 || len(u.RecentFailures) != 1 || u.RecentFailures[0].Kind != "slow" {
			t.Fatalf("after one slow call: error_count %d, recent_failures %+v; want 1 of kind slow", u.ErrorCount, u.RecentFailures)
		}
		if f := u.RecentFailures[0]; f.StatusCode != 200 || !strings.Contains(f.Message, "slow_call_threshold") {
			t.Errorf("slow failure %+v; want status 200 and a message naming slow_call_threshold", f)
		}
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
			t.Fatalf("second slow call: got %d; want 200", resp.StatusCode)
		}
		if u := upstreamAt(t, ts.URL, "p", 0); u.Status != "unavailable" || !u.InCooldown {
			t.Fatalf("after error_threshold slow calls: status %q, in_cooldown %v; want unavailable in cooldown", u.Status, u.InCooldown)
		}
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 503 {
			t.Errorf("after the trip: got %d; want 503", resp.StatusCode)
		}
		if n := int(up.Hits.Load()); n != 2 {
			t.Errorf("upstream got %d requests; want 2", n)
		}
	})

	t.Run("routed around", func(t *testing.T) {
		t.Parallel()
		slow := proxytest.NewScriptedUpstream(t, slowAnswer(300*time.Millisecond))
		fast := proxytest.NewScriptedUpstream(t, answer(200))
		h := config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1}
		pc := resProvider(t, "p", h, config.Retry{Attempts: 2, Budget: 1}, slow.URL, fast.URL)
		pc.SlowCallThreshold = 100 * time.Millisecond
		_, ts := startProviders(t, pc)
		const n = 40
		for i := range n {
			if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
				t.Fatalf("request %d: got %d; want 200", i, resp.StatusCode)
			}
		}
		// The slow one is degraded after its first slow call, so the fast
		// one is preferred; it can get at most error_threshold calls before
		// it trips.
		if got := int(slow.Hits.Load()); got < 1 || got > h.ErrorThreshold {
			t.Errorf("the slow upstream got %d of %d requests; want 1…%d", got, n, h.ErrorThreshold)
		}
		if got := int(fast.Hits.Load()); got < n-h.ErrorThreshold {
			t.Errorf("the fast upstream got %d of %d requests; want at least %d", got, n, n-h.ErrorThreshold)
		}
		if u := upstreamAt(t, ts.URL, "p", 0); u.Status == "healthy" || u.ErrorCount == 0 && !u.InCooldown {
			t.Errorf("slow upstream: status %q, error_count %d; want it marked down", u.Status, u.ErrorCount)
		}
	})
}

// ---- 6. Stale-if-error ----

func TestResilienceStaleIfError(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, nil)
	var failing atomic.Bool
	up.Set(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case failing.Load():
			answer(500)(w, r)
		case r.URL.Path == "/nostore":
			answer(200, "Cache-Control", "no-store")(w, r)
		default:
			answer(200)(w, r)
		}
	})
	pc := resProvider(t, "p", config.Health{ErrorThreshold: 6, Cooldown: time.Minute, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
	pc.Cache = &config.Cache{StaleIfError: 5 * time.Minute, MaxEntries: 100, MaxBodyBytes: 1 << 20}
	s, ts := startProviders(t, pc)
	c := ts.Client()
	base := ts.URL + "/providers/p"

	for _, path := range []string{"/price", "/nostore"} {
		resp, body := proxytest.Get(t, c, base+path)
		if resp.StatusCode != 200 || resp.Header.Get("X-Healproxy-Stale") != "" {
			t.Fatalf("GET %s while up: got %d, stale %q; want a fresh 200", path, resp.StatusCode, resp.Header.Get("X-Healproxy-Stale"))
		}
		_ = body
	}
	if resp, _ := proxytest.Do(t, c, http.MethodPost, base+"/post", strings.NewReader("x"), nil); resp.StatusCode != 200 {
		t.Fatalf("POST while up: got %d; want 200", resp.StatusCode)
	}

	wantStale := func(t *testing.T, when string) {
		t.Helper()
		resp, body := proxytest.Get(t, c, base+"/price")
		if resp.StatusCode != 200 || body != "answer 200 for /price" {
			t.Fatalf("%s: got %d %q; want the kept 200", when, resp.StatusCode, body)
		}
		if g := resp.Header.Get("Warning"); !strings.HasPrefix(g, "110 ") {
			t.Errorf("%s: Warning %q; want 110 …", when, g)
		}
		if g := resp.Header.Get("X-Healproxy-Stale"); g != "true" {
			t.Errorf("%s: X-Healproxy-Stale %q; want true", when, g)
		}
		if age, err := strconv.Atoi(resp.Header.Get("Age")); err != nil || age < 0 || age > 60 {
			t.Errorf("%s: Age %q; want whole seconds since the answer was kept", when, resp.Header.Get("Age"))
		}
	}

	t.Run("upstream answers 500", func(t *testing.T) {
		failing.Store(true)
		wantStale(t, "500")
		for _, tc := range []struct{ method, path string }{{"GET", "/nostore"}, {"POST", "/post"}, {"GET", "/never"}} {
			resp, body := proxytest.Do(t, c, tc.method, base+tc.path, strings.NewReader(""), nil)
			if resp.StatusCode != 500 || resp.Header.Get("X-Healproxy-Stale") != "" {
				t.Errorf("%s %s with the upstream failing: got %d %q (stale %q); want the upstream's 500, never a stale copy",
					tc.method, tc.path, resp.StatusCode, body, resp.Header.Get("X-Healproxy-Stale"))
			}
		}
	})

	t.Run("upstream unreachable, then in cooldown", func(t *testing.T) {
		up.Close()
		wantStale(t, "unreachable")
		for i := 0; !upstreamAt(t, ts.URL, "p", 0).InCooldown; i++ {
			if i == 10 {
				t.Fatal("the unreachable upstream did not trip")
			}
			wantStale(t, "unreachable")
		}
		wantStale(t, "cooldown")
		for _, tc := range []struct{ method, path string }{{"GET", "/nostore"}, {"POST", "/post"}, {"GET", "/never"}} {
			resp, body := proxytest.Do(t, c, tc.method, base+tc.path, strings.NewReader(""), nil)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s %s in cooldown: got %d %q (Retry-After %q); want 503 with Retry-After",
					tc.method, tc.path, resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
		}
	})
	if n := proxytest.MetricValue(t, s.metrics.reg, "healproxy_all_down_total", map[string]string{"provider": "p", "step": "stale"}); n < 4 {
		t.Errorf("healproxy_all_down_total{step=stale} = %v; want at least 4", n)
	}
}

// ---- 7. All-down order ----

func TestResilienceAllDown(t *testing.T) {
	trip1 := config.Health{ErrorThreshold: 1, Cooldown: time.Minute, RecoveryCount: 1}

	t.Run("last resort", func(t *testing.T) {
		t.Parallel()
		a, b := proxytest.NewScriptedUpstream(t, answer(500)), proxytest.NewScriptedUpstream(t, answer(500))
		lr := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "last resort") })
		pc := resProvider(t, "p", trip1, config.Retry{Attempts: 2, Budget: 1}, a.URL, b.URL)
		pc.AllDown.LastResort = mustURL(t, lr.URL)
		s, ts := startProviders(t, pc)
		for i := range 3 {
			resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
			if resp.StatusCode != 200 || body != "last resort" {
				t.Fatalf("request %d: got %d %q; want the last resort's 200", i, resp.StatusCode, body)
			}
		}
		for i, u := range fetchProvider(t, ts.URL, "p").Upstreams {
			if !u.InCooldown {
				t.Errorf("upstream %d not in cooldown: %+v", i, u)
			}
		}
		if int(a.Hits.Load()) != 1 || int(b.Hits.Load()) != 1 || int(lr.Hits.Load()) != 3 {
			t.Errorf("requests: %d, %d, last resort %d; want 1, 1, 3", int(a.Hits.Load()), int(b.Hits.Load()), int(lr.Hits.Load()))
		}
		if n := proxytest.MetricValue(t, s.metrics.reg, "healproxy_all_down_total", map[string]string{"provider": "p", "step": "last_resort"}); n != 3 {
			t.Errorf("healproxy_all_down_total{step=last_resort} = %v; want 3", n)
		}
	})

	t.Run("order fail ignores the cache", func(t *testing.T) {
		t.Parallel()
		up := proxytest.NewScriptedUpstream(t, answer(200))
		pc := resProvider(t, "p", trip1, config.Retry{Attempts: 1}, up.URL)
		pc.Cache = &config.Cache{StaleIfError: 5 * time.Minute, MaxEntries: 100, MaxBodyBytes: 1 << 20}
		pc.AllDown.Order = []string{"fail"}
		_, ts := startProviders(t, pc)
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
			t.Fatalf("got %d; want 200", resp.StatusCode)
		}
		up.Set(answer(500))
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 500 || resp.Header.Get("X-Healproxy-Stale") != "" {
			t.Fatalf("failing: got %d (stale %q); want the upstream's 500", resp.StatusCode, resp.Header.Get("X-Healproxy-Stale"))
		}
		resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if resp.StatusCode != 503 || resp.Header.Get("X-Healproxy-Stale") != "" {
			t.Fatalf("in cooldown: got %d (stale %q); want 503", resp.StatusCode, resp.Header.Get("X-Healproxy-Stale"))
		}
		if ra := retryAfter(t, resp); ra < 59 || ra > 60 {
			t.Errorf("Retry-After %d; want the cooldown's 60", ra)
		}
	})

	t.Run("wait for a recovery within the bound", func(t *testing.T) {
		t.Parallel()
		up := proxytest.NewScriptedUpstream(t, answer(500))
		pc := resProvider(t, "p", config.Health{ErrorThreshold: 1, Cooldown: 400 * time.Millisecond, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
		pc.AllDown.Wait = time.Second
		s, ts := startProviders(t, pc)
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 500 {
			t.Fatalf("got %d; want the upstream's 500", resp.StatusCode)
		}
		up.Set(answer(200))
		u := upstreamAt(t, ts.URL, "p", 0)
		if !u.InCooldown {
			t.Fatalf("not in cooldown: %+v", u)
		}
		until := parseStamp(t, "cooldown_until", u.CooldownUntil)
		resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		done := time.Now()
		if resp.StatusCode != 200 {
			t.Fatalf("got %d; want 200 after waiting for the cooldown to end", resp.StatusCode)
		}
		if done.Before(until) {
			t.Errorf("answered at %s, before the cooldown ended at %s", done.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
		}
		if int(up.Hits.Load()) != 2 {
			t.Errorf("upstream got %d requests; want 2", int(up.Hits.Load()))
		}
		if n := proxytest.MetricValue(t, s.metrics.reg, "healproxy_all_down_total", map[string]string{"provider": "p", "step": "wait"}); n != 1 {
			t.Errorf("healproxy_all_down_total{step=wait} = %v; want 1", n)
		}
	})

	t.Run("no wait for a cooldown longer than the bound", func(t *testing.T) {
		t.Parallel()
		up := proxytest.NewScriptedUpstream(t, answer(500))
		pc := resProvider(t, "p", config.Health{ErrorThreshold: 1, Cooldown: 30 * time.Second, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
		pc.AllDown.Wait = time.Second
		_, ts := startProviders(t, pc)
		proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		start := time.Now()
		resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if took := time.Since(start); took >= pc.AllDown.Wait {
			t.Errorf("the 503 took %v; want it at once, not after waiting", took)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("got %d; want 503", resp.StatusCode)
		}
		if ra := retryAfter(t, resp); ra < 29 || ra > 30 {
			t.Errorf("Retry-After %d; want the cooldown's 30", ra)
		}
		if int(up.Hits.Load()) != 1 {
			t.Errorf("upstream got %d requests; want 1", int(up.Hits.Load()))
		}
	})
}

// ---- 8. Shadow mode ----

func TestResilienceShadowObserve(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, answer(500))
	pc := resProvider(t, "p", config.Health{ErrorThreshold: 2, Cooldown: time.Minute, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
	pc.Mode = config.ModeObserve
	s, ts := startProviders(t, pc)
	const n = 6
	for i := range n {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if resp.StatusCode != 500 || body != "answer 500 for /x" {
			t.Fatalf("request %d: got %d %q; want the upstream's own 500, never healproxy's 503", i, resp.StatusCode, body)
		}
	}
	if int(up.Hits.Load()) != n {
		t.Errorf("upstream got %d requests; want every one of %d", int(up.Hits.Load()), n)
	}
	u := upstreamAt(t, ts.URL, "p", 0)
	if u.Status != "unavailable" || !u.InCooldown {
		t.Errorf("health: status %q, in_cooldown %v; want unavailable in cooldown (tracked, not enforced)", u.Status, u.InCooldown)
	}
	if p := fetchProvider(t, ts.URL, "p"); p.Status != "unavailable" {
		t.Errorf("provider status %q; want unavailable", p.Status)
	}
	if v := proxytest.MetricValue(t, s.metrics.reg, "healproxy_health_transitions_total", map[string]string{"kind": "provider", "key": "p", "to": "unavailable"}); v < 1 {
		t.Errorf("healproxy_health_transitions_total{to=unavailable} = %v; want at least 1", v)
	}
	if v := proxytest.MetricValue(t, s.metrics.reg, "healproxy_upstream_requests_total", map[string]string{"provider": "p", "code": "500"}); v != n {
		t.Errorf("healproxy_upstream_requests_total{code=500} = %v; want %d", v, n)
	}

	up.Set(answer(200))
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
		t.Errorf("upstream answering again while shown unavailable: got %d; want its 200", resp.StatusCode)
	}
}

// ---- 9. Active health checks ----

func TestResilienceProbeEndsCooldown(t *testing.T) {
	var pingOK atomic.Bool
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/ping":
			answer(500)(w, r)
		case pingOK.Load():
			answer(200)(w, r)
		default:
			answer(503)(w, r)
		}
	})
	pc := resProvider(t, "p", config.Health{ErrorThreshold: 1, Cooldown: time.Minute, RecoveryCount: 1}, config.Retry{Attempts: 1}, up.URL)
	pc.HealthCheck = &config.HealthCheck{Path: "/ping", Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, ExpectStatus: []int{200}}
	var closeServer func()
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{pc}}, closedBy(&closeServer))

	// Trip it with a user request (a failing probe may trip it first:
	// then the request gets 503 without reaching the upstream).
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 500 && resp.StatusCode != 503 {
		t.Fatalf("got %d; want 500 (or 503 when a probe tripped it first)", resp.StatusCode)
	}
	u := upstreamAt(t, ts.URL, "p", 0)
	if !u.InCooldown {
		t.Fatalf("not in cooldown: %+v", u)
	}
	if until := parseStamp(t, "cooldown_until", u.CooldownUntil); time.Until(until) < 50*time.Second {
		t.Fatalf("cooldown_until %s; want about a minute away", until)
	}
	users := up.Count("/x")

	pingOK.Store(true)
	proxytest.Eventually(t, 3*time.Second, "a passing probe to end the cooldown", func() bool {
		u = upstreamAt(t, ts.URL, "p", 0)
		return !u.InCooldown && u.Status == "degraded"
	})
	if u.LastProbe == nil || !u.LastProbe.OK {
		t.Errorf("last_probe %+v; want the passing probe", u.LastProbe)
	}
	if !strings.Contains(u.Reason, "health check passed") {
		t.Errorf("reason %q; want it to say a health check passed", u.Reason)
	}
	if up.Count("/x") != users {
		t.Errorf("user requests reached the upstream during the cooldown")
	}
	if up.Count("/ping") == 0 {
		t.Fatal("no probe reached the upstream")
	}

	// The next user request is the trial that closes it.
	up.Set(answer(200))
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
		t.Fatalf("trial: got %d; want 200", resp.StatusCode)
	}
	if u := upstreamAt(t, ts.URL, "p", 0); u.Status != "healthy" {
		t.Errorf("after the trial: status %q; want healthy", u.Status)
	}
	users = up.Count("/x")
	if v := proxytest.MetricValue(t, s.metrics.reg, "healproxy_upstream_requests_total", map[string]string{"provider": "p"}); int(v) != users {
		t.Errorf("healproxy_upstream_requests_total = %v; want %d, the user requests only (%d probes were sent)", v, users, up.Count("/ping"))
	}
	if v := proxytest.MetricValue(t, s.metrics.reg, "healproxy_health_checks_total", map[string]string{"provider": "p"}); v < 1 {
		t.Errorf("healproxy_health_checks_total = %v; want the probes counted there", v)
	}

	// After Close no more probes arrive. A probe cut short by Close may
	// still be read by the upstream a moment later: only later ones count.
	closeServer()
	closedAt := time.Now()
	// Nothing to poll for: an absence is watched for several intervals.
	time.Sleep(5 * pc.HealthCheck.Interval)
	for _, h := range up.Requests() {
		if h.RequestURI == "/ping" && h.At.After(closedAt.Add(50*time.Millisecond)) {
			t.Errorf("a probe arrived %v after Server.Close", h.At.Sub(closedAt))
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
