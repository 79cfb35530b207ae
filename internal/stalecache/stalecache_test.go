package stalecache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/healproxy/healproxy/config"
)

var staleT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestCache: a cache whose clock reads *clock.
func newTestCache(cfg config.Cache, clock *time.Time) *Cache {
	if cfg.StaleIfError == 0 {
		cfg.StaleIfError = 5 * time.Minute
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 1000
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	c := New(cfg, nil)
	c.now = func() time.Time { return *clock }
	return c
}

func staleReq(method, target string, hdr ...string) *http.Request {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	r := &http.Request{Method: method, URL: u, Header: http.Header{}}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// closeCount is a body that counts its Close calls.
type closeCount struct {
	io.Reader
	closes int
}

func (b *closeCount) Close() error { b.closes++; return nil }

// staleResp is an answer to req as http.Transport gives it (Content-Length known).
func staleResp(req *http.Request, code int, body string, hdr ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	return &http.Response{
		Status: strconv.Itoa(code) + " " + http.StatusText(code), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: &closeCount{Reader: bytes.NewReader([]byte(body))}, ContentLength: int64(len(body)),
		Request: req,
	}
}

// roundTrip captures resp under key and reads its body to the end the way
// ReverseProxy does; it returns what the client read.
func roundTrip(t testing.TB, c *Cache, key string, resp *http.Response) []byte {
	t.Helper()
	c.Capture(key, resp)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return got
}

func TestStaleRoundTrip(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{}, &now)
	req := staleReq("GET", "/v1/price?coin=btc", "Accept", "application/json")
	key := c.Key(req)
	resp := staleResp(req, 200, `{"price":1}`,
		"Content-Type", "application/json", "ETag", `"v1"`, "Cache-Control", "public, max-age=10",
		"Connection", "X-Hop", "X-Hop", "1", "Keep-Alive", "timeout=5", "Age", "7", "Warning", `199 - "old"`,
		"Content-Length", "11", "Vary", "Accept-Encoding, accept")
	if got := roundTrip(t, c, key, resp); string(got) != `{"price":1}` {
		t.Fatalf("client read %q; want the body", got)
	}
	if n := c.len(); n != 1 {
		t.Fatalf("len() = %d; want 1", n)
	}
	now = now.Add(30*time.Second + 900*time.Millisecond)
	for i := range 2 { // each answer has a body of its own
		later := staleReq("GET", "/v1/price?coin=btc", "Accept", "application/json")
		r, ok := c.Stale(key, later, now)
		if !ok {
			t.Fatalf("Stale() found nothing; want the kept answer")
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		for _, w := range []struct{ name, got, want string }{
			{"status", r.Status, "200 OK"},
			{"body", string(body), `{"price":1}`},
			{"Content-Type", r.Header.Get("Content-Type"), "application/json"},
			{"ETag", r.Header.Get("ETag"), `"v1"`},
			{"Cache-Control", r.Header.Get("Cache-Control"), "public, max-age=10"},
			{"Warning", fmt.Sprint(r.Header["Warning"]), `[110 - "Response is Stale"]`},
			{"X-Healproxy-Stale", r.Header.Get("X-Healproxy-Stale"), "true"},
			{"Age", r.Header.Get("Age"), "37"}, // 7 on arrival + 30 s kept
			{"Content-Length", r.Header.Get("Content-Length"), "11"},
			{"ContentLength", strconv.FormatInt(r.ContentLength, 10), "11"},
			{"Connection", r.Header.Get("Connection"), ""},
			{"X-Hop", r.Header.Get("X-Hop"), ""},
			{"Keep-Alive", r.Header.Get("Keep-Alive"), ""},
		} {
			if w.got != w.want {
				t.Errorf("serve %d: %s = %q; want %q", i, w.name, w.got, w.want)
			}
		}
		if r.StatusCode != 200 || r.Request != later {
			t.Errorf("serve %d: StatusCode %d, Request %p; want 200, %p", i, r.StatusCode, r.Request, later)
		}
		r.Header.Set("Content-Type", "changed") // the caller's copy
	}

	// HEAD is answered from the GET entry: headers, no body.
	head := staleReq("HEAD", "/v1/price?coin=btc", "Accept", "application/json")
	if c.Key(head) != key {
		t.Fatalf("Key(HEAD) = %q; want GET's %q", c.Key(head), key)
	}
	r, ok := c.Stale(key, head, now)
	if !ok {
		t.Fatal("Stale(HEAD) found nothing; want the GET entry")
	}
	if b, _ := io.ReadAll(r.Body); len(b) != 0 || r.Header.Get("Content-Length") != "11" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD: body %q, Content-Length %q, Content-Type %q; want none, 11, application/json",
			b, r.Header.Get("Content-Length"), r.Header.Get("Content-Type"))
	}
}

