// Package coalesce makes identical concurrent GET and HEAD requests share
// one exchange with the handler behind it: the first request of a key
// starts the exchange, the ones that arrive while it is in flight join
// it, and every client gets the whole answer (status, headers, body,
// trailers) as it streams, each at its own pace, from a broadcast buffer.
// Go's singleflight and Varnish's request coalescing are the models;
// unlike singleflight, the body streams, and unlike a cache, nothing is
// kept once the exchange ends.
//
// Which requests (Key): GET and HEAD without a body, keyed by method,
// path, raw query and the headers Accept, Accept-Encoding,
// Accept-Language, Authorization, Cookie and Origin, so that clients
// with different credentials never share an answer. Never coalesced: a
// request with a body, an upgrade, a range or a conditional request
// (their answers differ per client), or one that asks for a fresh answer
// of its own with Cache-Control: no-cache or no-store, or Pragma:
// no-cache.
//
// The exchange runs on a goroutine of its own, under a context detached
// from the first client's: a client that goes away, the first one
// included, leaves the others' answer intact; the exchange is cancelled
// once every client has gone, and is otherwise bounded by the handler's
// own timeouts.
//
// An answer that must not go to several clients is given to the first
// one only: one with Set-Cookie or Vary: *, or one that varies (Vary) on
// a header a joined client sent differently. The others make an exchange
// of their own, as they do when they fell too far behind before a byte
// was written to them.
//
// Memory: the first JoinWindow bytes of an answer are kept so that a
// client joining late still gets the whole body; past them no client
// joins, and bytes every client has written are dropped. A client that
// falls more than MaxLag bytes behind one that waits for more is cut
// (its connection is aborted, the answer incomplete), or, when nothing
// was written to it yet, sent to an exchange of its own; when every
// client is that far behind, the exchange waits for them (backpressure,
// as a direct exchange would).
package coalesce

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxLag     = 8 << 20
	DefaultJoinWindow = 256 << 10
)

// Options tune a Handler. The zero value takes the defaults.
type Options struct {
	// MaxLag is how many bytes a client may fall behind the exchange
	// while another client waits for more; default 8 MiB.
	MaxLag int
	// JoinWindow is how many bytes of an answer are kept for clients
	// that join after it started; default 256 KiB.
	JoinWindow int
	// WriteTimeout bounds each write to a client (a client that stops
	// reading is cut); 0: none.
	WriteTimeout time.Duration
	// OnJoin, when set, is called for each request that joins an
	// exchange in flight instead of starting one.
	OnJoin func()
}

// Handler coalesces requests to next. Use New.
type Handler struct {
	next    http.Handler
	opts    Options
	clients atomic.Int64

	mu    sync.Mutex
	calls map[string]*call // the exchanges that may be joined, by key
}

// New is a Handler that serves identical concurrent requests with one
// exchange with next, and every other request by next directly.
func New(next http.Handler, opts Options) *Handler {
	if opts.MaxLag <= 0 {
		opts.MaxLag = DefaultMaxLag
	}
	if opts.JoinWindow <= 0 {
		opts.JoinWindow = DefaultJoinWindow
	}
	return &Handler{next: next, opts: opts, calls: make(map[string]*call)}
}

// Clients is the number of clients being served from shared exchanges
// now (those that started one included).
func (h *Handler) Clients() int { return int(h.clients.Load()) }

// ServeHTTP serves r from the exchange in flight for its key, starting
// one if there is none; a request that may not be coalesced goes to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := Key(r)
	if !ok {
		h.next.ServeHTTP(w, r)
		return
	}
	c, rd, joined := h.join(key, r)
	if joined && h.opts.OnJoin != nil {
		h.opts.OnJoin()
	}
	if !c.serve(w, r, rd) {
		h.next.ServeHTTP(w, r) // nothing was written: an exchange of its own
	}
}

// keyed are the request headers that make requests differ.
var keyed = [...]string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cookie", "Origin"}

