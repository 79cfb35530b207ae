package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scriptedUpstream is a raw HTTP/1.1 upstream on loopback whose every
// exchange is scripted per request (by method and X-Req id), including
// bytes written after the answer, at once or only once the test releases
// them: the pooled keep-alive connection then holds bytes nobody asked
// for, as a buggy or hostile upstream leaves them. settle makes each
// exchange's bytes reach the client's socket before the test sends the
// next request, so that what the pool finds there is deterministic.
type scriptedUpstream struct {
	ln     net.Listener
	script func(method, id string) upstreamReply
	quit   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	changed  chan struct{}         // cap 1: inflight or a count changed
	inflight int                   // exchanges between reading the head and the last byte
	conns    int                   // connections accepted
	open     map[net.Conn]struct{} // to close at the end
	// by client address: bytes written after its last answer (at least 1
	// once the upstream closed: the close is to be seen as well)
	pending map[string]int
	release map[string]chan struct{} // by request id: the late part may be written
}

// upstreamReply is one exchange: answer, what a correct client reads as
// the answer to the request (a HEAD answer's body is not part of it:
// put it in extra); extra, written after the answer; late, extra held
// back until the test calls release(id); and the connection closed
// after the exchange (closeAfter) or instead of an answer (answer "").
type upstreamReply struct {
	answer     string
	extra      string
	late       bool
	closeAfter bool
}

func newScriptedUpstream(tb testing.TB, script func(method, id string) upstreamReply) *scriptedUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &scriptedUpstream{
		ln: ln, script: script, quit: make(chan struct{}), changed: make(chan struct{}, 1),
		open: map[net.Conn]struct{}{}, pending: map[string]int{}, release: map[string]chan struct{}{},
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns++
			u.open[c] = struct{}{}
			u.pending[c.RemoteAddr().String()] = 0
			u.mu.Unlock()
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	return u
}

// stop closes the listener and every connection and waits for the
// upstream's goroutines.
func (u *scriptedUpstream) stop() {
	close(u.quit)
	u.ln.Close()
	u.mu.Lock()
	for c := range u.open {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *scriptedUpstream) addr() string { return u.ln.Addr().String() }

func (u *scriptedUpstream) connCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func (u *scriptedUpstream) notify() {
	select {
	case u.changed <- struct{}{}:
	default:
	}
}

func (u *scriptedUpstream) releaseCh(id string) chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	ch := u.release[id]
	if ch == nil {
		ch = make(chan struct{})
		u.release[id] = ch
	}
	return ch
}

// releaseLate lets the exchanges of request id write their late bytes.
func (u *scriptedUpstream) releaseLate(id string) {
	ch := u.releaseCh(id)
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (u *scriptedUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.open, c)
		u.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	client := c.RemoteAddr().String()
	br := bufio.NewReader(c)
	for range 100 {
		method, id, ok := readRequestHead(br)
		if !ok {
			return
		}
		u.mu.Lock()
		u.inflight++
		u.mu.Unlock()
		more := u.exchange(c, client, method, id)
		u.mu.Lock()
		if !more {
			// closed before the exchange counts as written, so that
			// settle waits for the close to reach the client too
			c.Close()
			u.pending[client] = max(u.pending[client], 1)
		}
		u.inflight--
		u.mu.Unlock()
		u.notify()
		if !more {
			return
		}
	}
}

// exchange writes one scripted answer; false: the connection is done.
func (u *scriptedUpstream) exchange(c net.Conn, client, method, id string) bool {
	r := u.script(method, id)
	if r.answer == "" {
		return false
	}
	early := r.answer
	if !r.late {
		early += r.extra
	}
	if _, err := io.WriteString(c, early); err != nil {
		return false
	}
	if r.late {
		select {
		case <-u.releaseCh(id):
		case <-u.quit:
			return false
		}
		if _, err := io.WriteString(c, r.extra); err != nil {
			return false
		}
	}
	u.mu.Lock()
	u.pending[client] = len(r.extra)
	u.mu.Unlock()
	return !r.closeAfter
}