func TestStaleStoredStatuses(t *testing.T) {
	for _, code := range []int{200, 203, 204, 300, 301, 308} {
		now := staleT0
		c := newTestCache(config.Cache{}, &now)
		req := staleReq("GET", "/x")
		body := "b"
		if code == 204 {
			body = ""
		}
		roundTrip(t, c, c.Key(req), staleResp(req, code, body, "Location", "/y"))
		r, ok := c.Stale(c.Key(req), req, now)
		if !ok {
			t.Errorf("%d: not kept; want kept", code)
			continue
		}
		got, _ := io.ReadAll(r.Body)
		if r.StatusCode != code || string(got) != body || r.Header.Get("Location") != "/y" {
			t.Errorf("%d: got %d %q Location %q; want %d %q /y", code, r.StatusCode, got, r.Header.Get("Location"), code, body)
		}
		if cl, ok := r.Header["Content-Length"]; code == 204 && ok {
			t.Errorf("204: Content-Length %q; want none", cl)
		}
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestStaleNotStored(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		req    *http.Request
		resp   func(req *http.Request) *http.Response
		client func(t *testing.T, body io.ReadCloser) // how the client reads; nil: to EOF, then Close
	}{
		{name: "no-store", resp: func(q *http.Request) *http.Response {
			return staleResp(q, 200, "x", "Cache-Control", "max-age=60, no-store")
		}},
		{name: "private", resp: func(q *http.Request) *http.Response {
			return staleResp(q, 200, "x", "Cache-Control", `Private="Set-Cookie"`)
		}},
		{name: "no-cache", resp: func(q *http.Request) *http.Response { return staleResp(q, 200, "x", "Cache-Control", "no-cache") }},
		{name: "must-revalidate", resp: func(q *http.Request) *http.Response {
			return staleResp(q, 200, "x", "Cache-Control", "public", "Cache-Control", "must-revalidate")
		}},
		{name: "Set-Cookie", resp: func(q *http.Request) *http.Response { return staleResp(q, 200, "x", "Set-Cookie", "s=1") }},
		{name: "Vary Cookie", resp: func(q *http.Request) *http.Response { return staleResp(q, 200, "x", "Vary", "Accept, Cookie") }},
		{name: "Vary *", resp: func(q *http.Request) *http.Response { return staleResp(q, 200, "x", "Vary", "*") }},
		{name: "trailer", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, "x")
			r.Trailer = http.Header{"X-Sum": nil}
			return r
		}},
		{name: "POST", req: staleReq("POST", "/p")},
		{name: "HEAD answer", req: staleReq("HEAD", "/p")},
		{name: "Authorization", req: staleReq("GET", "/p", "Authorization", "Bearer client")},
		{name: "Cookie", req: staleReq("GET", "/p", "Cookie", "a=b")},
		{name: "request no-store", req: staleReq("GET", "/p", "Cache-Control", "no-store")},
		{name: "no Request", resp: func(*http.Request) *http.Response { return staleResp(nil, 200, "x") }},
		{name: "404", resp: func(q *http.Request) *http.Response { return staleResp(q, 404, "x") }},
		{name: "410", resp: func(q *http.Request) *http.Response { return staleResp(q, 410, "x") }},
		{name: "206", resp: func(q *http.Request) *http.Response { return staleResp(q, 206, "x") }},
		{name: "304", resp: func(q *http.Request) *http.Response { return staleResp(q, 304, "") }},
		{name: "500", resp: func(q *http.Request) *http.Response { return staleResp(q, 500, "x") }},
		{name: "Content-Length over limit", resp: func(q *http.Request) *http.Response {
			return staleResp(q, 200, string(make([]byte, 1025)))
		}},
		{name: "streamed over limit", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, string(make([]byte, 1025)))
			r.ContentLength = -1
			return r
		}},
		{name: "shorter than Content-Length", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, "abc")
			r.ContentLength = 4
			return r
		}},
		{name: "longer than Content-Length", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, "abcde")
			r.ContentLength = 4
			return r
		}},
		{name: "read error", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, "")
			r.Body, r.ContentLength = io.NopCloser(&failingReader{data: []byte("abc"), err: errBoom}), -1
			return r
		}, client: func(t *testing.T, b io.ReadCloser) {
			if _, err := io.ReadAll(b); err != errBoom {
				t.Errorf("read error %v; want %v", err, errBoom)
			}
			b.Close()
		}},
		{name: "partially read", client: func(t *testing.T, b io.ReadCloser) {
			io.ReadFull(b, make([]byte, 2))
			b.Close()
		}},
		{name: "streamed, closed before EOF", resp: func(q *http.Request) *http.Response {
			r := staleResp(q, 200, "abc")
			r.ContentLength = -1
			return r
		}, client: func(t *testing.T, b io.ReadCloser) {
			io.ReadFull(b, make([]byte, 3)) // all bytes, but EOF not seen: unknown length, so maybe more
			b.Close()
		}},
		{name: "closed unread", client: func(t *testing.T, b io.ReadCloser) { b.Close() }},
		{name: "read, not closed", client: func(t *testing.T, b io.ReadCloser) { io.ReadAll(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := staleT0
			c := newTestCache(config.Cache{MaxBodyBytes: 1024}, &now)
			req := tc.req
			if req == nil {
				req = staleReq("GET", "/p")
			}
			mk := tc.resp
			if mk == nil {
				mk = func(q *http.Request) *http.Response { return staleResp(q, 200, "hello") }
			}
			resp := mk(req)
			key := c.Key(req)
			if tc.req != nil && tc.req.Method == "HEAD" {
				key = c.Key(staleReq("GET", "/p")) // even under GET's key, a HEAD answer is not kept
			}
			c.Capture(key, resp)
			if tc.client != nil {
				tc.client(t, resp.Body)
			} else {
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if n := c.len(); n != 0 {
				t.Errorf("len() = %d; want 0 (not kept)", n)
			}
			if _, ok := c.Stale(c.Key(staleReq("GET", "/p")), staleReq("GET", "/p"), now); ok {
				t.Errorf("Stale() served an answer; want none")
			}
		})
	}
}

