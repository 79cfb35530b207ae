package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/provider"
)

// A failure counts against an upstream only when the upstream caused it
// (internal/clientbody). These tests repeat each client misbehaviour past the
// error threshold and check that every client still gets answers, the
// upstream's health is untouched, and the cause is counted in its own
// metric.

// rawExchangeOn writes raw on a new connection to addr, half-closes it
// when halfClose, and reads one answer.
func rawExchangeOn(t *testing.T, addr, raw string, halfClose bool) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const notUpstreamMetric = "healproxy_provider_errors_not_upstream_total"

func TestClientFaultsNeverCountAgainstUpstream(t *testing.T) {
	const threshold = 3
	tests := []struct {
		name      string
		raw       string // the request, as written; Host filled in
		halfClose bool   // the client closes its side after raw
		timeout   time.Duration
		maxBody   int64 // max_request_body; 0: the default
		wantCode  int
		cause     string // the not-upstream metric's cause; "" for none
	}{
		{name: "malformed chunked body, POST",
			raw:      "POST /providers/p/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
			wantCode: 400, cause: provider.CauseBodyMalformed},
		{name: "malformed chunked body, PUT (buffered for retries)",
			raw:      "PUT /providers/p/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
			wantCode: 400, cause: provider.CauseBodyMalformed},
		// The client that closes its side mid-body has left: 499.
		{name: "body cut off before its Content-Length",
			raw:      "POST /providers/p/x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc",
			wantCode: api.StatusClientClosedRequest, cause: provider.CauseClientGone, halfClose: true},
		{name: "chunked body cut off, PUT",
			raw:      "PUT /providers/p/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
			wantCode: api.StatusClientClosedRequest, cause: provider.CauseClientGone, halfClose: true},
		{name: "body slower than the provider timeout",
			raw:      "POST /providers/p/x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc",
			timeout:  300 * time.Millisecond,
			wantCode: 408, cause: provider.CauseBodySlow},
		{name: "chunked body over max_request_body",
			raw:     "POST /providers/p/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + strings.Repeat("a", 32) + "\r\n0\r\n\r\n",
			maxBody: 16, wantCode: 413, cause: provider.CauseBodyTooLarge},
		{name: "TRACE",
			raw:      "TRACE /providers/p/x HTTP/1.1\r\nHost: h\r\n\r\n",
			wantCode: 405},
		{name: "CONNECT",
			raw:      "CONNECT /providers/p/x HTTP/1.1\r\nHost: h\r\n\r\n",
			wantCode: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := proxytest.NewUpstream(t)
			pc := proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), threshold, time.Minute, 1)
			if tt.maxBody > 0 {
				pc.MaxRequestBody = tt.maxBody
			}
			if tt.timeout > 0 {
				pc.Timeout = tt.timeout
			}
			s, ts := startProviders(t, pc)
			addr := ts.Listener.Addr().String()
			for i := range threshold + 1 {
				resp, body := rawExchangeOn(t, addr, tt.raw, tt.halfClose)
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("request %d: got %d %s; want %d", i+1, resp.StatusCode, body, tt.wantCode)
				}
			}
			if u := upstreamAt(t, ts.URL, "p", 0); u.ErrorCount != 0 || u.Status == "unavailable" {
				t.Errorf("upstream: status %s, error_count %d, failures %v; want no failure counted", u.Status, u.ErrorCount, u.RecentFailures)
			}
			if resp, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/p/ok"); resp.StatusCode != 200 {
				t.Errorf("a well-formed request after them: got %d %s; want 200", resp.StatusCode, body)
			}
			if tt.cause != "" {
				if g, w := proxytest.MetricValue(t, s.metrics.reg, notUpstreamMetric, map[string]string{"provider": "p", "cause": tt.cause}), float64(threshold+1); g != w {
					t.Errorf("%s{cause=%q} = %v; want %v", notUpstreamMetric, tt.cause, g, w)
				}
			}
		})
	}
}

