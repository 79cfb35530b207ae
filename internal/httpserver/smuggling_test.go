package httpserver

// Request smuggling on a keep-alive connection: the guard of
// New/GuardListener must keep following the connection's framing for as
// long as net/http reads HTTP on it, whatever came before, and refuse the
// ambiguous shapes on every HTTP version (see TestRequestSmugglingRefused
// in proxy/security_test.go for the shapes themselves on a fresh
// connection, through the whole proxy).

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream stands for healproxy and the upstream behind it: it answers
// 200 to /healthz and to requests for provider p (/providers/p/…), which
// it records as the upstream would see them (without the /providers/p
// prefix, with their bodies), and 404 to the rest.
type upstream struct {
	mu   sync.Mutex
	seen []string // "RequestURI body"
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
	case strings.HasPrefix(r.URL.Path, "/providers/p/"):
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, strings.TrimPrefix(r.RequestURI, "/providers/p")+" "+string(body))
		u.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

func (u *upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// startServed serves h as cmd/healproxy does (New on a GuardListener) on
// a loopback port.
func startServed(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := New(h, log.New(io.Discard, "", 0))
	go hs.Serve(GuardListener(ln))
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// converse writes each step to one new connection to addr, reading one
// answer after each step before writing the next, then reads answers
// until the server closes the connection. It returns the answers' status
// codes. A step may hold several pipelined requests; their answers after
// the first are read with the next steps' or at the end. An empty step
// only reads the next answer.
func converse(t *testing.T, addr string, steps ...string) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails the test, not a timing assertion
	br := bufio.NewReader(c)
	var status []int
	read := func() bool {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server neither answered nor closed the connection: %v (statuses so far %v)", err, status)
			}
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = append(status, resp.StatusCode)
		return true
	}
	for i, step := range steps {
		if _, err := io.WriteString(c, step); err != nil {
			if i == 0 {
				t.Fatalf("writing the first step: %v", err)
			}
			break // closed after an earlier answer: read what is left
		}
		if !read() {
			return status
		}
	}
	for read() {
	}
	return status
}

const (
	smuggleHost = "Host: 127.0.0.1\r\n"
	// smuggledReq must never reach the upstream; it closes the
	// connection, so a server that serves it answers promptly.
	smuggledReq = "GET /providers/p/smuggled HTTP/1.1\r\n" + smuggleHost + "Connection: close\r\n\r\n"
	// clteReq is Content-Length with Transfer-Encoding, smuggledReq
	// behind it.
	clteReq = "POST /providers/p/clte HTTP/1.1\r\n" + smuggleHost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledReq
	// obsFoldReq has a folded header line, smuggledReq behind it.
	obsFoldReq = "GET /providers/p/fold HTTP/1.1\r\n" + smuggleHost + "X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n" + smuggledReq
	// upgradeReq asks for an upgrade /healthz does not grant (200, no
	// 101): the connection carries HTTP on.
	upgradeReq = "GET /healthz HTTP/1.1\r\n" + smuggleHost + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	// connectReq is a CONNECT no handler here tunnels.
	connectReq = "CONNECT /providers/x HTTP/1.1\r\n" + smuggleHost + "\r\n"
)

// teclHTTP10 is a TE.CL smuggle on HTTP/1.0: a front-end reading the
// chunked body forwards smuggledReq inside a chunk; net/http, which
// ignores Transfer-Encoding on HTTP/1.0, reads only the chunk-size line
// (the Content-Length) and would take smuggledReq for the next request.
func teclHTTP10() string {
	sizeLine := fmt.Sprintf("%x\r\n", len(smuggledReq))
	return "POST /providers/p/tecl HTTP/1.0\r\n" + smuggleHost + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n" +
		"Content-Length: " + strconv.Itoa(len(sizeLine)) + "\r\n\r\n" + sizeLine + smuggledReq + "\r\n0\r\n\r\n"
}

