package proxy

import (
	"context"
	"encoding/json"
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

	"github.com/healproxy/healproxy/config"

	"github.com/healproxy/healproxy/internal/proctest"
)

// Test helpers shared by the provider, transport, diagnostics, admin and
// bench tests of this package.

// discardLogger is the quiet logger for tests.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer collects log output; safe for concurrent use.
type logBuffer = proctest.Buffer

// captureLogs returns a debug-level logger writing to the returned buffer.
func captureLogs() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// testProvider is a provider config with test-friendly health settings:
// threshold 3, a minute of cooldown, recovery 2, a 5s timeout.
func testProvider(t *testing.T, id string, upstreams ...string) config.Provider {
	t.Helper()
	pc := config.Provider{
		ID:      id,
		Name:    "Provider " + id,
		Timeout: 5 * time.Second,
		Health:  config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2},
		// Tests of selection and failover must not run into the retry
		// budget (20 % by default); the budget has tests of its own.
		Retry: config.Retry{Budget: 1},
	}
	for _, s := range upstreams {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		pc.Upstreams = append(pc.Upstreams, u)
	}
	return pc
}

// normalized is cfg through config.Normalize, as New and Reload want it:
// the tests' configs, built by hand, get the defaults a file gets.
func normalized(cfg *config.Config) *config.Config {
	cfg.Normalize()
	return cfg
}

// normalizedProvider is pc normalized, for tests that build a provider
// without a Server.
func normalizedProvider(pc config.Provider) config.Provider {
	return normalized(&config.Config{Providers: []config.Provider{pc}}).Providers[0]
}

// withHealth sets the provider's threshold, cooldown and recovery count.
func withHealth(pc config.Provider, threshold int, cooldown time.Duration, recovery int) config.Provider {
	pc.Health = config.Health{ErrorThreshold: threshold, Cooldown: cooldown, RecoveryCount: recovery}
	return pc
}

// startHealproxy serves a Server for the providers over loopback. log nil
// means a quiet logger.
func startHealproxy(t *testing.T, log *slog.Logger, providers ...config.Provider) (*Server, *httptest.Server) {
	t.Helper()
	return startHealproxyConfig(t, log, &config.Config{Providers: providers})
}

func startHealproxyConfig(t *testing.T, log *slog.Logger, cfg *config.Config) (*Server, *httptest.Server) {
	t.Helper()
	if log == nil {
		log = discardLogger()
	}
	s, err := New(normalized(cfg), Options{Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
	})
	return s, ts
}

// deadUpstreamURL is the URL of a loopback port nobody listens on: a
// listener is bound and closed, so connecting is refused.
func deadUpstreamURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// seenRequest is what a fake upstream received.
type seenRequest struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// fakeUpstream is a loopback upstream that records every request and
// answers with code (200 when 0), optionally held until released.
type fakeUpstream struct {
	*httptest.Server
	code        atomic.Int32
	hits        atomic.Int64
	inflight    atomic.Int64
	maxInflight atomic.Int64
	holding     atomic.Bool
	releaseCh   chan struct{}
	releaseOnce sync.Once

	mu   sync.Mutex
	seen []seenRequest
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{releaseCh: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	t.Cleanup(u.release) // runs first: nothing stays held when the server closes
	return u
}

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)})
	u.mu.Unlock()
	u.hits.Add(1)
	n := u.inflight.Add(1)
	defer u.inflight.Add(-1)
	for {
		m := u.maxInflight.Load()
		if n <= m || u.maxInflight.CompareAndSwap(m, n) {
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
	code := int(u.code.Load())
	if code == 0 {
		code = http.StatusOK
	}
	w.Header().Set("X-Upstream-Header", "from-upstream")
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	io.WriteString(w, "upstream body for "+r.URL.RequestURI())
}

// hold makes new requests wait until release (or their client leaves).
func (u *fakeUpstream) hold() { u.holding.Store(true) }

func (u *fakeUpstream) release() { u.releaseOnce.Do(func() { close(u.releaseCh) }) }

func (u *fakeUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *fakeUpstream) last(t *testing.T) seenRequest {
	t.Helper()
	reqs := u.requests()
	if len(reqs) == 0 {
		t.Fatal("upstream got no request; want one")
	}
	return reqs[len(reqs)-1]
}

// hostPort is the upstream's host:port.
func (u *fakeUpstream) hostPort() string { return strings.TrimPrefix(u.URL, "http://") }

// waitUntil polls cond every 5ms until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do sends a request through c and returns the response and its body.
func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, string(b)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	return do(t, c, http.MethodGet, u, nil, nil)
}

