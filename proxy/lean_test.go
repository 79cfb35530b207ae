package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// headRecorder is a raw HTTP/1.1 upstream (a rawUpstream) that records
// every request head as it arrives on the wire and answers with reply (a
// full raw answer; "" means a small keep-alive 200).
type headRecorder struct {
	*rawUpstream
	mu     sync.Mutex
	heads  []string
	closed int                // connections that ended
	reply  func(n int) string // n: request number on its connection, from 1
	// holdFirst, when set, makes the first answer on each connection the
	// last: the rest of it is never sent, the connection is held until the
	// other side closes it or holdFirst is closed.
	holdFirst chan struct{}
}

func newHeadRecorder(t *testing.T, reply func(n int) string) *headRecorder {
	return newHoldingRecorder(t, reply, nil)
}

func newHoldingRecorder(t *testing.T, reply func(n int) string, holdFirst chan struct{}) *headRecorder {
	t.Helper()
	h := &headRecorder{reply: reply, holdFirst: holdFirst}
	h.rawUpstream = newRawUpstream(t, h.serve)
	return h
}

func (h *headRecorder) serve(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
	defer func() {
		c.Close()
		h.mu.Lock()
		h.closed++
		h.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for n := 1; n < 1000; n++ {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		h.mu.Lock()
		h.heads = append(h.heads, head.String())
		h.mu.Unlock()
		reply := ""
		if h.reply != nil {
			reply = h.reply(n)
		}
		if reply == "" {
			reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
			if !strings.HasPrefix(head.String(), "HEAD ") {
				reply += "ok"
			}
		}
		if reply == "close" { // close without answering
			return
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
		if h.holdFirst != nil && n == 1 { // until the other side closes, or the test ends
			go func() {
				select {
				case <-h.holdFirst:
				case <-done:
				}
				c.Close()
			}()
			io.Copy(io.Discard, c)
			return
		}
		if strings.Contains(reply, "Connection: close") {
			return
		}
	}
}

func (h *headRecorder) url() string { return "http://" + h.addr() }

func (h *headRecorder) last(t *testing.T) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.heads) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return h.heads[len(h.heads)-1]
}

func (h *headRecorder) connCount() int { return int(h.conns.Load()) }

// normalizedHead is a request head with its header lines sorted and
// X-Forwarded-Host, which names each healproxy's own address, blanked.
func normalizedHead(head string) string {
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "X-Forwarded-Host: ") { // each healproxy's own address
			lines[i] = "X-Forwarded-Host: (front)"
		}
	}
	slices.Sort(lines[1:])
	return strings.Join(lines, "\n")
}

// TestLeanClientSendsWhatTransportSends sends the same client requests
// through healproxy with the lean client and with http.Transport only, and
// compares the request heads the upstream receives byte for byte (header
// order aside).
func TestLeanClientSendsWhatTransportSends(t *testing.T) {
	up := newHeadRecorder(t, nil)
	lean, leanFront := startProviders(t, proxytest.Provider(t, "p", up.url()+"/api/v3?key=k1"))
	if lean.h1 == nil {
		t.Fatal("the default server has no lean client")
	}
	std, err := New(lean.state.Load().cfg, Options{Logger: proxytest.DiscardLogger(), Transport: newTransport()})
	if err != nil {
		t.Fatal(err)
	}
	stdFront := httptest.NewServer(std)
	t.Cleanup(func() { stdFront.Close(); std.Close(context.Background()) })

	cases := []struct {
		method, path string
		hdr          http.Header
	}{
		{"GET", "/providers/p/simple/price?ids=bitcoin&vs=usd", nil},
		{"GET", "/providers/p", nil},
		{"GET", "/providers/p/", nil},
		{"GET", "/providers/p/a%20b/%41c;v=1", nil},
		{"GET", "/providers/p/a!b(c)", nil}, // not lean-clean: Transport's escaping
		{"GET", "/providers/p/x?q=%22a+b%22&z", nil},
		{"HEAD", "/providers/p/x", nil},
		{"GET", "/providers/p/x", http.Header{"User-Agent": {"curl/8.0"}, "Accept": {"application/json", "text/plain"}}},
		{"GET", "/providers/p/x", http.Header{"X-Empty": {""}, "Te": {"trailers"}, "Accept-Encoding": {"gzip"}}},
		{"GET", "/providers/p/x", http.Header{"Connection": {"keep-alive, X-Hop"}, "X-Hop": {"1"}, "X-Forwarded-For": {"10.0.0.1"}}},
		{"GET", "/providers/p/x", http.Header{"X-Api-Key": {"client's own"}, "Cookie": {"a=1; b=2"}}},
	}
	for _, tc := range cases {
		var heads [2]string
		for i, front := range []string{leanFront.URL, stdFront.URL} {
			req, _ := http.NewRequest(tc.method, front+tc.path, nil)
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			if req.Header.Get("Accept-Encoding") == "" {
				req.Header.Set("Accept-Encoding", "identity") // Go's client would add gzip itself
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: status %d", tc.method, tc.path, resp.StatusCode)
			}
			heads[i] = normalizedHead(up.last(t))
		}
		if heads[0] != heads[1] {
			t.Errorf("%s %s: the upstream saw\nlean:\n%s\ntransport:\n%s", tc.method, tc.path, heads[0], heads[1])
		}
	}
	if dials := lean.h1.Pool("http", up.addr()).Dials(); dials == 0 {
		t.Error("the lean client was never used")
	}
}

// leanPool is the lean client's pool of s for the upstream at base.
func leanPool(t *testing.T, s *Server, base string) *h1.Pool {
	t.Helper()
	return s.h1.Pool("http", strings.TrimPrefix(base, "http://"))
}