// TestSmugglingGuardOnKeepAlive: on one keep-alive connection to the
// server as cmd/healproxy runs it, nothing earlier on the connection
// switches the guard off or puts it out of step with net/http: each
// ambiguous request is refused (400) and the connection closed, and the
// upstream never sees the smuggled request. Steps are written one at a
// time, each after the previous answer, as an attacker who wants the
// first requests served would.
func TestSmugglingGuardOnKeepAlive(t *testing.T) {
	up := &upstream{}
	addr := startServed(t, up)

	// bigHead is accepted by net/http though longer than MaxHeaderBytes
	// + 4096: net/http's limit counts only what it reads for this
	// request, not what its 4 KiB buffer already holds from the read of
	// the request before it (same write, so same read on loopback).
	bigHead := "GET /healthz HTTP/1.1\r\n" + smuggleHost + "X-Pad: " + strings.Repeat("a", MaxHeaderBytes+4096+2000) + "\r\n\r\n"

	const any = 0 // any status
	tests := []struct {
		name       string
		steps      []string
		wantStatus []int // then the connection is closed
	}{
		{"Upgrade request, then Content-Length with Transfer-Encoding",
			[]string{upgradeReq, clteReq}, []int{200, 400}},
		{"CONNECT, then Content-Length with Transfer-Encoding",
			[]string{connectReq, clteReq}, []int{any, 400}},
		{"Upgrade request, then obs-fold",
			[]string{upgradeReq, obsFoldReq}, []int{200, 400}},
		{"CONNECT and Upgrade pipelined, then obs-fold",
			[]string{connectReq + upgradeReq, obsFoldReq}, []int{any, 200, 400}},
		{"HTTP/1.0 Content-Length with Transfer-Encoding",
			[]string{"POST /providers/p/a HTTP/1.0\r\n" + smuggleHost + "Connection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledReq},
			[]int{400}},
		{"HTTP/1.0 TE.CL smuggle", []string{teclHTTP10()}, []int{400}},
		{"HTTP/1.0 TE.CL smuggle after a request",
			[]string{"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", teclHTTP10()}, []int{200, 400}},
		{"HTTP/1.0 Transfer-Encoding alone",
			[]string{"POST /providers/p/a HTTP/1.0\r\n" + smuggleHost + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledReq},
			[]int{400}},
		{"HTTP/1.0 Transfer-Encoding net/http does not implement, then Content-Length with Transfer-Encoding",
			[]string{"POST /providers/p/a HTTP/1.0\r\n" + smuggleHost + "Connection: keep-alive\r\nTransfer-Encoding: gzip\r\n\r\n", clteReq},
			[]int{400}},
		// net/http splits the request line at single spaces; a
		// non-ASCII space (U+00A0) inside the target is no separator.
		{"request target with a no-break space, Content-Length with Transfer-Encoding",
			[]string{"POST /providers/p/a\u00a0b HTTP/1.1\r\n" + smuggleHost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledReq},
			[]int{400}},
		{"head longer than MaxHeaderBytes+4096 pipelined after a request, then Content-Length with Transfer-Encoding",
			[]string{"GET /healthz HTTP/1.1\r\n" + smuggleHost + "\r\n" + bigHead, "", clteReq}, []int{200, 200, 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			status := converse(t, addr, tt.steps...)
			if len(status) != len(tt.wantStatus) {
				t.Fatalf("got statuses %v, then the connection closed; want %v", status, tt.wantStatus)
			}
			for i, st := range status {
				if want := tt.wantStatus[i]; want != any && st != want {
					t.Errorf("answer %d: status %d; want %d", i, st, want)
				}
			}
			for _, r := range up.requests()[before:] {
				t.Errorf("the upstream saw %q; want nothing", r)
			}
		})
	}
}

// TestSmugglingGuardPipelinedStillServed: well-formed requests pipelined
// on one connection, framed every way net/http accepts (chunked with
// extensions and trailers, Content-Length with leading zeros and
// repeated, HTTP/1.0 keep-alive, an Upgrade not granted, a CONNECT not
// tunnelled, blank lines after a POST) are all served: the guard follows
// them without refusing any.
func TestSmugglingGuardPipelinedStillServed(t *testing.T) {
	up := &upstream{}
	addr := startServed(t, up)
	raw := "GET /healthz HTTP/1.1\r\n" + smuggleHost + "\r\n" +
		"POST /providers/p/chunked HTTP/1.1\r\n" + smuggleHost + "Transfer-Encoding: Chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer-A: 1\r\n\r\n" +
		"\r\n" + // a blank line after a POST body, as RFC 9112 §2.2 lets a server skip
		"POST /providers/p/length HTTP/1.1\r\n" + smuggleHost + "Content-Length: 005\r\nContent-Length: 005\r\n\r\nhello" +
		upgradeReq +
		"POST /providers/p/http10 HTTP/1.0\r\n" + smuggleHost + "Connection: keep-alive\r\nContent-Length: 2\r\n\r\nhi" +
		connectReq +
		"POST /providers/p/lf HTTP/1.1\n" + smuggleHost[:len(smuggleHost)-2] + "\nContent-Length: 3\n\nabc" +
		"GET /providers/p/last HTTP/1.1\r\n" + smuggleHost + "Connection: close\r\n\r\n"
	status := converse(t, addr, raw)
	want := []int{200, 200, 200, 200, 200, 0, 200, 200}
	if len(status) != len(want) {
		t.Fatalf("got statuses %v; want %v", status, want)
	}
	for i, st := range status {
		if want[i] != 0 && st != want[i] {
			t.Errorf("answer %d: status %d; want %d", i, st, want[i])
		}
	}
	seen := up.requests()
	wantUp := []string{"/chunked helloabc", "/length hello", "/http10 hi", "/lf abc", "/last "}
	if !slices.Equal(seen, wantUp) {
		t.Errorf("the upstream saw %q; want %q", seen, wantUp)
	}
}

// TestSmugglingGuardLetsHijackedUpgradeThrough: an upgrade a handler does
// grant (here httputil.ReverseProxy relaying a 101 from a loopback
// upstream, which hijacks the connection) works end to end through the
// guard, even when what flows after the 101 looks like ambiguous HTTP;
// and the guard stops following the hijacked connection.
func TestSmugglingGuardLetsHijackedUpgradeThrough(t *testing.T) {
	// The upstream answers 101 to any request, then echoes raw bytes.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { upLn.Close() })
	go func() {
		for {
			c, err := upLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+req.Header.Get("Upgrade")+"\r\n\r\n")
				io.Copy(c, br)
			}()
		}
	}()
	upURL := &url.URL{Scheme: "http", Host: upLn.Addr().String()}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guards := make(chan *guardConn, 1)
	rp := httputil.NewSingleHostReverseProxy(upURL)
	hs := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gc, _ := r.Context().Value(guardConnKey{}).(*guardConn); gc != nil {
			select {
			case guards <- gc:
			default:
			}
		}
		rp.ServeHTTP(w, r)
	}), log.New(io.Discard, "", 0))
	go hs.Serve(GuardListener(ln))
	t.Cleanup(func() { hs.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET /chat HTTP/1.1\r\n"+smuggleHost+"Connection: Upgrade\r\nUpgrade: echo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d; want 101", resp.StatusCode)
	}
	// After the 101 the bytes are not HTTP; these would be refused as
	// HTTP, twice over, and must be relayed untouched.
	for _, msg := range []string{clteReq, obsFoldReq + clteReq, strings.Repeat("x", 100000)} {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatalf("writing after the upgrade: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("reading the echo: %v (got %.60q)", err, got)
		}
		if string(got) != msg {
			t.Fatalf("echo %.60q…; want %.60q…", got, msg)
		}
	}
	gc := <-guards
	if !gc.hijacked.Load() {
		t.Error("the guard still follows the hijacked connection")
	}
}