// rawHTTP writes raw to addr as one HTTP/1.1 exchange and reads the answer.
func rawHTTP(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	return rawExchangeOn(t, addr, raw, false)
}

// errorJSON is the body of a healproxy error answer.
type errorJSON struct {
	Status            string   `json:"status"`
	ProviderID        string   `json:"provider_id"`
	Error             string   `json:"error"`
	CooldownRemaining *float64 `json:"cooldown_remaining"`
}

func decodeError(t *testing.T, body string) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func TestProviderRouting(t *testing.T) {
	up := newFakeUpstream(t)
	slash := newFakeUpstream(t)
	bare := newFakeUpstream(t)
	p := testProvider(t, "p", up.URL+"/api/v3")
	p.Health.ErrorThreshold = 1000 // the 5xx rows must not trip it
	_, ts := startHealproxy(t, nil,
		p,
		testProvider(t, "slash", slash.URL+"/api/"),
		testProvider(t, "bare", bare.URL),
	)
	c := ts.Client()

	tests := []struct {
		name     string
		up       *fakeUpstream
		method   string
		path     string
		body     string
		code     int32 // the upstream's answer
		wantCode int
		wantURI  string
	}{
		{name: "path and query", up: up, method: "GET", path: "/providers/p/v1/x?a=1&b=%20c", wantCode: 200, wantURI: "/api/v3/v1/x?a=1&b=%20c"},
		{name: "provider alone", up: up, method: "GET", path: "/providers/p", wantCode: 200, wantURI: "/api/v3/"},
		{name: "provider with slash", up: up, method: "GET", path: "/providers/p/", wantCode: 200, wantURI: "/api/v3/"},
		{name: "escaped characters kept", up: up, method: "GET", path: "/providers/p/a%20b/c%3Fd", wantCode: 200, wantURI: "/api/v3/a%20b/c%3Fd"},
		{name: "POST with body", up: up, method: "POST", path: "/providers/p/items", body: `{"x":1}`, wantCode: 200, wantURI: "/api/v3/items"},
		{name: "PATCH with body", up: up, method: "PATCH", path: "/providers/p/items/1", body: "patch", wantCode: 200, wantURI: "/api/v3/items/1"},
		{name: "DELETE", up: up, method: "DELETE", path: "/providers/p/items/1", wantCode: 200, wantURI: "/api/v3/items/1"},
		{name: "404 passes through", up: up, method: "GET", path: "/providers/p/missing", code: 404, wantCode: 404, wantURI: "/api/v3/missing"},
		{name: "400 passes through", up: up, method: "POST", path: "/providers/p/bad", body: "x", code: 400, wantCode: 400, wantURI: "/api/v3/bad"},
		{name: "429 passes through", up: up, method: "GET", path: "/providers/p/slow-down", code: 429, wantCode: 429, wantURI: "/api/v3/slow-down"},
		{name: "final 500 passes through", up: up, method: "GET", path: "/providers/p/boom", code: 500, wantCode: 500, wantURI: "/api/v3/boom"},
		{name: "final 503 passes through", up: up, method: "POST", path: "/providers/p/boom", body: "b", code: 503, wantCode: 503, wantURI: "/api/v3/boom"},
		{name: "base path with trailing slash", up: slash, method: "GET", path: "/providers/slash/v1/x?a=1", wantCode: 200, wantURI: "/api/v1/x?a=1"},
		{name: "no base path", up: bare, method: "GET", path: "/providers/bare/v1/x", wantCode: 200, wantURI: "/v1/x"},
		{name: "no base path, provider alone", up: bare, method: "GET", path: "/providers/bare", wantCode: 200, wantURI: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.up.code.Store(tt.code)
			before := tt.up.hits.Load()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp, got := do(t, c, tt.method, ts.URL+tt.path, body, nil)
			if g, w := resp.StatusCode, tt.wantCode; g != w {
				t.Errorf("got status %d; want %d (body %q)", g, w, got)
			}
			if g, w := tt.up.hits.Load()-before, int64(1); g != w {
				t.Fatalf("got %d upstream requests; want %d", g, w)
			}
			seen := tt.up.last(t)
			if g, w := seen.RequestURI, tt.wantURI; g != w {
				t.Errorf("upstream got URI %q; want %q", g, w)
			}
			if g, w := seen.Method, tt.method; g != w {
				t.Errorf("upstream got method %q; want %q", g, w)
			}
			if g, w := seen.Body, tt.body; g != w {
				t.Errorf("upstream got body %q; want %q", g, w)
			}
			if g, w := resp.Header.Get("X-Upstream-Header"), "from-upstream"; g != w {
				t.Errorf("client got X-Upstream-Header %q; want %q", g, w)
			}
			if g, w := got, "upstream body for "+tt.wantURI; g != w {
				t.Errorf("client got body %q; want %q", g, w)
			}
		})
	}
	up.code.Store(0)
}