// readRequestHead reads a request head and returns its method and X-Req.
func readRequestHead(br *bufio.Reader) (method, id string, ok bool) {
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil || len(line) > 8<<10 {
			return "", "", false
		}
		if line == "\r\n" {
			return method, id, method != ""
		}
		if first {
			method, _, _ = strings.Cut(line, " ")
		} else if v, found := strings.CutPrefix(line, "X-Req: "); found {
			id = strings.TrimSpace(v)
		}
	}
}

// settle waits until the upstream has written every byte of the
// exchanges so far and, on each connection the pool holds idle, until
// the bytes the upstream wrote after its last answer (or its close) are
// in the client's socket: the pool then finds there what a client coming a little later
// would.
func (u *scriptedUpstream) settle(tb testing.TB, p *Pool) {
	tb.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		u.mu.Lock()
		n := u.inflight
		u.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-u.changed:
		case <-timeout.C:
			tb.Fatalf("the upstream still writes %d exchanges", n)
		}
	}
	p.mu.Lock()
	idle := append([]*conn(nil), p.idle...)
	p.mu.Unlock()
	for _, c := range idle {
		u.mu.Lock()
		want := u.pending[c.nc.LocalAddr().String()]
		u.mu.Unlock()
		if want > 0 {
			waitReadable(tb, c.nc, want)
		}
	}
}

// waitReadable waits until want bytes can be read from nc's socket (or
// the peer has closed it), without reading them.
func waitReadable(tb testing.TB, nc net.Conn, want int) {
	tb.Helper()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		tb.Fatalf("%T is no socket", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer nc.SetReadDeadline(time.Time{})
	buf := make([]byte, want)
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return n >= want || perr == nil || perr != syscall.EAGAIN // enough, EOF or an error
	})
	if err != nil {
		tb.Fatalf("%d of the upstream's %d late bytes reached the client: %v", n, want, err)
	}
}

// leanPoolFor is a lean client pool for the scripted upstream. Its
// connections end with a reset rather than a FIN, so that a fuzzing run's
// thousands of them leave no TIME_WAIT sockets behind.
func leanPoolFor(u *scriptedUpstream) *Pool {
	d := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return nc, err
	}
	return newPool(u.addr(), u.addr(), dial)
}

// leanAnswer is what a client got through the lean client.
type leanAnswer struct {
	status  int
	id      string // the answer's X-Req
	body    string
	bodyErr error // the body was cut
}

// leanDo sends request id through p and reads its answer; err: none was
// delivered.
func leanDo(p *Pool, method, id string) (leanAnswer, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+p.host+"/x", nil)
	if err != nil {
		return leanAnswer{}, err
	}
	req.Header.Set("X-Req", id)
	resp, err := p.RoundTrip(req, Target{Path: "/x"}, 5*time.Second)
	if err != nil {
		return leanAnswer{}, err
	}
	defer resp.Body.Close()
	b, berr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return leanAnswer{status: resp.StatusCode, id: resp.Header.Get("X-Req"), body: string(b), bodyErr: berr}, nil
}

// answerFor is the honest answer to request id, naming it in a header and
// in the body (no body for HEAD; its length declared all the same).
func answerFor(method, id string) string {
	body := "answer " + id
	a := "HTTP/1.1 200 OK\r\nX-Req: " + id + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if method != http.MethodHead {
		a += body
	}
	return a
}

// strayAnswer is a complete answer no request asked for.
func strayAnswer(name string) string {
	return "HTTP/1.1 200 OK\r\nX-Req: " + name + "\r\nContent-Length: 5\r\n\r\nstray"
}

