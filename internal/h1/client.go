// Package h1 is a lean HTTP/1.1 client for the proxy's common case: a GET
// or HEAD without a body to a plain-HTTP upstream. It writes the request
// and reads the answer on the calling goroutine, over keep-alive
// connections it pools per upstream host.
//
// http.Transport hands every request to two goroutines of its own (a
// writer and a reader per connection) through channels, and keeps a
// background read pending on every idle connection; under load those
// hand-offs and wake-ups are a large part of a proxied request's cost
// (see BENCHMARKS.md). Everything else (HTTPS, which may speak HTTP/2;
// bodies, which need the concurrent write and read only Transport does;
// upgrades; anything unusual in the request) goes through http.Transport:
// Eligible refuses such a request, and Pools.Pool has no pool for any
// scheme but http. An answer that switches protocols unasked, or whose
// header exceeds MaxHeaderBytes, is an error.
//
// The answer is read with http.ReadResponse, so framing (Content-Length,
// chunked, trailers, close-delimited bodies, HEAD, 204 and 304) is the
// standard library's. A connection goes back to the pool only when its
// answer was read to the end and neither side asked to close it.
//
// Bytes the upstream sends unasked must never be read as the answer to a
// later request: that request's client would get them, and every later
// client on the connection its predecessor's answer. So a connection is
// reused only when it is proven clean: nothing left in its reader when its
// answer ends (done), and, when get takes it from the pool, nothing
// readable on the socket and no close from the peer (idleClean, one
// non-blocking peek). A HEAD answer's connection is never pooled (see
// exchange). What no client-side check can close: bytes the upstream
// sends after that peek but before it has read the new request look like
// the answer to it; http.Transport, whose idle connections keep a read
// pending, has the same window.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/healproxy/healproxy/internal/idle"
)

// Pool is the lean client's connections to one upstream host:port. Get
// one from Pools.Pool.
type Pool struct {
	addr        string // host:port to dial
	host        string // the Host header
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration
	maxHeader   int64 // bytes of response header read before giving up

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool

	dials atomic.Int64 // connections made, for tests and diagnostics (Dials)
	// connections dropped when taken from the pool, for tests and
	// diagnostics: the upstream had sent bytes unasked (poisoned) or
	// closed its side (stale)
	poisoned, stale atomic.Int64
}

// The defaults match those of the proxy's http.Transport. MaxHeaderBytes
// bounds an answer's header, as Transport.MaxResponseHeaderBytes does.
const (
	defaultMaxIdle     = 256
	defaultIdleTimeout = 90 * time.Second
	MaxHeaderBytes     = 1 << 20
	defaultUserAgent   = "Go-http-client/1.1" // what http.Transport sends when a request has none
)

// conn is one pooled connection. Its body wrapper and buffers are
// reused from request to request.
type conn struct {
	pool   *Pool
	nc     net.Conn
	lr     limitedConnReader
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	stop   func() bool // stops the client-cancel watch of the exchange in flight
	broken bool        // the exchange was cut: never reuse

	// The reuse check's socket (nil: nc is no socket) and its callback,
	// made once per connection so that the check allocates nothing.
	raw     syscall.RawConn
	peekFn  func(fd uintptr) bool
	peekN   int
	peekErr error
	peekBuf [1]byte
}

// limitedConnReader reads from the connection, counting bytes, and fails
// once more than max bytes are read while a limit is set (the header).
type limitedConnReader struct {
	nc    net.Conn
	n     int64 // bytes read in this exchange
	limit int64 // 0: none
}

var errHeaderTooLarge = errors.New("upstream response headers too large")

func (l *limitedConnReader) Read(p []byte) (int, error) {
	if l.limit > 0 && l.n >= l.limit {
		return 0, errHeaderTooLarge
	}
	n, err := l.nc.Read(p)
	l.n += int64(n)
	return n, err
}

func newPool(addr, host string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Pool {
	return &Pool{addr: addr, host: host, dial: dial, maxIdle: defaultMaxIdle, idleTimeout: defaultIdleTimeout, maxHeader: MaxHeaderBytes}
}

// Dials is the number of connections p has made.
func (p *Pool) Dials() int64 { return p.dials.Load() }

// Idle is the number of connections p holds idle.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// get returns an idle connection (reused: true) or dials a new one, the
// dial bounded by deadline (zero: none).
func (p *Pool) get(ctx context.Context, deadline time.Time) (c *conn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		fresh := now.Sub(c.idleAt) < p.idleTimeout
		p.mu.Unlock()
		if fresh && c.idleClean() {
			return c, true, nil
		}
		c.nc.Close()
		p.mu.Lock()
	}
	p.mu.Unlock()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return p.newConn(ctx)
}

