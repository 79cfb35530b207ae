package proxy

// Upstream fault injection (RELIABILITY.md, "Upstream faults"). Each case puts one faulty
// upstream, a raw TCP listener or an httptest server on loopback, behind a
// fresh healproxy and checks three things: what the client gets, what the
// upstream's health records, and that nothing leaks once everything is
// closed (goroutines with goleak, open file descriptors from /proc/self/fd).
//
// Run on its own: go test -race -run 'TestFault' ./proxy/

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// ---- leak checks ----

// leakCheck remembers the goroutines and open file descriptors of the test
// process at the start of a case; verify reports any that remain at its end.
type leakCheck struct {
	fds    map[string]string // fd number → what it points at
	ignore goleak.Option
}

// startLeakCheck snapshots goroutines and fds. It first starts what the
// process starts once and keeps for good (the network poller, the
// breaker's coarse clock), so that those do not count as leaks.
func startLeakCheck(t *testing.T) *leakCheck {
	t.Helper()
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	warm := breaker.New("warm-up", breaker.Settings{ErrorThreshold: 1, Cooldown: time.Second, RecoveryCount: 1}, breaker.Options{})
	_ = warm.Call(func() (time.Duration, error) { return 0, nil })
	return &leakCheck{fds: openFDs(t), ignore: goleak.IgnoreCurrent()}
}

// verify fails the test if goroutines or fds opened since startLeakCheck
// are still there. Closes settle asynchronously (a connection's reader
// goroutine notices its EOF a moment later), so both are waited for.
func (lc *leakCheck) verify(t *testing.T) (leaks int) {
	t.Helper()
	var extra []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra = extra[:0]
		for fd, target := range openFDs(t) {
			if _, ok := lc.fds[fd]; !ok {
				extra = append(extra, fd+" -> "+target)
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		t.Errorf("fd leak: %d file descriptors opened during the test are still open: %v", len(extra), extra)
		leaks += len(extra)
	}
	// goleak retries for about half a second; a loaded CI box may need more.
	for deadline := time.Now().Add(5 * time.Second); goleak.Find(lc.ignore) != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if goleak.Find(lc.ignore) != nil {
		leaks++
		goleak.VerifyNone(t, lc.ignore) // reports the goroutines
	}
	return leaks
}

// openFDs lists this process's open file descriptors.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd here: %v", err)
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		out[e.Name()] = target
	}
	return out
}

// ---- faulty upstreams ----

// rawUpstream is a loopback TCP listener whose connections are served by
// a fault function: no HTTP server stands between the test and the bytes
// on the wire. Close stops it, closes every connection and waits for the
// fault functions, which must return once done is closed.
type rawUpstream struct {
	ln    net.Listener
	fault func(c net.Conn, br *bufio.Reader, done <-chan struct{})
	conns atomic.Int64 // connections accepted
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
	once  sync.Once
}

func newRawUpstream(t *testing.T, fault func(c net.Conn, br *bufio.Reader, done <-chan struct{})) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, fault: fault, done: make(chan struct{}), open: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.Close)
	return u
}