func TestStaleKey(t *testing.T) {
	c := newTestCache(config.Cache{}, new(time.Time))
	c.injected = http.Header{"Authorization": {"Bearer provider"}}
	base := c.Key(staleReq("GET", "/a%2Fb/c?x=1&y=2"))
	for _, tc := range []struct {
		name string
		req  *http.Request
		same bool // same key as base; otherwise a different non-empty one
		none bool // ""
	}{
		{name: "same request", req: staleReq("GET", "/a%2Fb/c?x=1&y=2"), same: true},
		{name: "HEAD", req: staleReq("HEAD", "/a%2Fb/c?x=1&y=2"), same: true},
		{name: "other header", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "User-Agent", "z"), same: true},
		{name: "injected Authorization", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Authorization", "Bearer provider"), same: true},
		{name: "escaped path differs", req: staleReq("GET", "/a/b/c?x=1&y=2")},
		{name: "query order", req: staleReq("GET", "/a%2Fb/c?y=2&x=1")},
		{name: "no query", req: staleReq("GET", "/a%2Fb/c")},
		{name: "Accept", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Accept", "text/csv")},
		{name: "Accept-Encoding", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Accept-Encoding", "gzip")},
		{name: "POST", req: staleReq("POST", "/a%2Fb/c?x=1&y=2"), none: true},
		{name: "PUT", req: staleReq("PUT", "/a%2Fb/c?x=1&y=2"), none: true},
		{name: "client Authorization", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Authorization", "Bearer me"), none: true},
		{name: "Cookie", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Cookie", "a=b"), none: true},
		{name: "no-store", req: staleReq("GET", "/a%2Fb/c?x=1&y=2", "Cache-Control", "No-Store"), none: true},
	} {
		got := c.Key(tc.req)
		switch {
		case tc.none && got != "":
			t.Errorf("%s: Key %q; want \"\"", tc.name, got)
		case tc.same && got != base:
			t.Errorf("%s: Key %q; want %q", tc.name, got, base)
		case !tc.none && !tc.same && (got == base || got == ""):
			t.Errorf("%s: Key %q; want one of its own", tc.name, got)
		}
	}
}

func TestStaleTooOld(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{StaleIfError: time.Minute}, &now)
	req := staleReq("GET", "/p")
	roundTrip(t, c, c.Key(req), staleResp(req, 200, "x"))
	if _, ok := c.Stale(c.Key(req), req, staleT0.Add(time.Minute)); !ok {
		t.Errorf("at exactly StaleIfError: not served; want served")
	}
	if _, ok := c.Stale(c.Key(req), req, staleT0.Add(time.Minute+time.Nanosecond)); ok {
		t.Errorf("after StaleIfError: served; want not")
	}
	if n := c.len(); n != 0 {
		t.Errorf("len() = %d after an expired lookup; want 0 (dropped)", n)
	}
	// An expired entry at the LRU end goes when another is stored.
	roundTrip(t, c, c.Key(req), staleResp(req, 200, "x"))
	now = now.Add(2 * time.Minute)
	q := staleReq("GET", "/q")
	roundTrip(t, c, c.Key(q), staleResp(q, 200, "y"))
	if n := c.len(); n != 1 {
		t.Errorf("len() = %d; want 1 (expired entry dropped on store)", n)
	}
}

func TestStaleReplaceAndInvalidate(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{}, &now)
	req := staleReq("GET", "/p")
	key := c.Key(req)
	body := func() string {
		r, ok := c.Stale(key, req, now)
		if !ok {
			return "<none>"
		}
		b, _ := io.ReadAll(r.Body)
		return string(b)
	}
	steps := []struct {
		name string
		resp *http.Response
		want string
	}{
		{"first", staleResp(req, 200, "v1"), "v1"},
		{"newer", staleResp(req, 200, "v2"), "v2"},
		{"500 keeps", staleResp(req, 500, "err"), "v2"},
		{"429 keeps", staleResp(req, 429, "slow"), "v2"},
		{"304 keeps", staleResp(req, 304, ""), "v2"},
		{"404 removes", staleResp(req, 404, "gone"), "<none>"},
		{"again", staleResp(req, 200, "v3"), "v3"},
		{"no-store removes", staleResp(req, 200, "v4", "Cache-Control", "no-store"), "<none>"},
		{"again", staleResp(req, 200, "v5"), "v5"},
		{"too large removes", staleResp(req, 200, string(make([]byte, 2<<20))), "<none>"},
	}
	for _, s := range steps {
		now = now.Add(time.Second)
		roundTrip(t, c, key, s.resp)
		if got := body(); got != s.want {
			t.Errorf("%s: stale body %q; want %q", s.name, got, s.want)
		}
	}

	// An older answer whose body ends after a newer one's does not replace it.
	older := staleResp(req, 200, "older")
	c.Capture(key, older)
	now = now.Add(time.Second)
	roundTrip(t, c, key, staleResp(req, 200, "newer"))
	io.ReadAll(older.Body)
	older.Body.Close()
	if got := body(); got != "newer" {
		t.Errorf("out of order: stale body %q; want %q", got, "newer")
	}
}

func TestStaleEvictByCount(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{MaxEntries: 2}, &now)
	store := func(p string) {
		q := staleReq("GET", p)
		roundTrip(t, c, c.Key(q), staleResp(q, 200, p))
	}
	has := func(p string) bool {
		q := staleReq("GET", p)
		_, ok := c.Stale(c.Key(q), q, now)
		return ok
	}
	store("/a")
	store("/b")
	has("/a") // /a is now used more recently than /b
	store("/c")
	for _, w := range []struct {
		p    string
		want bool
	}{{"/a", true}, {"/b", false}, {"/c", true}} {
		if got := has(w.p); got != w.want {
			t.Errorf("%s kept: got %v; want %v", w.p, got, w.want)
		}
	}
	if n := c.len(); n != 2 {
		t.Errorf("len() = %d; want 2", n)
	}
}

func TestStaleEvictByBytes(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{MaxEntries: 100, MaxBodyBytes: 4096}, &now)
	q := func(p string) *http.Request { return staleReq("GET", p) }
	size := int64(1000 + len(c.Key(q("/a")))) // body + key; no headers
	c.maxBytes = 3*size + size/2              // room for three entries
	for _, p := range []string{"/a", "/b", "/c"} {
		roundTrip(t, c, c.Key(q(p)), staleResp(q(p), 200, string(make([]byte, 1000))))
	}
	c.Stale(c.Key(q("/a")), q("/a"), now)
	roundTrip(t, c, c.Key(q("/d")), staleResp(q("/d"), 200, string(make([]byte, 1000))))
	for _, w := range []struct {
		p    string
		want bool
	}{{"/a", true}, {"/b", false}, {"/c", true}, {"/d", true}} {
		if _, got := c.Stale(c.Key(q(w.p)), q(w.p), now); got != w.want {
			t.Errorf("%s kept: got %v; want %v", w.p, got, w.want)
		}
	}
	c.mu.Lock()
	used := c.bytes
	c.mu.Unlock()
	if used != 3*size {
		t.Errorf("bytes = %d; want %d", used, 3*size)
	}
	// A body within MaxBodyBytes but larger than the whole budget is not kept
	// and evicts nothing.
	roundTrip(t, c, c.Key(q("/e")), staleResp(q("/e"), 200, string(make([]byte, 4000))))
	if n := c.len(); n != 3 {
		t.Errorf("len() = %d after an answer over the budget; want 3", n)
	}
}