// TestUpstreamFaultsStillCount is the other side: what the upstream does
// wrong still counts, so the tests above can tell the difference.
func TestUpstreamFaultsStillCount(t *testing.T) {
	drop := newRawUpstream(t, func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
		readRequest(br) // the whole request, body included; then no answer
	})
	slow := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // the body arrived; the answer does not come in time
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	tests := []struct {
		name     string
		url      string
		wantCode int
	}{
		{"drops the connection after a complete body", "http://" + drop.addr(), 502},
		{"too slow after a complete body", slow.URL, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := proxytest.WithHealth(proxytest.Provider(t, "p", tt.url), 1, time.Minute, 1)
			pc.Timeout = 300 * time.Millisecond
			_, ts := startProviders(t, pc)
			resp, body := rawExchangeOn(t, ts.Listener.Addr().String(),
				"POST /providers/p/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", false)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got %d %s; want %d", resp.StatusCode, body, tt.wantCode)
			}
			if u := upstreamAt(t, ts.URL, "p", 0); u.ErrorCount != 1 || u.Status != "unavailable" {
				t.Errorf("upstream: status %s, error_count %d; want the failure counted and the breaker open", u.Status, u.ErrorCount)
			}
		})
	}
}

// TestUpstream501IsNotAFailure: 501 Not Implemented answers the request's
// method or feature, which any client chooses: it passes through and the
// upstream stays healthy.
func TestUpstream501IsNotAFailure(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, answer(http.StatusNotImplemented))
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 2, time.Minute, 1))
	for range 3 {
		if resp, body := proxytest.Do(t, http.DefaultClient, "PATCH", ts.URL+"/providers/p/x", nil, nil); resp.StatusCode != 501 {
			t.Fatalf("got %d %s; want the upstream's 501", resp.StatusCode, body)
		}
	}
	if u := upstreamAt(t, ts.URL, "p", 0); u.ErrorCount != 0 || u.Status != "healthy" {
		t.Errorf("upstream: status %s, error_count %d; want healthy, no failure", u.Status, u.ErrorCount)
	}
}