// feedGuard follows stream with a fresh guardConn, in pieces of n bytes.
func feedGuard(stream []byte, n int) *guardConn {
	c := &guardConn{}
	for s := stream; len(s) > 0; {
		k := min(len(s), n)
		c.follow(s[:k])
		s = s[k:]
	}
	return c
}

// TestGuardConnFollowsInAnyPieces: however the reads split a stream, the
// guard follows the same framing: a well-formed pipelined stream leaves
// it waiting for a head, nothing refused; the same with an ambiguous
// head at the end is refused.
func TestGuardConnFollowsInAnyPieces(t *testing.T) {
	good := guardBenchStream(3)
	bad := append(append([]byte(nil), good...), clteReq...)
	for _, n := range []int{1, 2, 3, 7, 100, 4096, len(bad)} {
		if c := feedGuard(good, n); c.state != gHead || c.refused.Load() != nil {
			t.Errorf("pieces of %d: state %d, refused %v after a well-formed stream; want a head next, nothing refused", n, c.state, c.refused.Load())
		}
		if c := feedGuard(bad, n); c.refused.Load() == nil {
			t.Errorf("pieces of %d: Content-Length with Transfer-Encoding at the end of the stream not refused", n)
		}
	}
}

// TestGuardConnSkipsBodies: a body, by Content-Length or chunked, is
// skipped, not read as a head, whatever it holds.
func TestGuardConnSkipsBodies(t *testing.T) {
	tests := []struct{ name, stream string }{
		{"Content-Length", "POST / HTTP/1.1\r\n" + smuggleHost + "Content-Length: " + strconv.Itoa(len(clteReq)) + "\r\n\r\n" + clteReq},
		{"chunked", "POST / HTTP/1.1\r\n" + smuggleHost + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n", len(clteReq)) + clteReq + "\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		if c := feedGuard([]byte(tt.stream), 4096); c.state != gHead || c.refused.Load() != nil {
			t.Errorf("%s body holding an ambiguous head: state %d, refused %v; want a head next, nothing refused", tt.name, c.state, c.refused.Load())
		}
	}
}

// TestGuardConnRefusesWhereItLoses: where the guard stops following
// (net/http refuses those shapes itself and closes), it also refuses
// the connection, so that nothing after would be served unfollowed.
func TestGuardConnRefusesWhereItLoses(t *testing.T) {
	chunked := "POST / HTTP/1.1\r\n" + smuggleHost + "Transfer-Encoding: chunked\r\n\r\n"
	tests := []struct{ name, stream string }{
		{"head longer than net/http accepts", "GET / HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", maxGuardHead)},
		{"malformed chunk size", chunked + "zz\r\n"},
		{"chunk-size line too long", chunked + "1;" + strings.Repeat("e", 5000)},
		{"trailer line too long", chunked + "0\r\nX: " + strings.Repeat("a", 5000)},
		{"Transfer-Encoding net/http does not implement", "POST / HTTP/1.1\r\n" + smuggleHost + "Transfer-Encoding: chunked, identity\r\n\r\n"},
	}
	for _, tt := range tests {
		c := feedGuard([]byte(tt.stream), 4096)
		if c.state != gOff || c.refused.Load() == nil {
			t.Errorf("%s: state %d, refused %v; want not followed, refused", tt.name, c.state, c.refused.Load())
		}
	}
}

// TestGuardRefusalAnswer: the refusal is healproxy's JSON error answer,
// byte for byte, not to be cached, and it closes the connection.
func TestGuardRefusalAnswer(t *testing.T) {
	addr := startServed(t, &upstream{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, clteReq); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"status":"error","error":"ambiguous request framing refused: Content-Length together with Transfer-Encoding"}` + "\n"
	if resp.StatusCode != http.StatusBadRequest || string(body) != want {
		t.Errorf("got %d %q; want 400 %q", resp.StatusCode, body, want)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q; want %q", k, got, v)
		}
	}
	if !resp.Close { // ReadResponse takes Connection: close out of the header
		t.Error("no Connection: close")
	}
}
