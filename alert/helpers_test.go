package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// The webhook path and query stand for a Slack webhook's secret.
const secretPath = "/services/T000/B000/SECRETPATH"
const secretQuery = "token=SECRETQUERY"

// Receiver behaviours.
const (
	up       = "up"       // 200, records the event
	down503  = "503"      // 503 Service Unavailable
	reset    = "reset"    // closes the connection without an answer
	slow     = "slow"     // answers nothing until the client gives up
	limited  = "429"      // 429 with Retry-After: receiver.retryAfter
	rejected = "400"      // 400 Bad Request
	redirect = "redirect" // 302 to the secret path
)

// receiver is a webhook whose behaviour the test switches.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	mode       string
	script     []string // behaviours for the next requests, before mode
	retryAfter string
	got        []payload
	raw        [][]byte
	headers    []http.Header
	hits       int
	changed    chan struct{} // receives after every request

	release chan struct{} // closed at cleanup: ends slow requests
}

func newReceiver(t *testing.T, mode string, script ...string) *receiver {
	t.Helper()
	r := &receiver{t: t, mode: mode, script: script, changed: make(chan struct{}, 1), release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.release) }) // runs first
	return r
}

// url is the webhook URL, secret included.
func (r *receiver) url() *url.URL {
	u, err := url.Parse(r.srv.URL + secretPath + "?" + secretQuery)
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

func (r *receiver) set(mode string) {
	r.mu.Lock()
	r.mode = mode
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	defer func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	r.mu.Lock()
	r.hits++
	mode := r.mode
	if len(r.script) > 0 {
		mode, r.script = r.script[0], r.script[1:]
	}
	retryAfter := r.retryAfter
	r.mu.Unlock()

	if req.Method != http.MethodPost || req.URL.Path != secretPath || req.URL.RawQuery != secretQuery {
		r.t.Errorf("got %s %s; want POST to the webhook", req.Method, req.URL.Path)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	switch mode {
	case up:
		var p payload
		if err := json.Unmarshal(body, &p); err != nil {
			r.t.Errorf("got body %q: %v; want JSON", body, err)
		}
		r.mu.Lock()
		r.got = append(r.got, p)
		r.raw = append(r.raw, body)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		io.WriteString(w, "ok")
	case down503:
		http.Error(w, "Cannot POST "+req.URL.String(), http.StatusServiceUnavailable)
	case reset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case slow:
		select {
		case <-req.Context().Done():
		case <-r.release:
		}
	case limited:
		w.Header().Set("Retry-After", retryAfter)
		w.WriteHeader(http.StatusTooManyRequests)
	case rejected:
		http.Error(w, "invalid_payload "+req.URL.String(), http.StatusBadRequest)
	case redirect:
		http.Redirect(w, req, req.URL.String(), http.StatusFound)
	default:
		r.t.Errorf("unknown receiver mode %q", mode)
	}
}

func (r *receiver) events() []payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]payload(nil), r.got...)
}

func (r *receiver) hitCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// waitEvents waits until the receiver has recorded n events.
func (r *receiver) waitEvents(n int) []payload {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := r.events(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("got %d events after 10s; want %d: %v", len(r.events()), n, keys(r.events()))
		}
	}
}

func keys(ps []payload) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Event.Type+"/"+p.Event.Key)
	}
	return out
}

// checkNoSecret fails when the logs show any part of the webhook's secret.
func checkNoSecret(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{"SECRET", "services", "T000", "token="} {
		if strings.Contains(logs, s) {
			t.Errorf("got logs with %q, part of the webhook's secret:\n%s", s, logs)
		}
	}
}

// noLeaks fails the test when, once its cleanups have run, more
// goroutines are left than when it began. Call it first in the test so
// that its cleanup runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			now := runtime.NumGoroutine()
			if now <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("got %d goroutines after the test; want at most %d as before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// fakeClock is a settable Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// sleeps records the waits between attempts without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// testAlert is an alert on every event.
func testAlert(name string, u *url.URL, minInterval time.Duration, on ...string) config.Alert {
	if len(on) == 0 {
		on = config.AlertEvents
	}
	return config.Alert{Name: name, Webhook: u, On: on, MinInterval: minInterval}
}

// newNotifier starts a Notifier that Close stops at cleanup, with a client
// whose idle connections are closed too.
func newNotifier(t *testing.T, alerts []config.Alert, opts Options) *Notifier {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = proxytest.DiscardLogger()
	}
	n := New(alerts, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
		if opts.Client != nil {
			opts.Client.CloseIdleConnections()
		}
	})
	return n
}

func ev(typ, key string) Event {
	return Event{Type: typ, Kind: KindProvider, Key: key, Upstream: "https://" + key + ".example/api", From: "healthy", To: typ}
}

// timedNotify calls Notify and returns how long it took.
func timedNotify(n *Notifier, e Event) time.Duration {
	start := time.Now()
	n.Notify(e)
	return time.Since(start)
}

// stats returns the counters of the named alert.
func stats(t *testing.T, n *Notifier, name string) AlertStats {
	t.Helper()
	s, ok := n.Stats().Alert(name)
	if !ok {
		t.Fatalf("got no stats for alert %q", name)
	}
	return s
}