// personal are the request headers whose answers differ per client.
var personal = [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Upgrade"}

// Key is r's coalescing key, and false when r may not be coalesced (see
// the package documentation). Requests with the same key get the same
// answer. Header values cannot hold the NUL and SOH bytes that separate
// them (net/http refuses them), so distinct requests never share a key.
func Key(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", false
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return "", false
	}
	for _, name := range personal {
		if r.Header[name] != nil {
			return "", false
		}
	}
	if asksFresh(r.Header) {
		return "", false
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte(0)
	b.WriteString(r.URL.EscapedPath())
	b.WriteByte('?')
	b.WriteString(r.URL.RawQuery)
	for _, name := range keyed {
		b.WriteByte(1)
		for _, v := range r.Header[name] {
			b.WriteByte(0)
			b.WriteString(v)
		}
	}
	return b.String(), true
}

// asksFresh: the request asks for an answer of its own (Cache-Control:
// no-cache or no-store, Pragma: no-cache).
func asksFresh(h http.Header) bool {
	for _, v := range h["Cache-Control"] {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(d)
			if strings.EqualFold(d, "no-cache") || strings.EqualFold(d, "no-store") {
				return true
			}
		}
	}
	for _, v := range h["Pragma"] {
		if strings.Contains(strings.ToLower(v), "no-cache") {
			return true
		}
	}
	return false
}

// join adds r to the joinable exchange of key, or starts one.
func (h *Handler) join(key string, r *http.Request) (*call, *reader, bool) {
	h.clients.Add(1)
	h.mu.Lock()
	if c := h.calls[key]; c != nil {
		c.mu.Lock()
		if c.joinable {
			rd := &reader{r: r}
			c.readers = append(c.readers, rd)
			c.mu.Unlock()
			h.mu.Unlock()
			return c, rd, true
		}
		c.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	rd := &reader{r: r, first: true}
	c := &call{h: h, key: key, first: r, cancel: cancel, wake: make(chan struct{}), joinable: true, readers: []*reader{rd}}
	h.calls[key] = c
	h.mu.Unlock()
	go c.run(r.WithContext(ctx))
	return c, rd, false
}

// remove makes c unjoinable for new requests.
func (h *Handler) remove(c *call) {
	h.mu.Lock()
	if h.calls[c.key] == c {
		delete(h.calls, c.key)
	}
	h.mu.Unlock()
}

// call is one shared exchange and its broadcast buffer.
type call struct {
	h      *Handler
	key    string
	first  *http.Request // the request that started it (its Vary values)
	cancel context.CancelFunc

	mu       sync.Mutex
	wake     chan struct{} // closed (and replaced) when anything changes
	joinable bool
	readers  []*reader
	waiting  bool // the exchange waits for slow readers

	headerDone bool
	status     int
	header     http.Header // as of the header's writing
	personal   bool        // Set-Cookie or Vary: *: for the first client only
	vary       []string    // the answer's Vary fields
	buf        []byte      // the body from offset start to total
	start      int64
	total      int64
	done       bool
	panicked   any         // the exchange's panic (http.ErrAbortHandler: the answer broke off)
	trailer    http.Header // trailers, once done
}

// reader is one client of a call.
type reader struct {
	r     *http.Request
	first bool  // started the exchange
	off   int64 // the body's bytes written to the client
	cut   bool  // fell too far behind
}

// errNoClients ends the exchange once every client has gone.
var errNoClients = errors.New("coalesce: every client of the exchange has gone")

// run is the exchange, on its own goroutine.
func (c *call) run(r *http.Request) {
	w := &bufWriter{c: c, header: make(http.Header)}
	defer func() {
		c.finish(w, recover())
	}()
	c.h.next.ServeHTTP(w, r)
}

func (c *call) wakeLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// finish ends the exchange: its trailers, or the panic that ended it.
func (c *call) finish(w *bufWriter, panicked any) {
	c.mu.Lock()
	if !c.headerDone && panicked == nil {
		c.setHeaderLocked(http.StatusOK, w.header.Clone())
	}
	c.panicked = panicked
	c.done = true
	c.joinable = false
	if c.headerDone {
		c.trailer = trailers(w.header, c.header)
	}
	c.wakeLocked()
	c.mu.Unlock()
	c.cancel()
	c.h.remove(c)
}

// trailers are the trailer fields of final, the writer's header map at
// the end: those announced in the header's Trailer field, and those set
// with http.TrailerPrefix.
func trailers(final, header http.Header) http.Header {
	var t http.Header
	for _, vs := range header["Trailer"] {
		for name := range strings.SplitSeq(vs, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if v, ok := final[name]; ok {
				if t == nil {
					t = make(http.Header)
				}
				t[name] = append([]string(nil), v...)
			}
		}
	}
	for k, v := range final {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if t == nil {
				t = make(http.Header)
			}
			t[k] = append([]string(nil), v...)
		}
	}
	return t
}

