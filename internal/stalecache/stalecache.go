// Package stalecache is a provider's stale-if-error cache (config block
// cache): it keeps recent successful GET answers and hands one out, marked
// stale, when no upstream can answer. See README.md, "Stale-if-error" under
// "Resilience settings", and docs/behaviour.md for where it sits in the
// all-down policy.
//
// What is kept: answers to GET (a HEAD may be answered from them) with
// status 200, 203, 204, 300, 301 or 308 and a body of at most MaxBodyBytes,
// read to its end. What never is: answers to requests carrying their own
// Authorization or Cookie (the provider's injected ones are shared by every
// client and do not count) or Cache-Control: no-store; answers with
// no-store, private, no-cache, must-revalidate or proxy-revalidate, with
// Set-Cookie, with trailers, or varying on anything but Accept and
// Accept-Encoding; error answers; bodies cut short or failing. A copy served
// carries Warning: 110 - "Response is Stale", X-Healproxy-Stale: true and
// Age. The rules in full are on [Cache].
package stalecache

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/healproxy/healproxy/config"
)

// Cache is a provider's stale-if-error cache. One Cache serves one
// provider; its keys do not name the upstream. It is safe for concurrent
// use and starts no goroutines.
//
// What is kept (decided in Capture):
//   - answers to GET only, whose request has a key (see Cache.Key);
//   - status 200, 203, 204, 300, 301 or 308: the non-error statuses RFC 9111
//     calls heuristically cacheable. Error answers (404, 410, …) are not kept:
//     the cache is for answers a client would rather have late than not;
//   - no Cache-Control no-store or private, nor no-cache, must-revalidate or
//     proxy-revalidate (RFC 9111 4.2.4: those forbid serving it stale);
//   - no Set-Cookie, no declared trailers, Vary naming nothing but Accept and
//     Accept-Encoding (the headers in the key);
//   - a body of at most MaxBodyBytes, read to its end (EOF, or as many bytes
//     as Content-Length declared) before Close, and consistent with
//     Content-Length. A body that exceeds the limit is passed on unbuffered
//     from there (from the start when Content-Length says so); a body the
//     client stops reading early, or whose read fails, is simply not kept.
//
// A working answer that may not be kept (say a 404 or a no-store 200 after a
// kept 200; not 304, 206, 429 or 5xx) removes the entry for its key: the
// upstream has said the kept one is outdated.
//
// Memory is bounded by MaxEntries and by a byte budget (maxBytes; see New)
// over each entry's body, key and header bytes; either bound evicts the
// least recently used entries (stored or served). In-flight captures are
// outside the budget: each buffers at most MaxBodyBytes. Entries older than
// StaleIfError are never served; they are dropped when looked up or when
// they reach the LRU end while a new entry is stored.
type Cache struct {
	// now is the clock for the time an answer was received (tests set it).
	now func() time.Time
	// injected are the headers the provider adds to every upstream request
	// (config Provider.Headers). An Authorization or Cookie whose value is
	// exactly the injected one is the provider's own credential, shared by
	// all clients, and does not make a request private. Read, never written.
	injected http.Header

	maxAge     time.Duration
	maxEntries int
	maxBody    int64
	maxBytes   int64

	mu    sync.Mutex
	m     map[string]*entry
	lru   entry // sentinel of a ring: lru.next is the most recently used
	bytes int64 // sum of size over the entries
}

type entry struct {
	key        string
	status     string // status line as received, "200 OK"
	statusCode int
	header     http.Header // never changed once stored
	body       []byte      // never changed once stored
	received   time.Time
	age        int64 // the answer's own Age header when received, in seconds
	size       int64
	prev, next *entry
}

// Byte budget: MaxEntries answers of min(MaxBodyBytes, 64 KiB), capped at
// 64 MiB, and never less than MaxBodyBytes (one answer of the largest
// size kept must fit). With the defaults (1000, 1 MiB): 62.5 MiB.
const (
	typicalBody = 64 << 10
	budgetCap   = 64 << 20
)

