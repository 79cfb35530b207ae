package healthcheck

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
)

// The checker's behaviour against real upstreams and a provider's health
// entries, headers and metrics is tested in provider/healthcheck_test.go;
// these tests are of the loop and its parts.

// count is a Counter.
type count struct{ n atomic.Int64 }

func (c *count) Inc() { c.n.Add(1) }

// health is a Health that records the probes it is told of.
type health struct {
	mu         sync.Mutex
	pass, fail int
}

func (h *health) CooldownUntil() (time.Time, bool) { return time.Time{}, false }
func (h *health) Probe(ok bool, _ *breaker.Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.pass++
	} else {
		h.fail++
	}
}

// targets are one Target per host, sending through rt.
func targets(rt func(*http.Request) (*http.Response, error), hosts ...string) ([]Target, []*count) {
	var ts []Target
	var counts []*count
	for _, host := range hosts {
		pass, fail := &count{}, &count{}
		ts = append(ts, Target{
			Name: "http://" + host,
			URL: func(path, query string) *url.URL {
				return &url.URL{Scheme: "http", Host: host, RawPath: path, Path: path, RawQuery: query}
			},
			Send:   rt,
			Health: &health{},
			Pass:   pass, Fail: fail,
		})
		counts = append(counts, pass, fail)
	}
	return ts, counts
}

func okAnswer(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok"))}, nil
}

func TestStopWithoutStart(t *testing.T) {
	var sent atomic.Int32
	ts, _ := targets(func(r *http.Request) (*http.Response, error) { sent.Add(1); return okAnswer(r) }, "a.test")
	synctest.Test(t, func(t *testing.T) {
		c := New(config.HealthCheck{Path: "/ping", Interval: time.Second, Timeout: time.Second, ExpectStatus: []int{200}}, ts, Options{})
		c.Stop()
		c.Stop()
		c.Start()
		time.Sleep(10 * time.Second)
		if n := sent.Load(); n != 0 {
			t.Errorf("a checker stopped before start probed %d times", n)
		}
	})
}

// TestSchedule checks the loop's timing on a fake clock: each upstream's
// first probe within the first interval, the next ones an interval ±10%
// apart, a slow upstream not delaying the others, and every check
// counted.
func TestSchedule(t *testing.T) {
	const interval = 30 * time.Second
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		seen := map[string][]time.Duration{}
		start := time.Now()
		ts, counts := targets(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen[r.URL.Host] = append(seen[r.URL.Host], time.Since(start))
			mu.Unlock()
			if r.Header.Get("User-Agent") != UserAgent {
				t.Errorf("User-Agent %q; want %q", r.Header.Get("User-Agent"), UserAgent)
			}
			if r.URL.Host == "slow.test" {
				<-r.Context().Done() // times out
				return nil, r.Context().Err()
			}
			return okAnswer(r)
		}, "a.test", "b.test", "slow.test")
		hc := config.HealthCheck{Path: "/ping", Interval: interval, Timeout: 2 * time.Second, ExpectStatus: []int{200}}
		c := New(hc, ts, Options{})
		c.Start()
		time.Sleep(10*interval + time.Second)
		c.Stop()

		mu.Lock()
		defer mu.Unlock()
		for _, host := range []string{"a.test", "b.test", "slow.test"} {
			times := seen[host]
			if len(times) < 9 || len(times) > 12 {
				t.Errorf("%s: %d probes in 10 intervals; want 9..12", host, len(times))
				continue
			}
			if times[0] >= interval {
				t.Errorf("%s: first probe at %v; want within the first interval", host, times[0])
			}
			for i := 1; i < len(times); i++ {
				gap := times[i] - times[i-1]
				if gap < interval*9/10 || gap > interval*11/10 {
					t.Errorf("%s: probes %d and %d are %v apart; want %v ±10%%", host, i-1, i, gap, interval)
				}
			}
		}
		var pass, fail int64
		for i := 0; i < len(counts); i += 2 {
			pass += counts[i].n.Load()
			fail += counts[i+1].n.Load()
		}
		if want := int64(len(seen["a.test"]) + len(seen["b.test"])); pass != want {
			t.Errorf("pass checks = %v; want %v", pass, want)
		}
		// A probe in flight when the checker stops counts for nothing.
		if n := int64(len(seen["slow.test"])); fail != n && fail != n-1 {
			t.Errorf("fail checks = %v; want %v (or one less, cut short by stop)", fail, n)
		}
		if h := ts[2].Health.(*health); h.fail != int(fail) || h.pass != 0 {
			t.Errorf("slow upstream's health told of %d passes, %d failures; want 0, %d", h.pass, h.fail, fail)
		}
	})
}

// TestLocalResourceNotCounted: a probe the proxy could not make for want
// of its own resources says nothing of the upstream.
func TestLocalResourceNotCounted(t *testing.T) {
	errShort := io.ErrShortBuffer
	ts, counts := targets(func(*http.Request) (*http.Response, error) { return nil, errShort }, "a.test")
	c := New(config.HealthCheck{Path: "/", Interval: time.Second, Timeout: time.Second, ExpectStatus: []int{200}}, ts,
		Options{LocalResource: func(err error) bool { return err == errShort }})
	if ok, f := c.Probe(context.Background(), 0); ok || f != nil {
		t.Errorf("Probe = %v, %+v; want not made (false, nil)", ok, f)
	}
	c.Check(context.Background(), 0)
	if h := ts[0].Health.(*health); h.pass+h.fail != 0 || counts[0].n.Load()+counts[1].n.Load() != 0 {
		t.Errorf("a check not made was recorded: health %d/%d", h.pass, h.fail)
	}
	c.Check(context.Background(), 7) // not a target: nothing
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct{ in, path, query string }{
		{"", "/", ""},
		{"ping", "/ping", ""},
		{"/v1/health?deep=1", "/v1/health", "deep=1"},
		{"/a b", "/a%20b", ""},
	} {
		if p, q := checkPath(tc.in); p != tc.path || q != tc.query {
			t.Errorf("checkPath(%q) = %q, %q; want %q, %q", tc.in, p, q, tc.path, tc.query)
		}
	}
}

func TestJitter(t *testing.T) {
	const d = 30 * time.Second
	lo, hi := d*9/10, d*11/10
	for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999999999} {
		if j := jitter(d, r); j < lo || j > hi {
			t.Errorf("jitter(%v, %v) = %v; want within [%v, %v]", d, r, j, lo, hi)
		}
	}
	if j := jitter(d, 0); j != lo {
		t.Errorf("jitter(%v, 0) = %v; want %v", d, j, lo)
	}
	if j := jitter(d, 0.5); j != d {
		t.Errorf("jitter(%v, 0.5) = %v; want %v", d, j, d)
	}
	var sawLow, sawHigh bool
	rnd := New(config.HealthCheck{}, nil, Options{}).rand // the default source
	for range 10000 {
		j := jitter(d, rnd())
		if j < lo || j >= hi {
			t.Fatalf("jitter = %v; want within [%v, %v)", j, lo, hi)
		}
		sawLow = sawLow || j < d*95/100
		sawHigh = sawHigh || j > d*105/100
	}
	if !sawLow || !sawHigh {
		t.Errorf("10000 jitters never left ±5%%: low %v high %v", sawLow, sawHigh)
	}
}