func TestStaleBudget(t *testing.T) {
	for _, tc := range []struct {
		entries   int
		body      int64
		wantBytes int64
	}{
		{1000, 1 << 20, 1000 << 16},     // defaults: 1000 × 64 KiB
		{10, 1 << 20, 1 << 20},          // 10 × 64 KiB is less than one body of MaxBodyBytes
		{10, 1 << 10, 10 << 10},         // 10 × 1 KiB
		{1, 8 << 20, 8 << 20},           // at least one body of MaxBodyBytes
		{1 << 30, 1 << 20, 64 << 20},    // capped at 64 MiB
		{1 << 20, 100 << 20, 100 << 20}, // one largest body must fit
		{1000, 100, 100000},             // 1000 × 100 B
	} {
		c := New(config.Cache{StaleIfError: time.Minute, MaxEntries: tc.entries, MaxBodyBytes: tc.body}, nil)
		if c.maxBytes != tc.wantBytes {
			t.Errorf("MaxEntries %d, MaxBodyBytes %d: budget %d; want %d", tc.entries, tc.body, c.maxBytes, tc.wantBytes)
		}
	}
}

// readChunks reads r to EOF in reads of at most n bytes.
func readChunks(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, n)
	for {
		m, err := r.Read(buf)
		out = append(out, buf[:m]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

func TestStaleBodyIdentical(t *testing.T) {
	big := make([]byte, 3<<19+17) // 1.5 MiB and a bit: over the 1 MiB limit
	rand.NewChaCha8([32]byte{1}).Read(big)
	for _, tc := range []struct {
		name    string
		size    int
		length  bool // Content-Length known
		chunk   int
		halfSrc bool // the source gives short reads
		kept    bool
	}{
		{"small, 7-byte reads", 5000, true, 7, false, true},
		{"streamed, 1-byte reads, short source reads", 3000, false, 1, true, true},
		{"large streamed, 4 KiB reads", len(big), false, 4096, true, false},
		{"large with length, 61-byte reads", len(big), true, 61, false, false},
		{"at the limit, streamed", 1 << 20, false, 999, true, true},
		{"one over the limit, streamed", 1<<20 + 1, false, 999, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := staleT0
			c := newTestCache(config.Cache{MaxBodyBytes: 1 << 20}, &now)
			req := staleReq("GET", "/big")
			src := io.Reader(bytes.NewReader(big[:tc.size]))
			if tc.halfSrc {
				src = iotest.HalfReader(src)
			}
			resp := staleResp(req, 200, "")
			cc := &closeCount{Reader: src}
			resp.Body, resp.ContentLength = cc, -1
			if tc.length {
				resp.ContentLength = int64(tc.size)
			}
			c.Capture(c.Key(req), resp)
			got := readChunks(t, resp.Body, tc.chunk)
			resp.Body.Close()
			if !bytes.Equal(got, big[:tc.size]) {
				t.Fatalf("client read %d bytes, differing from the %d sent", len(got), tc.size)
			}
			if cc.closes != 1 {
				t.Errorf("underlying Close called %d times; want 1", cc.closes)
			}
			r, ok := c.Stale(c.Key(req), req, now)
			if ok != tc.kept {
				t.Fatalf("kept: got %v; want %v", ok, tc.kept)
			}
			if ok {
				b, _ := io.ReadAll(r.Body)
				if !bytes.Equal(b, big[:tc.size]) {
					t.Errorf("stale body: %d bytes, differing from the %d sent", len(b), tc.size)
				}
			}
		})
	}
}

func TestStaleBodyUntouchedWhenNotKept(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{MaxBodyBytes: 10}, &now)
	req := staleReq("GET", "/p")
	for _, resp := range []*http.Response{
		staleResp(req, 200, "x", "Cache-Control", "no-store"),
		staleResp(req, 500, "x"),
		staleResp(req, 200, "more than ten bytes"), // Content-Length over the limit
	} {
		body := resp.Body
		c.Capture(c.Key(req), resp)
		if resp.Body != body {
			t.Errorf("%d %v: Body replaced; want the upstream's own", resp.StatusCode, resp.Header)
		}
	}
	resp := staleResp(req, 200, "x")
	c.Capture("", resp)
	if _, ok := resp.Body.(*closeCount); !ok {
		t.Errorf("key \"\": Body replaced; want the upstream's own")
	}
}