func TestLeanClientReusesConnections(t *testing.T) {
	up := newHeadRecorder(t, func(n int) string {
		switch n % 3 {
		case 1:
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		case 2:
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n"
		default:
			return "HTTP/1.1 304 Not Modified\r\n\r\n"
		}
	})
	s, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
	c := &http.Client{}
	for i := range 12 {
		resp, body := proxytest.Get(t, c, front.URL+"/providers/p/x")
		switch i % 3 {
		case 0, 1:
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
			if i%3 == 1 && resp.Trailer.Get("X-Sum") != "1" {
				t.Errorf("request %d: trailer X-Sum = %q; want 1", i, resp.Trailer.Get("X-Sum"))
			}
		case 2:
			if resp.StatusCode != http.StatusNotModified {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
	}
	if got := up.connCount(); got != 1 {
		t.Errorf("12 sequential requests took %d upstream connections; want 1", got)
	}
	if d := leanPool(t, s, up.url()).Dials(); d != 1 {
		t.Errorf("lean client dialled %d times; want 1", d)
	}
}

func TestLeanClientHonoursConnectionClose(t *testing.T) {
	up := newHeadRecorder(t, func(int) string {
		return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
	})
	_, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
	c := &http.Client{}
	for i := range 3 {
		if resp, body := proxytest.Get(t, c, front.URL+"/providers/p/x"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := up.connCount(); got != 3 {
		t.Errorf("upstream connections = %d; want 3 (Connection: close each time)", got)
	}
}

// A client that leaves in the middle of a body: the exchange is cut at
// once (not at the timeout) and the upstream connection, with unread bytes
// on it, is closed rather than pooled.
func TestLeanClientClosesConnectionWithUnreadBody(t *testing.T) {
	hold := make(chan struct{})
	up := newHoldingRecorder(t, func(n int) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 100000)
	}, hold)
	t.Cleanup(func() { close(hold) })
	s, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
	resp, err := http.Get(front.URL + "/providers/p/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1000); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	proxytest.Eventually(t, 5*time.Second, "healproxy to close the upstream connection", func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.closed == 1
	})
	if idle := leanPool(t, s, up.url()).Idle(); idle != 0 {
		t.Errorf("%d connections pooled; want none", idle)
	}
	if h := fetchProvider(t, front.URL, "p"); h.Upstreams[0].ErrorCount != 0 {
		t.Errorf("a client leaving counted against the upstream: %+v", h.Upstreams[0])
	}
}

func TestLeanClientTimeoutIsATimeout(t *testing.T) {
	release := make(chan struct{})
	up := newHeadRecorder(t, func(int) string { <-release; return "close" })
	t.Cleanup(func() { close(release) }) // before the recorder's own cleanup waits for it
	pc := proxytest.Provider(t, "p", up.url())
	pc.Timeout = 200 * time.Millisecond
	_, front := startProviders(t, pc)
	resp, _ := proxytest.Get(t, &http.Client{}, front.URL+"/providers/p/x")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d; want 504", resp.StatusCode)
	}
	h := fetchProvider(t, front.URL, "p")
	if len(h.Upstreams) != 1 || len(h.Upstreams[0].RecentFailures) != 1 || h.Upstreams[0].RecentFailures[0].Kind != "timeout" {
		t.Fatalf("upstream health: %+v; want one timeout failure", h.Upstreams)
	}
}

func TestLeanClientHugeHeadersRefused(t *testing.T) {
	up := newHeadRecorder(t, func(int) string {
		return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", h1.MaxHeaderBytes+10) + "\r\nContent-Length: 2\r\n\r\nok"
	})
	_, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
	resp, body := proxytest.Get(t, &http.Client{}, front.URL+"/providers/p/x")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d (%s); want 502", resp.StatusCode, body)
	}
}

func TestLeanClientPassesEarlyHints(t *testing.T) {
	up := newHeadRecorder(t, func(int) string {
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	_, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /providers/p/x HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(conn)
	first, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.StatusCode != 103 || first.Header.Get("Link") == "" {
		t.Fatalf("first answer %d %v; want 103 with Link", first.StatusCode, first.Header)
	}
	second, err := http.ReadResponse(br, nil)
	if err != nil || second.StatusCode != 200 {
		t.Fatalf("second answer: %v %v", second, err)
	}
}

// Answers that were never the request's: a kept-alive connection the
// upstream closed while it sat idle (the request fails before a byte of
// answer and is sent again on a new connection), a 408 a server wrote on
// a connection it timed out (dropped, sent again, as http.Transport
// does), and bytes after an answer (the connection is closed, never read
// as the next answer). The client sees only 200s.
func TestLeanClientNeverServesAStrayAnswer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reply     func(n int) string
		requests  int
		wantConns int
	}{
		// A: requests 1 and 2 (closed unanswered); B: 2 again and 3
		// (closed); C: 3 again.
		{"closed while idle", func(n int) string {
			if n == 2 {
				return "close"
			}
			return ""
		}, 3, 3},
		{"408 on a reused connection", func(n int) string {
			if n == 2 {
				return "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
			}
			return ""
		}, 2, 2},
		{"bytes after the answer", func(n int) string {
			if n == 1 {
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"
			}
			return ""
		}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newHeadRecorder(t, tc.reply)
			_, front := startProviders(t, proxytest.Provider(t, "p", up.url()))
			c := &http.Client{}
			for i := range tc.requests {
				if resp, body := proxytest.Get(t, c, front.URL+"/providers/p/x"); resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("request %d: %d %q; want 200 ok", i, resp.StatusCode, body)
				}
			}
			if got := up.connCount(); got != tc.wantConns {
				t.Errorf("upstream connections = %d; want %d", got, tc.wantConns)
			}
		})
	}
}