func (c *call) setHeaderLocked(code int, h http.Header) {
	c.headerDone, c.status, c.header = true, code, h
	c.personal = h["Set-Cookie"] != nil
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" {
				c.personal = true
			} else if f != "" {
				c.vary = append(c.vary, f)
			}
		}
	}
	c.wakeLocked()
}

// liveLocked counts the readers still served, and says whether one has
// written everything there is (it waits for more).
func (c *call) liveLocked() (n int, caughtUp bool) {
	for _, rd := range c.readers {
		if !rd.cut {
			n++
			caughtUp = caughtUp || rd.off == c.total
		}
	}
	return n, caughtUp
}

// minOffLocked is the lowest offset a live reader still needs.
func (c *call) minOffLocked() int64 {
	m := c.total
	for _, rd := range c.readers {
		if !rd.cut {
			m = min(m, rd.off)
		}
	}
	return m
}

// write adds p to the body, once the slowest readers are within MaxLag.
func (c *call) write(p []byte) (int, error) {
	unjoin := false
	defer func() { // after the unlock: the handler's lock comes first
		if unjoin {
			c.h.remove(c)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		n, caughtUp := c.liveLocked()
		if n == 0 {
			return 0, errNoClients
		}
		lag := c.total - c.minOffLocked()
		if lag == 0 || lag+int64(len(p)) <= int64(c.h.opts.MaxLag) {
			break
		}
		if caughtUp { // one client waits for more: the slow ones are cut
			for _, rd := range c.readers {
				if !rd.cut && c.total-rd.off+int64(len(p)) > int64(c.h.opts.MaxLag) {
					rd.cut = true
				}
			}
			c.wakeLocked()
			continue
		}
		c.waiting = true
		ch := c.wake
		c.mu.Unlock()
		<-ch // a reader wrote, left or was cut
		c.mu.Lock()
		c.waiting = false
	}
	c.buf = append(c.buf, p...)
	c.total += int64(len(p))
	if c.joinable && c.total > int64(c.h.opts.JoinWindow) {
		c.joinable, unjoin = false, true
	}
	if !c.joinable {
		if m := c.minOffLocked(); m > c.start {
			c.buf = c.buf[m-c.start:] // bytes are never changed in place: readers may hold them
			c.start = m
			if len(c.buf) == 0 {
				c.buf = nil
			}
		}
	}
	c.wakeLocked()
	return len(p), nil
}

// sharedLocked says whether the answer may go to rd.
func (c *call) sharedLocked(rd *reader) bool {
	if rd.first {
		return true
	}
	if c.personal {
		return false
	}
	for _, f := range c.vary {
		a, b := rd.r.Header.Values(f), c.first.Header.Values(f)
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
	}
	return true
}

// serve writes the answer to rd's client; false when nothing was written
// and the client must have an exchange of its own.
func (c *call) serve(w http.ResponseWriter, r *http.Request, rd *reader) bool {
	defer c.leave(rd)
	ctx := r.Context()
	c.mu.Lock()
	for !c.headerDone && !c.done {
		if !c.waitLocked(ctx) {
			c.mu.Unlock()
			return true // the client has gone
		}
	}
	if !c.headerDone { // the exchange panicked before its answer
		p := c.panicked
		c.mu.Unlock()
		c.repanic(rd, p)
	}
	if rd.cut || !c.sharedLocked(rd) {
		c.mu.Unlock()
		return false
	}
	status, header := c.status, c.header
	c.mu.Unlock()

	rc := http.NewResponseController(w)
	dst := w.Header()
	for k, v := range header {
		dst[k] = v[:len(v):len(v)] // shared by the clients: an append copies
	}
	w.WriteHeader(status)
	for {
		c.mu.Lock()
		for rd.off == c.total && !c.done && !rd.cut {
			if !c.waitLocked(ctx) {
				c.mu.Unlock()
				return true
			}
		}
		if rd.cut {
			c.mu.Unlock()
			panic(http.ErrAbortHandler) // too far behind: the answer is cut
		}
		data := c.buf[rd.off-c.start : c.total-c.start]
		if len(data) == 0 { // done, all written
			p, t := c.panicked, c.trailer
			c.mu.Unlock()
			if p != nil {
				c.repanic(rd, p)
			}
			for k, v := range t {
				dst[k] = v[:len(v):len(v)]
			}
			return true
		}
		c.mu.Unlock()
		if c.h.opts.WriteTimeout > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		}
		n, err := w.Write(data)
		if err == nil {
			err = rc.Flush()
			if errors.Is(err, http.ErrNotSupported) {
				err = nil
			}
		}
		c.mu.Lock()
		rd.off += int64(n)
		if c.waiting {
			c.wakeLocked()
		}
		c.mu.Unlock()
		if err != nil {
			return true // the client has gone
		}
	}
}