func TestProviderUnknown(t *testing.T) {
	up := newFakeUpstream(t)
	_, ts := startHealproxy(t, nil, testProvider(t, "p", up.URL))
	for _, path := range []string{"/providers/nope", "/providers/nope/x?y=1", "/providers/P/x"} {
		resp, body := get(t, ts.Client(), ts.URL+path)
		if g, w := resp.StatusCode, http.StatusNotFound; g != w {
			t.Errorf("GET %s: got status %d; want %d", path, g, w)
		}
		if g, w := resp.Header.Get("Content-Type"), "application/json"; g != w {
			t.Errorf("GET %s: got Content-Type %q; want %q", path, g, w)
		}
		if e := decodeError(t, body); e.Status != "error" || e.Error == "" {
			t.Errorf("GET %s: got body %q; want status error with a message", path, body)
		}
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream got %d requests for unknown providers; want 0", n)
	}
}

// TestProviderPathSecurity: whatever the path, request line or headers
// hold, a request goes to the configured upstream under its base path,
// or nowhere.
func TestProviderPathSecurity(t *testing.T) {
	up := newFakeUpstream(t)
	attacker := newFakeUpstream(t)
	_, ts := startHealproxy(t, nil,
		testProvider(t, "p", up.URL+"/base"),
		testProvider(t, "bare", up.URL),
	)
	proxyAddr := ts.Listener.Addr().String()
	atk := attacker.hostPort()

	tests := []struct {
		name     string
		target   string // request target as written on the request line
		host     string // the Host header; "" means the attacker's
		extra    string // extra header lines
		wantCode int
		wantURI  string // for a forward: what the upstream must see
	}{
		{name: "dot-dot segments", target: "/providers/p/../../secret", wantCode: 400},
		{name: "dot-dot at end", target: "/providers/p/x/..", wantCode: 400},
		{name: "single dot", target: "/providers/p/./x", wantCode: 400},
		{name: "encoded dot-dot", target: "/providers/p/%2e%2e/%2e%2e/secret", wantCode: 400},
		{name: "mixed-case encoded dot-dot", target: "/providers/p/%2E%2e/secret", wantCode: 400},
		{name: "half-encoded dot-dot", target: "/providers/p/.%2e/secret", wantCode: 400},
		{name: "dot-dot encoded slash", target: "/providers/p/..%2fsecret", wantCode: 400},
		{name: "dot-dot encoded upper slash", target: "/providers/p/..%2Fsecret", wantCode: 400},
		{name: "encoded slash", target: "/providers/p/a%2fb", wantCode: 400},
		{name: "encoded backslash", target: "/providers/p/..%5csecret", wantCode: 400},
		{name: "backslash", target: `/providers/p/..\secret`, wantCode: 400},
		{name: "encoded NUL", target: "/providers/p/a%00b", wantCode: 400},
		{name: "raw NUL", target: "/providers/p/a\x00b", wantCode: 400},
		{name: "absolute-form request line", target: "http://" + atk + "/providers/p/x", wantCode: 200, wantURI: "/base/x"},
		{name: "absolute-form with dot-dot", target: "http://" + atk + "/providers/p/../x", wantCode: 400},
		{name: "Host header of the attacker", target: "/providers/p/x", wantCode: 200, wantURI: "/base/x"},
		{name: "X-Forwarded-Host of the attacker", target: "/providers/p/x", host: proxyAddr,
			extra: "X-Forwarded-Host: " + atk + "\r\nForwarded: host=" + atk + "\r\nX-Forwarded-Proto: https\r\n", wantCode: 200, wantURI: "/base/x"},
		{name: "double slash", target: "/providers/p//x", wantCode: 200, wantURI: "/base//x"},
		{name: "double slash naming a host", target: "/providers/bare//" + atk + "/x", wantCode: 200, wantURI: "//" + atk + "/x"},
		{name: "encoded provider id", target: "/providers/%70/x", wantCode: 404},
		{name: "dot-dot instead of provider id", target: "/providers/../providers/p/x", wantCode: 404},
		// Shapes some servers behind the proxy read as "..": refused.
		{name: "double-encoded dot-dot", target: "/providers/p/%252e%252e/x", wantCode: 400},
		{name: "double-encoded slash", target: "/providers/p/..%252fx", wantCode: 400},
		{name: "dot-dot with a path parameter", target: "/providers/p/..;/admin", wantCode: 400},
		{name: "encoded dot-dot with a path parameter", target: "/providers/p/%2e%2e;x/admin", wantCode: 400},
		{name: "dot-dot and an encoded tab", target: "/providers/p/..%09/admin", wantCode: 400},
		{name: "overlong UTF-8 dots", target: "/providers/p/%c0%ae%c0%ae/admin", wantCode: 400},
		{name: "encoded control character", target: "/providers/p/a%0db", wantCode: 400},
		{name: "path parameter kept", target: "/providers/p/a;v=1/x", wantCode: 200, wantURI: "/base/a;v=1/x"},
		{name: "UTF-8 kept", target: "/providers/p/%c3%a9t%c3%a9", wantCode: 200, wantURI: "/base/%c3%a9t%c3%a9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			host := tt.host
			if host == "" {
				host = atk
			}
			raw := "GET " + tt.target + " HTTP/1.1\r\nHost: " + host + "\r\n" + tt.extra + "Connection: close\r\n\r\n"
			resp, body := rawHTTP(t, proxyAddr, raw)
			if g, w := resp.StatusCode, tt.wantCode; g != w {
				t.Errorf("got status %d; want %d (body %q)", g, w, body)
			}
			if n := attacker.hits.Load(); n != 0 {
				t.Fatalf("attacker got %d requests; want 0", n)
			}
			hits := up.hits.Load() - before
			if tt.wantURI == "" {
				if hits != 0 {
					t.Errorf("upstream got %d requests (last %q); want 0", hits, up.last(t).RequestURI)
				}
				return
			}
			if hits != 1 {
				t.Fatalf("upstream got %d requests; want 1", hits)
			}
			seen := up.last(t)
			if g, w := seen.RequestURI, tt.wantURI; g != w {
				t.Errorf("upstream got URI %q; want %q", g, w)
			}
			if g, w := seen.Host, up.hostPort(); g != w {
				t.Errorf("upstream got Host %q; want %q", g, w)
			}
			// X-Forwarded-Host tells the client's Host header, whatever
			// X-Forwarded-* the client sent.
			if g := seen.Header.Values("X-Forwarded-Host"); len(g) != 1 || g[0] != host {
				t.Errorf("upstream got X-Forwarded-Host %q; want only the client's Host %q", g, host)
			}
			if g := seen.Header.Values("X-Forwarded-Proto"); len(g) != 1 || g[0] != "http" {
				t.Errorf("upstream got X-Forwarded-Proto %q; want only %q", g, "http")
			}
			if g := seen.Header.Get("Forwarded"); g != "" {
				t.Errorf("upstream got Forwarded %q; want none", g)
			}
		})
	}
}