func TestStaleCloseWithoutRead(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{}, &now)
	req := staleReq("GET", "/p")
	before := runtime.NumGoroutine()
	resp := staleResp(req, 200, "hello")
	cc := resp.Body.(*closeCount)
	c.Capture(c.Key(req), resp)
	for i := range 3 { // Close is idempotent and passed on each time
		if err := resp.Body.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	if cc.closes != 3 {
		t.Errorf("underlying Close called %d times; want 3", cc.closes)
	}
	b := resp.Body.(*captureBody)
	if b.buf != nil || c.len() != 0 {
		t.Errorf("after Close: buffer %d bytes, %d entries; want none", len(b.buf), c.len())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines %d after capture and Close; want at most %d", n, before)
	}
	// A body read to EOF and closed twice is stored once.
	resp = staleResp(req, 200, "hello")
	c.Capture(c.Key(req), resp)
	io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body.Close()
	c.mu.Lock()
	used, want := c.bytes, int64(len("hello")+len(c.Key(req)))
	c.mu.Unlock()
	if c.len() != 1 || used != want {
		t.Errorf("after two Closes: %d entries, %d bytes; want 1, %d", c.len(), used, want)
	}
}

// TestStaleConcurrent runs captures, reads and lookups of overlapping keys
// side by side, for -race; the bounds must hold throughout.
func TestStaleConcurrent(t *testing.T) {
	var clockMu sync.Mutex
	now := staleT0
	c := New(config.Cache{StaleIfError: time.Minute, MaxEntries: 8, MaxBodyBytes: 1 << 10}, nil)
	c.now = func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				p := "/k" + strconv.Itoa((g*7+i)%20)
				req := staleReq("GET", p)
				key := c.Key(req)
				if i%3 == 0 {
					if r, ok := c.Stale(key, req, c.now()); ok {
						b, _ := io.ReadAll(r.Body)
						if string(b) != p {
							t.Errorf("Stale(%s) body %q; want %q", p, b, p)
						}
						r.Header.Set("X-Mine", "x")
					}
					continue
				}
				resp := staleResp(req, 200, p)
				c.Capture(key, resp)
				if i%5 == 0 {
					resp.Body.Close() // abandoned
					continue
				}
				io.ReadAll(resp.Body)
				resp.Body.Close()
				if n := c.len(); n > 8 {
					t.Errorf("len() = %d; want at most 8", n)
				}
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum int64
	n := 0
	for e := c.lru.next; e != &c.lru; e = e.next {
		sum += e.size
		n++
	}
	if n != len(c.m) || sum != c.bytes || c.bytes > c.maxBytes {
		t.Errorf("list %d entries, %d bytes; map %d, count %d, budget %d", n, sum, len(c.m), c.bytes, c.maxBytes)
	}
}