// New returns an empty cache with the bounds of cfg. injected are the
// headers the provider adds to every upstream request (see Cache.injected);
// the cache reads the map as it is at each lookup and never changes it.
func New(cfg config.Cache, injected http.Header) *Cache {
	c := &Cache{
		now:        time.Now,
		injected:   injected,
		maxAge:     cfg.StaleIfError,
		maxEntries: max(cfg.MaxEntries, 1),
		maxBody:    max(cfg.MaxBodyBytes, 0),
		m:          make(map[string]*entry),
	}
	per := min(c.maxBody, typicalBody)
	budget := int64(budgetCap)
	if per > 0 && int64(c.maxEntries) < budget/per {
		budget = int64(c.maxEntries) * per
	}
	c.maxBytes = max(budget, c.maxBody)
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// Key is the cache key of an outgoing provider request (as the provider's
// transport sees it: URL reduced to the rest path, provider headers
// injected), "" when the request must neither be kept nor answered from the
// cache: a method other than GET or HEAD; an Authorization or Cookie header
// (unless it is the provider's injected one); Cache-Control: no-store.
//
// The key is the escaped path, "?", the raw query (as sent: no reordering),
// then the values of Accept and Accept-Encoding, each after a newline (which
// neither a path nor a header value can hold). HEAD has the key of GET: a
// HEAD request may be answered from a GET's entry (headers, no body), but
// Capture never keeps a HEAD answer.
func (c *Cache) Key(req *http.Request) string {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return ""
	}
	h := req.Header
	if !c.shared(h, "Authorization") || !c.shared(h, "Cookie") || hasDirective(h, "no-store") {
		return ""
	}
	return req.URL.EscapedPath() + "?" + req.URL.RawQuery +
		"\n" + strings.Join(h["Accept"], ", ") + "\n" + strings.Join(h["Accept-Encoding"], ", ")
}

// shared: header name is absent or carries exactly the injected value.
func (c *Cache) shared(h http.Header, name string) bool {
	v, ok := h[name]
	if !ok {
		return true
	}
	inj, ok := c.injected[name]
	if !ok || len(inj) != len(v) {
		return false
	}
	for i := range v {
		if v[i] != inj[i] {
			return false
		}
	}
	return true
}

// Capture arranges for resp, the answer to a request with key, to be kept
// once its body has been read to the end and closed, if it may be kept (see
// Cache). It wraps resp.Body in a reader that copies into a buffer as
// the client reads: what the client reads, when, and every Read and Close
// result are unchanged (each Close is passed on). An answer that may not be
// kept is left untouched. resp.Request must be the request that was sent
// (as http.Transport sets it): its method decides; without one nothing is
// kept.
func (c *Cache) Capture(key string, resp *http.Response) {
	if key == "" || resp == nil || resp.Request == nil || resp.Request.Method != http.MethodGet {
		return
	}
	if !c.keepable(resp) {
		if invalidates(resp.StatusCode) {
			c.remove(key)
		}
		return
	}
	if resp.ContentLength > c.maxBody {
		c.remove(key) // a newer answer that cannot be kept
		return
	}
	e := &entry{
		key:        key,
		status:     resp.Status,
		statusCode: resp.StatusCode,
		header:     keptHeader(resp.Header),
		received:   c.now(),
	}
	if e.status == "" {
		e.status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	if v := resp.Header.Get("Age"); v != "" {
		if a, err := strconv.ParseInt(v, 10, 64); err == nil && a > 0 {
			e.age = a
		}
	}
	body := resp.Body
	if body == nil {
		body = http.NoBody
	}
	b := &captureBody{rc: body, c: c, e: e, want: resp.ContentLength}
	if b.want > 0 {
		b.buf = make([]byte, 0, b.want)
	}
	resp.Body = b
}

// keepable checks everything about resp but its body.
func (c *Cache) keepable(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNonAuthoritativeInfo, http.StatusNoContent,
		http.StatusMultipleChoices, http.StatusMovedPermanently, http.StatusPermanentRedirect:
	default:
		return false
	}
	h := resp.Header
	if _, ok := h["Set-Cookie"]; ok || len(resp.Trailer) > 0 || len(h["Trailer"]) > 0 {
		return false
	}
	if hasDirective(h, "no-store", "private", "no-cache", "must-revalidate", "proxy-revalidate") {
		return false
	}
	for _, v := range h["Vary"] {
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if f != "" && !strings.EqualFold(f, "Accept") && !strings.EqualFold(f, "Accept-Encoding") {
				return false
			}
		}
	}
	return true
}