func TestProviderHeaders(t *testing.T) {
	up := newFakeUpstream(t)
	p := testProvider(t, "p", up.URL)
	p.Headers = map[string]string{"x-api-key": "configured-key", "X-Empty": "", "authorization": "Bearer configured"}
	_, ts := startHealproxy(t, nil, p)

	raw := "POST /providers/p/h HTTP/1.1\r\n" +
		"Host: " + ts.Listener.Addr().String() + "\r\n" +
		"Connection: keep-alive, X-Custom\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"X-Custom: drop-me\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"TE: gzip\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"X-Api-Key: client-key\r\n" +
		"Authorization: Bearer client\r\n" +
		"X-Empty: client-empty\r\n" +
		"X-Forwarded-For: 203.0.113.9\r\n" +
		"X-Kept: yes\r\n" +
		"\r\n" +
		"5\r\nhello\r\n0\r\n\r\n"
	resp, body := rawHTTP(t, ts.Listener.Addr().String(), raw)
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d; want 200 (body %q)", resp.StatusCode, body)
	}
	seen := up.last(t)
	if g, w := seen.Body, "hello"; g != w {
		t.Errorf("upstream got body %q; want %q", g, w)
	}
	if g, w := seen.Host, up.hostPort(); g != w {
		t.Errorf("upstream got Host %q; want %q", g, w)
	}
	wantOne := map[string]string{
		"X-Api-Key":       "configured-key",
		"Authorization":   "Bearer configured",
		"X-Kept":          "yes",
		"X-Forwarded-For": "203.0.113.9, 127.0.0.1",
	}
	for k, w := range wantOne {
		if g := seen.Header.Values(k); len(g) != 1 || g[0] != w {
			t.Errorf("upstream got %s %q; want exactly %q", k, g, w)
		}
	}
	// X-Empty: the configured value is empty, so healproxy sends none of
	// its own; the client's passes as any other client header.
	if g := seen.Header.Values("X-Empty"); len(g) != 1 || g[0] != "client-empty" {
		t.Errorf("upstream got X-Empty %q; want the client's alone", g)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "X-Custom", "Proxy-Authorization", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"} {
		if g := seen.Header.Values(k); len(g) != 0 {
			t.Errorf("upstream got hop-by-hop header %s %q; want none", k, g)
		}
	}
}