func (u *rawUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.conns.Add(1)
		u.mu.Lock()
		u.open[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer func() {
				u.mu.Lock()
				delete(u.open, c)
				u.mu.Unlock()
				c.Close()
			}()
			u.fault(c, bufio.NewReader(c), u.done)
		}()
	}
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) Close() {
	u.once.Do(func() {
		close(u.done)
		u.ln.Close()
		u.mu.Lock()
		for c := range u.open {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
}

// readRequest consumes one HTTP request; false when there is none.
func readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, req.Body)
	return true
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// ---- the suite ----

// faultCase is one upstream fault. Exactly one of raw and url is set:
// raw is served by a rawUpstream, url builds the upstream URL itself.
type faultCase struct {
	name    string
	scheme  string // of the raw upstream's URL; "" is http
	raw     func(c net.Conn, br *bufio.Reader, done <-chan struct{})
	url     func(t *testing.T) (string, func())
	timeout time.Duration // the provider's per-attempt timeout; 0 is 5s
	// the provider's idle_timeout and max_duration; 0 is the default
	idle, maxDuration time.Duration

	// What the client gets: wantCode, or with wantAbort a response cut
	// short (no answer at all, or a status line whose body ends early):
	// the upstream already started answering, so all the proxy can do is
	// pass the break on, never a body that looks complete.
	wantCode  int
	wantAbort bool
	// What the upstream's health records after one request.
	wantKind breaker.Kind
	// failover: the fault happens before the proxy sends the client
	// anything, so with a healthy second upstream the client sees no error.
	failover bool
}

// faultFigures are the suite's totals, logged at its end for RELIABILITY.md.
type faultFigures struct {
	faults, requests, errors, leaks atomic.Int64
}

func (f *faultFigures) log(t *testing.T, suite string) {
	t.Logf("%s figures: faults tried %d, requests sent %d, errors seen %d, leaks found %d",
		suite, f.faults.Load(), f.requests.Load(), f.errors.Load(), f.leaks.Load())
}

func upstreamFaults(t *testing.T) []faultCase {
	maxHeader := int(newTransport().MaxResponseHeaderBytes)
	if maxHeader <= 0 {
		maxHeader = 10 << 20 // net/http's default
	}
	const hangTimeout = 600 * time.Millisecond
	return []faultCase{
		{
			name:     "connection refused",
			url:      func(t *testing.T) (string, func()) { return proxytest.DeadURL(t), func() {} },
			wantCode: http.StatusBadGateway, wantKind: breaker.KindConnect, failover: true,
		},
		{
			name: "reset after headers, before the body",
			raw: func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
				if readRequest(br) {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
				}
				reset(c)
			},
			wantCode: http.StatusBadGateway, wantKind: breaker.KindError, failover: true,
		},
		{
			name: "reset mid-body",
			raw: func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
				if readRequest(br) {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
					c.Write([]byte(strings.Repeat("x", 16<<10)))
				}
				reset(c)
			},
			wantAbort: true, wantKind: breaker.KindCut,
		},
		{
			name: "hang after headers",
			raw: func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
				if readRequest(br) {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n")
					<-done
				}
			},
			timeout:  hangTimeout,
			wantCode: http.StatusGatewayTimeout, wantKind: breaker.KindTimeout, failover: true,
		},
		{
			name: "hang before headers",
			raw: func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
				if readRequest(br) {
					<-done
				}
			},
			timeout:  hangTimeout,
			wantCode: http.StatusGatewayTimeout, wantKind: breaker.KindTimeout, failover: true,
		},
		{
			name: "truncated chunked body",
			raw: func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
				if readRequest(br) {
					// one chunk, then a FIN instead of the last chunk
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				}
			},
			wantAbort: true, wantKind: breaker.KindCut,
		},
		{
			name: "1 byte per second trickle",
			raw: func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
				if !readRequest(br) {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for range 100 { // bounded: the proxy gives up after its timeout
					if _, err := c.Write([]byte{'x'}); err != nil {
						return
					}
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			},
			// Each byte comes within idle_timeout: a slow answer, not a
			// stalled one; max_duration ends it.
			timeout: 1500 * time.Millisecond, maxDuration: 1500 * time.Millisecond,
			wantAbort: true, wantKind: breaker.KindTimeout,
		},
		{
			name: "1 byte per second trickle, idle_timeout shorter",
			raw: func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
				if !readRequest(br) {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for range 100 { // bounded: the proxy gives up after its idle_timeout
					if _, err := c.Write([]byte{'x'}); err != nil {
						return
					}
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			},
			idle:      300 * time.Millisecond,
			wantAbort: true, wantKind: breaker.KindStalled,
		},
		{
			name: "garbage status line",
			raw: func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
				if readRequest(br) {
					io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP\r\n\r\n")
				}
			},
			wantCode: http.StatusBadGateway, wantKind: breaker.KindError, failover: true,
		},
		{
			name: "huge response headers",
			raw: func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
				if !readRequest(br) {
					return
				}
				bw := bufio.NewWriterSize(c, 64<<10)
				bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
				line := "X-Filler: " + strings.Repeat("h", 8<<10) + "\r\n"
				for n := 0; n <= maxHeader; n += len(line) { // stops early when the proxy hangs up
					if _, err := bw.WriteString(line); err != nil {
						return
					}
				}
				bw.WriteString("\r\nok")
				bw.Flush()
			},
			wantCode: http.StatusBadGateway, wantKind: breaker.KindError, failover: true,
		},
		{
			name: "TLS: untrusted certificate",
			url: func(t *testing.T) (string, func()) {
				up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
				up.Config.ErrorLog = quietLog()
				up.StartTLS()
				t.Cleanup(up.Close)
				return up.URL, up.Close
			},
			wantCode: http.StatusBadGateway, wantKind: breaker.KindError, failover: true,
		},
		{
			name: "TLS: https to a plain HTTP server",
			url: func(t *testing.T) (string, func()) {
				up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain") }))
				up.Config.ErrorLog = quietLog()
				up.Start()
				t.Cleanup(up.Close)
				return strings.Replace(up.URL, "http://", "https://", 1), up.Close
			},
			wantCode: http.StatusBadGateway, wantKind: breaker.KindError, failover: true,
		},
		{
			name:   "TLS: handshake never answered",
			scheme: "https",
			raw: func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
				<-done // reads nothing, writes nothing
			},
			timeout:  hangTimeout,
			wantCode: http.StatusGatewayTimeout, wantKind: breaker.KindTimeout, failover: true,
		},
	}
}