// After a complete answer, the upstream writes a second one on the kept-
// alive connection a little later: the pooled connection is poisoned, and
// the next request must get its own answer (on a new connection), never
// the stray one.
func TestLeanClientDropsConnectionWithLateStrayAnswer(t *testing.T) {
	u := newScriptedUpstream(t, func(method, id string) upstreamReply {
		r := upstreamReply{answer: answerFor(method, id)}
		if id == "1" {
			r.extra, r.late = strayAnswer("stray"), true
		}
		return r
	})
	defer u.stop()
	p := leanPoolFor(u)
	defer p.close()

	if a, err := leanDo(p, "GET", "1"); err != nil || a.id != "1" || a.body != "answer 1" {
		t.Fatalf("request 1: %+v, %v", a, err)
	}
	u.releaseLate("1")
	u.settle(t, p)
	a, err := leanDo(p, "GET", "2")
	if err != nil {
		t.Fatalf("request 2: %v", err)
	}
	if a.id != "2" || a.body != "answer 2" {
		t.Fatalf("request 2 got X-Req %q, body %q: another request's answer", a.id, a.body)
	}
	if n := u.connCount(); n != 2 {
		t.Errorf("upstream connections = %d; want 2 (the poisoned one dropped)", n)
	}
}

// A HEAD answer that declares a Content-Length and then sends that many
// bytes (here: bytes that read as a whole answer) never answers the next
// request, whether the body comes with the header or a little later.
func TestLeanClientHeadBodyNeverAnswersTheNextRequest(t *testing.T) {
	stray := strayAnswer("head-body")
	for _, late := range []bool{false, true} {
		t.Run("late="+strconv.FormatBool(late), func(t *testing.T) {
			u := newScriptedUpstream(t, func(method, id string) upstreamReply {
				if method == http.MethodHead {
					return upstreamReply{
						answer: "HTTP/1.1 200 OK\r\nX-Req: " + id + "\r\nContent-Length: " + strconv.Itoa(len(stray)) + "\r\n\r\n",
						extra:  stray, late: late,
					}
				}
				return upstreamReply{answer: answerFor(method, id)}
			})
			defer u.stop()
			p := leanPoolFor(u)
			defer p.close()

			if a, err := leanDo(p, "HEAD", "1"); err != nil || a.id != "1" {
				t.Fatalf("HEAD 1: %+v, %v", a, err)
			}
			u.releaseLate("1")
			u.settle(t, p)
			for _, id := range []string{"2", "3"} {
				a, err := leanDo(p, "GET", id)
				if err != nil {
					t.Fatalf("GET %s: %v", id, err)
				}
				if a.id != id || a.body != "answer "+id {
					t.Fatalf("GET %s got X-Req %q, body %q: not its own answer", id, a.id, a.body)
				}
				u.settle(t, p)
			}
		})
	}
}

// Poisonings one after another (late stray answers, late garbage, a late
// close, a late HEAD body): every request still gets its own answer, and
// none fails.
func TestLeanClientChainAfterPoisoning(t *testing.T) {
	const n = 12
	u := newScriptedUpstream(t, func(method, id string) upstreamReply {
		r := upstreamReply{answer: answerFor(method, id), late: true}
		i, _ := strconv.Atoi(id)
		switch i % 6 {
		case 1:
			r.extra = strayAnswer("stray-" + id)
		case 2:
			r.extra = strayAnswer("stray-a-"+id) + strayAnswer("stray-b-"+id)
		case 3:
			r.extra = "HTTP/1.1 200 OK\r\nX-Req: partial-" + id + "\r\n" // half a head
		case 4:
			r.closeAfter = true // late close: answered, then FIN once released
			r.extra = ""
		case 5:
			r.extra = "x" // one stray byte
		}
		if method == http.MethodHead {
			r.extra = strayAnswer("head-body-"+id) + r.extra
		}
		return r
	})
	defer u.stop()
	p := leanPoolFor(u)
	defer p.close()
	for i := 1; i <= n; i++ {
		id := strconv.Itoa(i)
		method := "GET"
		if i%4 == 0 {
			method = "HEAD"
		}
		a, err := leanDo(p, method, id)
		if err != nil {
			t.Fatalf("%s %s: %v", method, id, err)
		}
		want := "answer " + id
		if method == "HEAD" {
			want = ""
		}
		if a.id != id || a.body != want || a.bodyErr != nil {
			t.Fatalf("%s %s got %+v: not its own answer", method, id, a)
		}
		u.releaseLate(id)
		u.settle(t, p)
	}
}