func TestProviderHeadersEmptyConfiguredValue(t *testing.T) {
	up := newFakeUpstream(t)
	p := testProvider(t, "p", up.URL)
	p.Headers = map[string]string{"X-Secret-Key": ""}
	_, ts := startHealproxy(t, nil, p)
	get(t, ts.Client(), ts.URL+"/providers/p/x")
	if g, ok := up.last(t).Header["X-Secret-Key"]; ok {
		t.Errorf("upstream got X-Secret-Key %q; want no header for an empty configured value", g)
	}
	if g, w := up.last(t).Header.Get("X-Forwarded-For"), "127.0.0.1"; g != w {
		t.Errorf("upstream got X-Forwarded-For %q; want %q", g, w)
	}
}

// TestProviderSecretsNeverShown: query strings of upstream URLs and header
// values appear in no answer, metric or log line, after successes,
// connection errors, timeouts and trips alike.
func TestProviderSecretsNeverShown(t *testing.T) {
	const secret = "s3cret"
	up := newFakeUpstream(t)
	slow := newFakeUpstream(t)
	slow.hold()
	defer slow.release()
	hdrs := map[string]string{"Authorization": "Bearer " + secret + "-h1", "X-Api-Key": secret + "-h2"}
	mk := func(id string, timeout time.Duration, ups ...string) config.Provider {
		pc := withHealth(testProvider(t, id, ups...), 2, time.Minute, 1)
		pc.Headers = hdrs
		pc.Timeout = timeout
		return pc
	}
	log, logs := captureLogs()
	cfg := &config.Config{Providers: []config.Provider{
		mk("ok", 5*time.Second, up.URL+"/base?apikey="+secret+"-q1"),
		mk("dead", 5*time.Second, deadUpstreamURL(t)+"/x?apikey="+secret+"-q2"),
		mk("slow", 100*time.Millisecond, slow.URL+"/?token="+secret+"-q3"),
		mk("mixed", 100*time.Millisecond, deadUpstreamURL(t)+"/?k="+secret+"-q4", slow.URL+"/?k="+secret+"-q5"),
	}}
	cfg.AdminToken = "admin-" + secret
	s, ts := startHealproxyConfig(t, log, cfg)
	c := ts.Client()

	var answers strings.Builder
	record := func(resp *http.Response, body string) {
		for k, v := range resp.Header {
			answers.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		answers.WriteString(body + "\n")
	}
	resp, _ := get(t, c, ts.URL+"/providers/ok/v1?x=1")
	if resp.StatusCode != 200 {
		t.Fatalf("ok: got status %d; want 200", resp.StatusCode)
	}
	// The secrets are used: the upstream sees them.
	seen := up.last(t)
	if g, w := seen.RequestURI, "/base/v1?apikey="+secret+"-q1&x=1"; g != w {
		t.Errorf("upstream got URI %q; want %q", g, w)
	}
	if g, w := seen.Header.Get("X-Api-Key"), secret+"-h2"; g != w {
		t.Errorf("upstream got X-Api-Key %q; want %q", g, w)
	}
	for _, path := range []string{"/providers/dead/a", "/providers/dead/a", "/providers/dead/a",
		"/providers/slow/b", "/providers/slow/b", "/providers/slow/b",
		"/providers/mixed/c", "/providers/mixed/c", "/providers/mixed/c"} {
		record(get(t, c, ts.URL+path))
	}
	record(do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=nope", nil, http.Header{"Authorization": {"Bearer wrong"}}))
	record(get(t, c, ts.URL+"/api/diagnostics/health"))
	record(get(t, c, ts.URL+"/metrics"))
	record(do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=dead", nil, http.Header{"Authorization": {"Bearer admin-" + secret}}))
	record(get(t, c, ts.URL+"/api/diagnostics/health"))
	s.healthDocument() // and once more in-process, for the log of any poll

	all := answers.String()
	for _, want := range []string{`"provider_id":"dead"`, `"status":"cooldown"`, "upstream timed out", "cannot connect to upstream"} {
		if !strings.Contains(all, want) {
			t.Errorf("answers lack %q; the failures did not happen as planned:\n%s", want, all)
		}
	}
	if i := strings.Index(all, secret); i >= 0 {
		t.Errorf("an answer shows a secret: …%s…", all[max(0, i-200):min(len(all), i+100)])
	}
	if !strings.Contains(logs.String(), "health status changed") {
		t.Errorf("logs lack status changes; want some:\n%s", logs.String())
	}
	if l := logs.String(); strings.Contains(l, secret) {
		i := strings.Index(l, secret)
		t.Errorf("a log line shows a secret: …%s…", l[max(0, i-200):min(len(l), i+100)])
	}
}

// TestNewRefusesUnnormalized: New does not invent defaults; a Config built
// by hand that skipped config.Normalize is refused, naming the setting.
func TestNewRefusesUnnormalized(t *testing.T) {
	_, err := New(&config.Config{Providers: []config.Provider{testProvider(t, "p", "http://a.test")}}, Options{Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), `provider "p": mode is zero`) || !strings.Contains(err.Error(), "Normalize") {
		t.Errorf("New of a Config not normalized: %v; want an error naming the setting and Normalize", err)
	}
}