// start starts the case's upstream and returns its URL, a function that
// counts the connections it got (-1: not counted), and one that closes it.
func (tc faultCase) start(t *testing.T) (string, func() int64, func()) {
	t.Helper()
	if tc.url != nil {
		u, closeUp := tc.url(t)
		return u, func() int64 { return -1 }, closeUp
	}
	up := newRawUpstream(t, tc.raw)
	scheme := tc.scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + up.addr(), up.conns.Load, up.Close
}

// quietLog is an http.Server error log for tests that provoke errors.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// clientOutcome is what a client saw of one request.
type clientOutcome struct {
	code    int
	body    string
	err     error // no answer at all
	bodyErr error // an answer whose body broke off
}

func (o clientOutcome) String() string {
	switch {
	case o.err != nil:
		return "no answer: " + o.err.Error()
	case o.bodyErr != nil:
		return fmt.Sprintf("%d, body cut short: %v", o.code, o.bodyErr)
	}
	return fmt.Sprintf("%d %q", o.code, o.body)
}

// send sends method path (with body, when not "") through the proxy.
func (fp *faultProxy) send(method, path, body string) clientOutcome {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fp.ts.URL+path, rd)
	if err != nil {
		return clientOutcome{err: err}
	}
	resp, err := fp.client.Do(req)
	if err != nil {
		return clientOutcome{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return clientOutcome{code: resp.StatusCode, body: string(b), bodyErr: err}
}

// faultProxy is a healproxy in front of the case's upstreams, closed by
// close (not by t.Cleanup, since the leak check runs after it).
type faultProxy struct {
	s        *Server
	ts       *httptest.Server
	client   *http.Client
	closeAll func()
}

func newFaultProxy(t *testing.T, pc config.Provider) *faultProxy {
	t.Helper()
	fp := &faultProxy{client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 20 * time.Second}}
	fp.s, fp.ts = startServer(t, &config.Config{Providers: []config.Provider{pc}}, withQuietFrontLog(), closedBy(&fp.closeAll))
	return fp
}

func (fp *faultProxy) upstream(t *testing.T, i int) api.Upstream {
	t.Helper()
	resp, err := fp.client.Get(fp.ts.URL + "/api/diagnostics/health")
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("health document: %v", err)
	}
	return h.Providers.Entries[0].Upstreams[i]
}

func (fp *faultProxy) close(t *testing.T) {
	t.Helper()
	fp.closeAll()
	fp.client.CloseIdleConnections()
}