// TestProxyOutOfFileDescriptors: when the proxy itself cannot open a
// socket (its own "too many open files"), the client gets 503 with
// Retry-After and the upstream is not blamed. The descriptor limit of
// this test process is lowered, and every free descriptor below it taken,
// while two requests (GET through the lean client, POST through
// http.Transport) are sent over connections opened before. It runs in a
// process of its own (this test binary again), so that nothing left of
// other tests competes for the descriptors.
func TestProxyOutOfFileDescriptors(t *testing.T) {
	if os.Getenv("HEALPROXY_TEST_FD_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProxyOutOfFileDescriptors$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "HEALPROXY_TEST_FD_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err == nil && strings.Contains(string(out), "--- SKIP: TestProxyOutOfFileDescriptors") {
			t.Skipf("skipped in its own process:\n%s", out)
		}
		if err != nil || !strings.Contains(string(out), "--- PASS: TestProxyOutOfFileDescriptors") {
			t.Fatalf("the test in its own process: %v\n%s", err, out)
		}
		return
	}
	up := proxytest.NewUpstream(t)
	s, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, time.Minute, 1))
	addr := ts.Listener.Addr().String()
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		defer c.Close()
		// An answer on it proves the server accepted it (a dial completes
		// in the kernel's backlog, before Accept takes a descriptor).
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /healthz: %v %v", resp, err)
		}
		io.ReadAll(resp.Body)
		if br.Buffered() > 0 {
			t.Fatal("bytes after the /healthz answer")
		}
		conns = append(conns, c)
	}
	var answers []*http.Response
	func() {
		var saved syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			t.Fatal(err)
		}
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		highest := 0
		for _, fd := range fds {
			if n, err := strconv.Atoi(fd.Name()); err == nil {
				highest = max(highest, n)
			}
		}
		lim := saved
		lim.Cur = uint64(highest + 1)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("cannot lower the descriptor limit: %v", err)
		}
		defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
		var fill []*os.File // every free descriptor below the limit
		defer func() {
			for _, f := range fill {
				f.Close()
			}
		}()
		for range highest + 1 {
			f, err := os.Open(os.DevNull)
			if err != nil {
				break
			}
			fill = append(fill, f)
		}
		for i, raw := range []string{
			"GET /providers/p/x HTTP/1.1\r\nHost: h\r\n\r\n",
			"POST /providers/p/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		} {
			if _, err := io.WriteString(conns[i], raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conns[i]), nil)
			if err != nil {
				t.Fatalf("reading the answer to %q: %v", raw, err)
			}
			io.ReadAll(resp.Body)
			answers = append(answers, resp)
		}
	}()
	for i, resp := range answers {
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("request %d: got %d, Retry-After %q; want 503 with Retry-After", i+1, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if u := upstreamAt(t, ts.URL, "p", 0); u.ErrorCount != 0 || u.Status == "unavailable" {
		t.Errorf("upstream: status %s, error_count %d, failures %v; want no failure counted", u.Status, u.ErrorCount, u.RecentFailures)
	}
	if g := proxytest.MetricValue(t, s.metrics.reg, notUpstreamMetric, map[string]string{"provider": "p", "cause": provider.CauseResources}); g != 2 {
		t.Errorf("%s{cause=%q} = %v; want 2", notUpstreamMetric, provider.CauseResources, g)
	}
	if up.Hits.Load() != 0 {
		t.Errorf("upstream got %d requests; want 0", up.Hits.Load())
	}
}

// TestAllDownWaitOnlyForACooldown: the all-down wait step waits only for
// a real cooldown end, and never sends a request again beyond the retry
// policy: a POST (not retried) that an upstream drops is answered at once,
// sent once, and charged once.
func TestAllDownWaitOnlyForACooldown(t *testing.T) {
	drop := newRawUpstream(t, func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
		readRequest(br)
	})
	tests := []struct {
		name      string
		method    string
		retry     config.Retry
		wantSends int64
	}{
		{"POST, not retried", "POST", config.Retry{Budget: 1}, 1},
		{"POST, retried twice", "POST", config.Retry{Budget: 1, Attempts: 2, Methods: []string{"POST"}}, 2},
		{"GET, one attempt", "GET", config.Retry{Budget: 1, Attempts: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := proxytest.CaptureLogs()
			pc := proxytest.Provider(t, "p", "http://"+drop.addr())
			pc.Health = noTrip
			pc.Retry = tt.retry
			pc.AllDown = config.AllDown{Wait: 5 * time.Second}
			s, ts := startServer(t, &config.Config{Providers: []config.Provider{pc}}, withLogger(logger))
			before := drop.conns.Load()
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(`{"order":1}`)
			}
			resp, b := proxytest.Do(t, http.DefaultClient, tt.method, ts.URL+"/providers/p/x", body, nil)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("got %d %s; want 502", resp.StatusCode, b)
			}
			if g := drop.conns.Load() - before; g != tt.wantSends {
				t.Errorf("upstream got %d requests; want %d", g, tt.wantSends)
			}
			if u := upstreamAt(t, ts.URL, "p", 0); u.ErrorCount != tt.wantSends {
				t.Errorf("error_count %d; want %d", u.ErrorCount, tt.wantSends)
			}
			if g := proxytest.MetricValue(t, s.metrics.reg, "healproxy_all_down_total", map[string]string{"provider": "p", "step": "wait"}); g > 0 {
				t.Errorf("all-down wait step taken %v times; want none (nothing was cooling down)", g)
			}
			if strings.Contains(logs.String(), "invalid Read on closed Body") {
				t.Errorf("a consumed body was sent again:\n%s", logs.String())
			}
		})
	}
}

// TestRateLimitedPostKeepsRetryAfter: with POST retries on one upstream,
// a 429 with Retry-After reaches the client as the upstream's own answer,
// Retry-After included, not as a 502 of the proxy's.
func TestRateLimitedPostKeepsRetryAfter(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, answer(http.StatusTooManyRequests, "Retry-After", "2"))
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Health = noTrip
	pc.Retry = config.Retry{Budget: 1, Attempts: 3, Methods: []string{"POST"}, On: []string{"5xx", "429", "connect-failure"}}
	_, ts := startProviders(t, pc)
	resp, body := proxytest.Do(t, http.DefaultClient, "POST", ts.URL+"/providers/p/order", strings.NewReader(`{"a":1}`), nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("got %d, Retry-After %q, %s; want the upstream's 429 with Retry-After: 2", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if !strings.Contains(body, "answer 429") {
		t.Errorf("body %q; want the upstream's own", body)
	}
	if n := int(up.Hits.Load()); n != 1 {
		t.Errorf("upstream got %d requests; want 1 (it asked to wait)", n)
	}
}