// invalidates: a status that is an upstream's working, complete answer,
// so it outdates a kept one even when it is not kept itself. Failures are
// those the proxy counts against an upstream: 5xx but 501, and 429 (a test
// in package proxy checks the two agree).
func invalidates(code int) bool {
	failure := (code >= 500 && code != http.StatusNotImplemented) || code == http.StatusTooManyRequests
	return code >= 200 && !failure && code != http.StatusNotModified && code != http.StatusPartialContent
}

// hasDirective: h's Cache-Control names one of the directives (with or
// without an argument; names compared case-insensitively).
func hasDirective(h http.Header, names ...string) bool {
	for _, v := range h["Cache-Control"] {
		for d := range strings.SplitSeq(v, ",") {
			d, _, _ = strings.Cut(d, "=")
			d = strings.TrimSpace(d)
			for _, n := range names {
				if strings.EqualFold(d, n) {
					return true
				}
			}
		}
	}
	return false
}

// keptHeader copies the headers worth keeping: all but hop-by-hop ones
// (also those named in Connection), Set-Cookie, and those Stale sets itself
// (Age, Warning, Content-Length, X-Healproxy-Stale). Like Header.Clone, it
// makes one map and one backing array.
func keptHeader(h http.Header) http.Header {
	var conn []string
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				conn = append(conn, http.CanonicalHeaderKey(f))
			}
		}
	}
	skip := func(k string) bool {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Set-Cookie", "Age", "Warning", "Content-Length", "X-Healproxy-Stale":
			return true
		}
		for _, c := range conn {
			if c == k {
				return true
			}
		}
		return false
	}
	n, keys := 0, 0
	for k, vv := range h {
		if !skip(k) {
			n += len(vv)
			keys++
		}
	}
	out := make(http.Header, keys)
	all := make([]string, n)
	for k, vv := range h {
		if skip(k) {
			continue
		}
		m := copy(all, vv)
		out[k] = all[:m:m]
		all = all[m:]
	}
	return out
}

// Stale returns a new answer made from the entry for key, if there is one
// received at most StaleIfError before now: its status, headers and body
// (its own reader: the answer can be served any number of times), with
// Warning: 110 - "Response is Stale", X-Healproxy-Stale: true, and Age (the
// answer's own Age when received plus the whole seconds since). A HEAD req
// gets the headers (Content-Length included) and no body. An expired entry
// is dropped.
func (c *Cache) Stale(key string, req *http.Request, now time.Time) (*http.Response, bool) {
	if key == "" {
		return nil, false
	}
	c.mu.Lock()
	e := c.m[key]
	if e == nil {
		c.mu.Unlock()
		return nil, false
	}
	since := now.Sub(e.received)
	if since > c.maxAge {
		c.unlink(e)
		c.mu.Unlock()
		return nil, false
	}
	c.unlinkList(e)
	c.pushFront(e)
	c.mu.Unlock()

	h := e.header.Clone()
	if h == nil {
		h = make(http.Header, 4)
	}
	h["Warning"] = []string{`110 - "Response is Stale"`}
	h["X-Healproxy-Stale"] = []string{"true"}
	h["Age"] = []string{strconv.FormatInt(e.age+int64(max(since, 0)/time.Second), 10)}
	if e.statusCode != http.StatusNoContent {
		h["Content-Length"] = []string{strconv.Itoa(len(e.body))}
	}
	resp := &http.Response{
		Status:        e.status,
		StatusCode:    e.statusCode,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: int64(len(e.body)),
		Request:       req,
	}
	if len(e.body) > 0 && (req == nil || req.Method != http.MethodHead) {
		resp.Body = io.NopCloser(bytes.NewReader(e.body))
	}
	return resp, true
}