// faultMethods are the two ways a request leaves healproxy: a GET without
// a body and a POST with one (which may take different client paths).
var faultMethods = []struct{ method, body string }{{http.MethodGet, ""}, {http.MethodPost, `{"q":1}`}}

// TestFaultUpstream: one faulty upstream alone, one request each, for each
// fault and method. Regression: an upstream that sent its headers
// and then hung or reset before the body counted as a success, and its
// client got no answer at all (the connection dropped) instead of 504/502;
// a body that broke off later was never counted as a failure.
func TestFaultUpstream(t *testing.T) {
	var fig faultFigures
	defer fig.log(t, "upstream faults")
	for _, tc := range upstreamFaults(t) {
		fig.faults.Add(1)
		for _, m := range faultMethods {
			t.Run(tc.name+"/"+m.method, func(t *testing.T) {
				lc := startLeakCheck(t)
				u, _, closeUp := tc.start(t)
				pc := proxytest.Provider(t, "p", u)
				if tc.timeout > 0 {
					pc.Timeout = tc.timeout
				}
				pc.IdleTimeout, pc.MaxDuration = tc.idle, tc.maxDuration
				fp := newFaultProxy(t, pc)

				o := fp.send(m.method, "/providers/p/x", m.body)
				fig.requests.Add(1)
				t.Logf("client got %s", o)
				switch {
				case tc.wantAbort:
					if o.err == nil && o.bodyErr == nil {
						t.Errorf("got %s; want the answer cut short (the upstream's was)", o)
					}
				case o.err != nil || o.bodyErr != nil || o.code != tc.wantCode:
					t.Errorf("got %s; want %d", o, tc.wantCode)
				default:
					var eb errorJSON
					if err := json.Unmarshal([]byte(o.body), &eb); err != nil || eb.Status != "error" || eb.ProviderID != "p" || eb.Error == "" {
						t.Errorf("error body %q; want {\"status\":\"error\",\"provider_id\":\"p\",\"error\":…}", o.body)
					}
				}
				if o.err != nil || o.bodyErr != nil || o.code >= 500 {
					fig.errors.Add(1)
				}

				// The upstream's health: one failure of the right kind. A
				// body that breaks off is recorded when ReverseProxy reads
				// the break, a moment after the client saw it.
				var h api.Upstream
				deadline := time.Now().Add(5 * time.Second)
				for {
					h = fp.upstream(t, 0)
					if h.ErrorCount > 0 || time.Now().After(deadline) {
						break
					}
					time.Sleep(5 * time.Millisecond) // poll interval
				}
				if h.ErrorCount != 1 || len(h.RecentFailures) == 0 || h.RecentFailures[len(h.RecentFailures)-1].Kind != string(tc.wantKind) {
					t.Errorf("upstream health: error_count %d, recent_failures %+v; want one failure of kind %q", h.ErrorCount, h.RecentFailures, tc.wantKind)
				}

				fp.close(t)
				closeUp()
				fig.leaks.Add(int64(lc.verify(t)))
			})
		}
	}
}

// TestFaultUpstreamFailover: the faults that happen before the proxy has
// sent the client anything, with a healthy second upstream: an idempotent
// request never shows the client an error, and the faulty upstream's
// failure is recorded.
func TestFaultUpstreamFailover(t *testing.T) {
	var fig faultFigures
	defer fig.log(t, "upstream faults with failover")
	for _, tc := range upstreamFaults(t) {
		if !tc.failover {
			continue
		}
		fig.faults.Add(1)
		t.Run(tc.name, func(t *testing.T) {
			lc := startLeakCheck(t)
			u, _, closeUp := tc.start(t)
			good := proxytest.NewUpstream(t)
			pc := proxytest.Provider(t, "p", u, good.URL)
			if tc.timeout > 0 {
				pc.Timeout = tc.timeout
			}
			pc.IdleTimeout, pc.MaxDuration = tc.idle, tc.maxDuration
			fp := newFaultProxy(t, pc)
			for i := range 4 {
				o := fp.send(http.MethodGet, "/providers/p/x", "")
				fig.requests.Add(1)
				if o.err != nil || o.bodyErr != nil || o.code != http.StatusOK || !strings.HasPrefix(o.body, "upstream body for /x") {
					fig.errors.Add(1)
					t.Errorf("request %d: got %s; want 200 from the healthy upstream", i, o)
				}
			}
			if h := fp.upstream(t, 0); h.ErrorCount < 1 || len(h.RecentFailures) == 0 || h.RecentFailures[0].Kind != string(tc.wantKind) {
				t.Errorf("faulty upstream: error_count %d, recent_failures %+v; want a failure of kind %q", h.ErrorCount, h.RecentFailures, tc.wantKind)
			}
			fp.close(t)
			closeUp()
			good.Release()
			good.Close()
			fig.leaks.Add(int64(lc.verify(t)))
		})
	}
}