func (p *Pool) newConn(ctx context.Context) (*conn, bool, error) {
	nc, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, false, err
	}
	p.dials.Add(1)
	c := &conn{pool: p, nc: nc}
	c.lr.nc = nc
	c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peekFn = c.peek
		}
	}
	return c, false, nil
}

// idleClean says whether an idle connection may carry a new exchange:
// nothing buffered, nothing readable on the socket (the upstream sent
// bytes nobody asked for: a second answer, a HEAD answer's body) and not
// closed by the peer. It costs one non-blocking system call and never
// waits. A connection that is no socket (tests may dial anything) cannot
// be checked and is not reused.
func (c *conn) idleClean() bool {
	if c.br.Buffered() > 0 || c.raw == nil {
		return false
	}
	c.peekN, c.peekErr = 0, nil
	// RawConn.Read, not a Read with a deadline in the past: the poller
	// reports such a deadline before it makes any system call.
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	switch {
	case c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EWOULDBLOCK:
		return true // nothing to read: clean
	case c.peekErr == nil && c.peekN > 0:
		c.pool.poisoned.Add(1)
	default: // 0 bytes (the peer closed its side) or an error
		c.pool.stale.Add(1)
	}
	return false
}

// peek is idleClean's RawConn.Read callback: one look at the socket's
// receive queue, taking nothing from it, without waiting (true: done, do
// not wait for the socket to become readable).
func (c *conn) peek(fd uintptr) bool {
	for range 3 {
		c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if c.peekErr != syscall.EINTR {
			break
		}
	}
	return true
}