func (c *Cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// put stores e (body set), replacing an entry for the same key unless that
// one was received later, and evicts to the bounds.
func (c *Cache) put(e *entry) {
	e.size = int64(len(e.body) + len(e.key))
	for k, vv := range e.header {
		for _, v := range vv {
			e.size += int64(len(k) + len(v))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.key]; old != nil {
		if old.received.After(e.received) {
			return // a later answer was kept while this one streamed
		}
		c.unlink(old)
	}
	if e.size > c.maxBytes {
		return
	}
	c.m[e.key] = e
	c.pushFront(e)
	c.bytes += e.size
	for len(c.m) > c.maxEntries || c.bytes > c.maxBytes {
		c.unlink(c.lru.prev)
	}
	for t := c.lru.prev; t != e && e.received.Sub(t.received) > c.maxAge; t = c.lru.prev {
		c.unlink(t)
	}
}

func (c *Cache) remove(key string) {
	c.mu.Lock()
	if e := c.m[key]; e != nil {
		c.unlink(e)
	}
	c.mu.Unlock()
}

// unlink drops e from the map, the list and the byte count (c.mu held).
func (c *Cache) unlink(e *entry) {
	delete(c.m, e.key)
	c.unlinkList(e)
	c.bytes -= e.size
}

func (c *Cache) unlinkList(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// captureBody is a captured answer's body: reads pass through unchanged and
// are copied into buf until the body ends (then Close keeps it) or the copy
// is given up (too large, longer than Content-Length, a read error).
// Its lock guards only the copy, never the underlying Read or Close, so a
// Close that aborts a blocked Read works as before.
type captureBody struct {
	rc   io.ReadCloser
	c    *Cache
	e    *entry
	want int64 // Content-Length, -1 when unknown

	mu     sync.Mutex
	buf    []byte
	eof    bool
	failed bool // copy given up
	tooBig bool
	done   bool // first Close happened
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if !b.failed && !b.done {
		b.copy(p, n, err)
	}
	b.mu.Unlock()
	return n, err
}

func (b *captureBody) copy(p []byte, n int, err error) {
	if n < 0 || n > len(p) {
		b.fail()
		return
	}
	need := len(b.buf) + n
	switch {
	case int64(need) > b.c.maxBody:
		b.fail()
		b.tooBig = true
		return
	case b.want >= 0 && int64(need) > b.want:
		b.fail()
		return
	}
	if need > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(2*cap(b.buf), need, 512), int(b.c.maxBody)))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p[:n]...)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.fail()
	}
}

func (b *captureBody) fail() { b.failed, b.buf = true, nil }

func (b *captureBody) Close() error {
	err := b.rc.Close()
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return err
	}
	b.done = true
	buf, tooBig := b.buf, b.tooBig
	complete := !b.failed && (b.want >= 0 && int64(len(buf)) == b.want || b.want < 0 && b.eof)
	b.buf = nil
	b.mu.Unlock()
	switch {
	case complete:
		if cap(buf) != len(buf) {
			buf = append([]byte(nil), buf...)
		}
		e := b.e
		b.e = nil
		e.body = buf
		b.c.put(e)
	case tooBig:
		b.c.remove(b.e.key)
	}
	return err
}