// waitLocked waits for a change of c, with c.mu held (released while it
// waits); false when ctx ended first.
func (c *call) waitLocked(ctx context.Context) bool {
	ch := c.wake
	c.mu.Unlock()
	select {
	case <-ch:
		c.mu.Lock()
		return true
	case <-ctx.Done():
		c.mu.Lock()
		return false
	}
}

// repanic ends a client's answer as the exchange ended: the first client
// gets the exchange's panic, the others an aborted answer.
func (c *call) repanic(rd *reader, p any) {
	if rd.first {
		panic(p)
	}
	panic(http.ErrAbortHandler)
}

// leave takes rd off c; the exchange is cancelled when no client is left.
func (c *call) leave(rd *reader) {
	c.h.clients.Add(-1)
	c.mu.Lock()
	for i, o := range c.readers {
		if o == rd {
			c.readers = append(c.readers[:i], c.readers[i+1:]...)
			break
		}
	}
	last := len(c.readers) == 0
	if last {
		c.joinable = false
	}
	c.wakeLocked()
	c.mu.Unlock()
	if last {
		c.cancel()
		c.h.remove(c)
	}
}

// bufWriter is the exchange's ResponseWriter: it writes into the call.
type bufWriter struct {
	c      *call
	header http.Header
	wrote  bool
}

func (w *bufWriter) Header() http.Header { return w.header }

func (w *bufWriter) WriteHeader(code int) {
	if w.wrote || code < 200 { // informational answers are not passed on
		return
	}
	w.wrote = true
	w.c.mu.Lock()
	w.c.setHeaderLocked(code, w.header.Clone())
	w.c.mu.Unlock()
}

func (w *bufWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.c.write(p)
}

// Flush does nothing: every write reaches the clients at once.
func (w *bufWriter) Flush() {}

// Interface guards
var (
	_ http.Handler = (*Handler)(nil)
	_ http.Flusher = (*bufWriter)(nil)
)