// TestFaultUpstreamRedirects: an upstream redirecting elsewhere. The proxy
// never follows a redirect (the other host gets nothing), the answer is a
// success for the upstream's health, and the Location the client gets is
// either the upstream's own value or a path on this proxy: the rewrite
// never points the client at a host nobody named.
func TestFaultUpstreamRedirects(t *testing.T) {
	lc := startLeakCheck(t)
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
	otherHost := strings.TrimPrefix(other.URL, "http://")
	locations := map[string]string{
		"/base/abs":       other.URL + "/x?k=1",               // another host
		"/base/schemerel": "//" + otherHost + "/x",            // scheme-relative, another host
		"/base/https":     "https://" + otherHost + "/base/y", // the other host, with our base path
		"/base/own":       "/base/z?page=2",                   // the upstream's own path
		"/base/dots":      "/base/../../etc",                  // out of the base path
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", locations[r.URL.Path])
		w.WriteHeader(http.StatusFound)
	}))
	fp := newFaultProxy(t, proxytest.Provider(t, "p", up.URL+"/base"))
	fp.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	upHost := strings.TrimPrefix(up.URL, "http://")
	for path, sent := range locations {
		resp, err := fp.client.Get(fp.ts.URL + "/providers/p" + strings.TrimPrefix(path, "/base"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		t.Logf("upstream Location %q: client got %d, Location %q", sent, resp.StatusCode, loc)
		if resp.StatusCode != http.StatusFound {
			t.Errorf("%s: got %d; want the upstream's 302", path, resp.StatusCode)
		}
		if loc != sent && !strings.HasPrefix(loc, "/providers/p/") && !strings.Contains(loc, upHost) {
			t.Errorf("%s: got Location %q; want the upstream's %q or a path under /providers/p/", path, loc, sent)
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host got %d requests; a redirect is never followed", n)
	}
	if h := fp.upstream(t, 0); h.ErrorCount != 0 || h.SuccessCount != int64(len(locations)) {
		t.Errorf("upstream health: error_count %d, success_count %d; want 0 and %d", h.ErrorCount, h.SuccessCount, len(locations))
	}
	fp.close(t)
	up.Close()
	other.Close()
	lc.verify(t)
}

// TestFaultCloseReleasesUpstreamConns: Server.Close leaves no connection
// to an upstream open. Regression: the keep-alive connections
// of the proxy's own transport stayed idle after Close, each holding an fd
// and two goroutines until the upstream hung up or 90 s passed.
func TestFaultCloseReleasesUpstreamConns(t *testing.T) {
	var opened, closed atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	fp := newFaultProxy(t, proxytest.Provider(t, "p", up.URL))
	for _, m := range faultMethods {
		if o := fp.send(m.method, "/providers/p/x", m.body); o.code != http.StatusOK || o.err != nil || o.bodyErr != nil {
			t.Fatalf("%s: got %s; want 200", m.method, o)
		}
	}
	if opened.Load() == 0 {
		t.Fatal("the upstream saw no connection")
	}
	fp.close(t)
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() < opened.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if o, c := opened.Load(), closed.Load(); c < o {
		t.Errorf("after Server.Close the upstream still has %d of %d connections open", o-c, o)
	}
}