// TestStaleCloseDuringRead closes the body while another goroutine reads it
// (as aborting an upload does), for -race.
func TestStaleCloseDuringRead(t *testing.T) {
	now := staleT0
	c := newTestCache(config.Cache{}, &now)
	req := staleReq("GET", "/p")
	pr, pw := io.Pipe()
	resp := staleResp(req, 200, "")
	resp.Body, resp.ContentLength = pr, -1
	c.Capture(c.Key(req), resp)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.ReadAll(resp.Body)
	}()
	pw.Write([]byte("partial"))
	resp.Body.Close()
	<-done
	if n := c.len(); n != 0 {
		t.Errorf("len() = %d; want 0", n)
	}
}

func BenchmarkStaleCapture2K(b *testing.B) {
	now := staleT0
	c := newTestCache(config.Cache{}, &now)
	req := staleReq("GET", "/v1/price?coin=btc", "Accept", "application/json")
	key := c.Key(req)
	body := make([]byte, 2048)
	src := bytes.NewReader(body)
	rc := io.NopCloser(src)
	buf := make([]byte, 32<<10)
	resp := &http.Response{StatusCode: 200, Status: "200 OK", Request: req,
		Header: http.Header{"Content-Type": {"application/json"}, "Date": {"Thu, 02 Jan 2025 03:04:05 GMT"}}}
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		resp.Body, resp.ContentLength = rc, int64(len(body))
		c.Capture(key, resp)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
	if c.len() != 1 {
		b.Fatalf("len() = %d; want 1", c.len())
	}
}
