// Package proxytest is the one test harness of healproxy's packages: a
// fake upstream that records what it gets and answers as a test says,
// config builders, a condition wait, log capture and metric reading.
// It imports no package that serves requests, so that every package's
// own tests (provider, proxy, cluster, …) can use it.
package proxytest

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proctest"
)

// Eventually polls cond every 5ms until it holds, and fails the test
// when d passes first. It is the condition wait of every test that waits
// for something asynchronous; none sleeps a fixed time instead.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DiscardLogger is the quiet logger for tests.
func DiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// LogBuffer collects log output; safe for concurrent use.
type LogBuffer = proctest.Buffer

// CaptureLogs returns a debug-level logger writing to the returned buffer.
func CaptureLogs() (*slog.Logger, *LogBuffer) {
	b := &LogBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// Provider is a provider config with test-friendly health settings:
// threshold 3, a minute of cooldown, recovery 2, a 5s timeout, and a
// retry budget that never runs out (the budget has tests of its own).
func Provider(tb testing.TB, id string, upstreams ...string) config.Provider {
	tb.Helper()
	pc := config.Provider{
		ID:      id,
		Name:    "Provider " + id,
		Timeout: 5 * time.Second,
		Health:  config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2},
		Retry:   config.Retry{Budget: 1},
	}
	for _, s := range upstreams {
		u, err := url.Parse(s)
		if err != nil {
			tb.Fatalf("url.Parse(%q): %v", s, err)
		}
		pc.Upstreams = append(pc.Upstreams, u)
	}
	return pc
}

// WithHealth sets the provider's threshold, cooldown and recovery count.
func WithHealth(pc config.Provider, threshold int, cooldown time.Duration, recovery int) config.Provider {
	pc.Health = config.Health{ErrorThreshold: threshold, Cooldown: cooldown, RecoveryCount: recovery}
	return pc
}

// Normalized is cfg through config.Normalize: a config built by hand
// gets the defaults a file gets.
func Normalized(cfg *config.Config) *config.Config {
	cfg.Normalize()
	return cfg
}

// NormalizedProvider is pc normalized, for tests that build a provider
// without a server.
func NormalizedProvider(pc config.Provider) config.Provider {
	return Normalized(&config.Config{Providers: []config.Provider{pc}}).Providers[0]
}

// Config parses HCL text as a file named test.hcl would be, normalized,
// with no environment; it fails the test on any diagnostic.
func Config(tb testing.TB, hcl string) *config.Config {
	tb.Helper()
	cfg, diags := config.Parse("test.hcl", []byte(hcl), config.LoadOptions{Getenv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		tb.Fatalf("config: %s", config.FormatDiagnostics(diags))
	}
	return cfg
}

// DeadURL is the URL of a loopback port nobody listens on: a listener
// is bound and closed, so connecting is refused.
func DeadURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Request is what an Upstream received.
type Request struct {
	At         time.Time
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// Upstream is a loopback upstream that records every request. By default
// it answers Code (200 when 0) with a text body naming the request URI
// and an X-Upstream-Header; Set replaces that with any handler. Hold
// makes new requests wait until Release (or their client leaves).
type Upstream struct {
	*httptest.Server
	Code        atomic.Int32
	Hits        atomic.Int64
	InFlight    atomic.Int64
	MaxInFlight atomic.Int64

	handler     atomic.Pointer[http.HandlerFunc]
	holding     atomic.Bool
	releaseCh   chan struct{}
	releaseOnce sync.Once

	mu   sync.Mutex
	seen []Request
}

// NewUpstream starts an Upstream, closed when the test ends.
func NewUpstream(tb testing.TB) *Upstream {
	tb.Helper()
	u := &Upstream{releaseCh: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	tb.Cleanup(u.Close)
	tb.Cleanup(u.Release) // runs first: nothing stays held when the server closes
	return u
}

// NewScriptedUpstream is an Upstream answering with h.
func NewScriptedUpstream(tb testing.TB, h http.HandlerFunc) *Upstream {
	tb.Helper()
	u := NewUpstream(tb)
	u.Set(h)
	return u
}

// Set makes h answer the requests from now on (nil: the default answer).
func (u *Upstream) Set(h http.HandlerFunc) {
	if h == nil {
		u.handler.Store(nil)
		return
	}
	u.handler.Store(&h)
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, Request{At: time.Now(), Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
		Header: r.Header.Clone(), Body: string(body)})
	u.mu.Unlock()
	u.Hits.Add(1)
	n := u.InFlight.Add(1)
	defer u.InFlight.Add(-1)
	for {
		m := u.MaxInFlight.Load()
		if n <= m || u.MaxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if u.holding.Load() {
		select {
		case <-u.releaseCh:
		case <-r.Context().Done():
			return
		}
	}
	if h := u.handler.Load(); h != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		(*h)(w, r)
		return
	}
	code := int(u.Code.Load())
	if code == 0 {
		code = http.StatusOK
	}
	w.Header().Set("X-Upstream-Header", "from-upstream")
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	io.WriteString(w, "upstream body for "+r.URL.RequestURI())
}

// Hold makes new requests wait until Release (or their client leaves).
func (u *Upstream) Hold() { u.holding.Store(true) }

// Release lets held requests (and all later ones) go on.
func (u *Upstream) Release() { u.releaseOnce.Do(func() { close(u.releaseCh) }) }

// Requests is a copy of what the upstream got so far.
func (u *Upstream) Requests() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Request(nil), u.seen...)
}

// Take is what the upstream got since the last Take (or its start), and
// forgets it: a long-running test (a fuzzer) keeps memory bounded with it.
func (u *Upstream) Take() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := u.seen
	u.seen = nil
	return seen
}

// Last is the latest request; the test fails if there was none.
func (u *Upstream) Last(tb testing.TB) Request {
	tb.Helper()
	reqs := u.Requests()
	if len(reqs) == 0 {
		tb.Fatal("upstream got no request; want one")
	}
	return reqs[len(reqs)-1]
}

// Count is the number of requests so far whose request URI starts with
// prefix ("" counts them all).
func (u *Upstream) Count(prefix string) int {
	n := 0
	for _, r := range u.Requests() {
		if strings.HasPrefix(r.RequestURI, prefix) {
			n++
		}
	}
	return n
}

// HostPort is the upstream's host:port.
func (u *Upstream) HostPort() string { return strings.TrimPrefix(u.URL, "http://") }

// Do sends a request through c and returns the response and its body.
func Do(tb testing.TB, c *http.Client, method, u string, body io.Reader, hdr http.Header) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, string(b)
}

// Get is Do with GET and no body.
func Get(tb testing.TB, c *http.Client, u string) (*http.Response, string) {
	tb.Helper()
	return Do(tb, c, http.MethodGet, u, nil, nil)
}

// MetricValue is the sum of the series of metric name in g whose labels
// include want.
func MetricValue(tb testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatalf("Gather: %v", err)
	}
	return SumMetric(mfs, name, want)
}

// SumMetric is the sum of the series of metric name in mfs whose labels
// include want (counters, gauges, and the sample counts of histograms).
func SumMetric(mfs []*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// RoundTripFunc is an http.RoundTripper made of a function.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