// put returns a connection whose exchange is complete to the pool, or
// closes it when the pool is full or closed.
func (p *Pool) put(c *conn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeIdle closes idle connections: all of them, or with olderThan > 0
// those idle for longer.
func (p *Pool) closeIdle(olderThan time.Duration) {
	now := time.Now()
	var drop []*conn
	p.mu.Lock()
	keep := p.idle[:0]
	for _, c := range p.idle {
		if olderThan > 0 && now.Sub(c.idleAt) < olderThan {
			keep = append(keep, c)
		} else {
			drop = append(drop, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range drop {
		c.nc.Close()
	}
}

// close closes idle connections and makes the pool close every connection
// handed back from now on.
func (p *Pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeIdle(0)
}

// ErrTimeout is RoundTrip's timeout passing. It wraps
// context.DeadlineExceeded, so that a caller that tells timeouts apart
// (the proxy's classifyError) reports it as one, as it does
// http.Transport's.
var ErrTimeout = fmt.Errorf("upstream timed out: %w", context.DeadlineExceeded)

// aLongTimeAgo is a deadline that has passed: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip sends req (GET or HEAD, no body; see Eligible) to the
// request target target and reads the answer, all within timeout (0: no
// limit) counted from now, the body included; past it, the error is
// ErrTimeout. A client that goes away (req's context ends) cuts the
// exchange at once. The caller must close the answer's body: read to its
// end, it hands the connection back to the pool.
func (p *Pool) RoundTrip(req *http.Request, target Target, timeout time.Duration) (*http.Response, error) {
	ctx := req.Context()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for try := 0; ; try++ {
		c, reused, err := p.get(ctx, deadline)
		if err != nil {
			if ctx.Err() == nil && !deadline.IsZero() && !time.Now().Before(deadline) {
				return nil, ErrTimeout
			}
			return nil, err
		}
		resp, err := c.exchange(req, target, deadline)
		if err == nil && reused && try == 0 && resp.StatusCode == http.StatusRequestTimeout {
			// Some servers write a 408 on a keep-alive connection they time
			// out, then close it: that answer was never ours. As
			// http.Transport does, drop the connection and send again.
			resp.Body.Close()
			continue
		}
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the upstream closed while it sat idle
		// fails before a byte of the answer arrives: send again, once, on
		// a new connection (GET and HEAD are idempotent).
		if reused && try == 0 && c.lr.n == 0 && ctx.Err() == nil && staleConnError(err) {
			continue
		}
		var ne net.Error
		if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
			return nil, ErrTimeout
		}
		return nil, err
	}
}

// staleConnError: the error of a write to, or read from, a connection the
// other side has closed.
func staleConnError(err error) bool {
	return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange writes the request and reads the answer's header on c.
func (c *conn) exchange(req *http.Request, target Target, deadline time.Time) (*http.Response, error) {
	c.lr.n = 0
	c.broken = false
	if err := c.nc.SetDeadline(deadline); err != nil {
		c.nc.Close()
		return nil, err
	}
	c.stop = context.AfterFunc(req.Context(), func() { c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		c.stop()
		c.nc.Close()
		if errors.Is(err, errHeaderTooLarge) {
			return nil, fmt.Errorf("upstream response headers exceed %d bytes", c.pool.maxHeader)
		}
		return nil, err
	}
	c.writeRequest(req, target)
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	c.lr.limit = c.pool.maxHeader
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		code := resp.StatusCode
		if code < 100 || code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
		// An informational answer (103 Early Hints) before the real one:
		// passed on, as http.Transport does, to ReverseProxy's trace.
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
		c.lr.n = 0
	}
	c.lr.limit = 0
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// never asked for (no Upgrade header is sent on this path)
		return fail(errors.New("upstream switched protocols unasked"))
	}
	// Not after HEAD: an answer to HEAD declares the length of the body a
	// GET would get, and a server that sends that body anyway (a common
	// bug) may send it in a later write than the header, after done's and
	// even the next get's check. HEAD is rare on this path; a new
	// connection for the next request is the price of never reading such
	// a body as another client's answer.
	keep := !resp.Close && !req.Close && req.Method != http.MethodHead
	if resp.Body == http.NoBody {
		c.done(keep)
		return resp, nil
	}
	// A body of its own per exchange: ReverseProxy closes it after the
	// connection may already serve another exchange.
	resp.Body = &body{rc: resp.Body, c: c, keep: keep, ctx: req.Context()}
	return resp, nil
}

// done ends an exchange: the connection goes back to the pool when it may
// be reused.
func (c *conn) done(keep bool) {
	// Not reused: the client went away (the deadline is cut), a side said
	// close, or the upstream sent more than its answer (never read as the
	// next one).
	if !c.stop() || !keep || c.broken || c.br.Buffered() > 0 {
		c.nc.Close()
		return
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		c.nc.Close()
		return
	}
	c.pool.put(c)
}

// writeRequest writes the request head, as Request.Write would for a GET
// or HEAD without a body: request line, Host, User-Agent (the default
// when the request has none; none when it has an empty one, as
// ReverseProxy sets), then the other headers.
func (c *conn) writeRequest(req *http.Request, target Target) {
	w := c.bw
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(target.Path)
	w.WriteString(target.Rest)
	if target.Query != "" {
		w.WriteByte('?')
		w.WriteString(target.Query)
		if target.Query2 != "" {
			w.WriteByte('&')
			w.WriteString(target.Query2)
		}
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(c.pool.host)
	w.WriteString("\r\n")
	ua := defaultUserAgent
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

// body is an answer's body on a pooled connection: at its end the
// connection goes back to the pool; closed before its end, it is closed.
type body struct {
	rc    io.ReadCloser
	c     *conn
	keep  bool
	end   bool            // EOF seen or closed: the connection is no longer ours
	idle  time.Duration   // > 0: each Read waits at most this long (Bound)
	maxAt time.Time       // non-zero: no Read waits past it (Bound)
	ctx   context.Context // the request's: once done, no Read sets a deadline again
}

// Bound replaces the exchange's deadline, from the next Read on, by
// bounds of the body: each Read waits at most idle for data (0: no bound)
// and none past maxAt (zero: no bound). A Read that runs into them fails
// with an error wrapping idle.ErrStalled or idle.ErrMaxDuration, and the
// connection is closed. A body that is not the lean client's is left
// alone (false).
func Bound(rc io.ReadCloser, idleTimeout time.Duration, maxAt time.Time) bool {
	b, ok := rc.(*body)
	if !ok || b.end {
		return ok
	}
	b.idle, b.maxAt = idleTimeout, maxAt
	if idleTimeout <= 0 && maxAt.IsZero() {
		b.c.nc.SetReadDeadline(time.Time{}) // unbounded: the caller bounds it otherwise
	}
	return true
}

func (b *body) Read(p []byte) (int, error) {
	if b.end {
		return 0, io.EOF
	}
	stalled := false
	if (b.idle > 0 || !b.maxAt.IsZero()) && b.ctx.Err() == nil { // else the request's end set a past deadline
		d := b.maxAt
		if b.idle > 0 {
			if i := time.Now().Add(b.idle); d.IsZero() || i.Before(d) {
				d, stalled = i, true
			}
		}
		b.c.nc.SetReadDeadline(d)
	}
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && errors.Is(err, os.ErrDeadlineExceeded) && (b.idle > 0 || !b.maxAt.IsZero()) {
		if stalled {
			err = fmt.Errorf("%w (%s)", idle.ErrStalled, b.idle)
		} else {
			err = idle.ErrMaxDuration
		}
	}
	if err == io.EOF {
		b.end = true
		b.c.done(b.keep)
		return n, io.EOF
	}
	if err != nil {
		b.end = true
		b.c.broken = true
		b.c.done(false)
	}
	return n, err
}

func (b *body) Close() error {
	if b.end {
		return nil
	}
	b.end = true
	b.c.done(false) // unread body left: the connection cannot carry another answer
	return nil
}

// Target is an attempt's request target, in pieces, so that it is
// written without being built: Path is the upstream's base path, Rest the
// client's path after /providers/{id}, Query and Query2 the upstream's own
// query and the client's (either may be empty; Query2 is sent only after
// a Query).
type Target struct {
	Path, Rest, Query, Query2 string
}

// Eligible says whether req may take the lean path: GET or HEAD, no
// body, no upgrade, no Expect, and a target and header values that need
// no escaping or cleaning (anything unusual goes through http.Transport,
// which knows how to fix or refuse it).
func Eligible(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if (req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	if !cleanPath(req.URL.RawPath) || !cleanQuery(req.URL.RawQuery) {
		return false
	}
	for k, vs := range req.Header {
		if !cleanHeaderText(k) || k == "" {
			return false
		}
		for _, v := range vs {
			if !cleanHeaderText(v) {
				return false
			}
		}
	}
	return true
}

// cleanPath: s holds only characters that URL.EscapedPath leaves as they
// are, so that the path is sent exactly as http.Transport would send it.
func cleanPath(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			switch c {
			case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@', '%':
			default:
				return false
			}
		}
	}
	return true
}

// cleanQuery: no byte that has no place in a request line.
func cleanQuery(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// cleanHeaderText: no control characters (CR, LF, NUL), which
// Request.Write would rewrite and http.Transport refuse.
func cleanHeaderText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Pools are the lean client's pools, one per upstream host:port,
// shared by every provider of a server and kept across reloads.
type Pools struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	mu   sync.Mutex
	m    map[string]*Pool
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewPools returns an empty set of pools, and starts the goroutine that
// closes connections left idle too long; Close stops it.
func NewPools() *Pools {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	ps := &Pools{dial: d.DialContext, m: map[string]*Pool{}, stop: make(chan struct{})}
	ps.wg.Add(1)
	go ps.janitor()
	return ps
}

// Pool is the pool for a plain-HTTP host:port, made on first use; nil for
// any other scheme, or when ps is nil.
func (ps *Pools) Pool(scheme, hostport string) *Pool {
	if ps == nil || scheme != "http" || hostport == "" || !asciiHost(hostport) {
		return nil
	}
	addr := hostport
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		addr = net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.m[hostport]
	if p == nil {
		p = newPool(addr, hostport, ps.dial)
		ps.m[hostport] = p
	}
	return p
}

func asciiHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// janitor closes connections left idle for longer than the idle timeout,
// so that a quiet proxy holds no sockets it will not use.
func (ps *Pools) janitor() {
	defer ps.wg.Done()
	t := time.NewTicker(defaultIdleTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ps.stop:
			return
		case <-t.C:
			ps.mu.Lock()
			pools := make([]*Pool, 0, len(ps.m))
			for _, p := range ps.m {
				pools = append(pools, p)
			}
			ps.mu.Unlock()
			for _, p := range pools {
				p.closeIdle(defaultIdleTimeout)
			}
		}
	}
}

// Close stops the janitor and closes every pool; a nil ps or a second
// Close does nothing.
func (ps *Pools) Close() {
	if ps == nil {
		return
	}
	ps.mu.Lock()
	select {
	case <-ps.stop:
		ps.mu.Unlock()
		return
	default:
		close(ps.stop)
	}
	pools := make([]*Pool, 0, len(ps.m))
	for _, p := range ps.m {
		pools = append(pools, p)
	}
	ps.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	ps.wg.Wait()
}
