package coalesce

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	base := func() *http.Request { return httptest.NewRequest("GET", "/providers/p/price?sym=BTC", nil) }
	with := func(f func(r *http.Request)) *http.Request { r := base(); f(r); return r }
	k0, ok := Key(base())
	if !ok {
		t.Fatal("a plain GET is not coalesced")
	}
	tests := []struct {
		name     string
		r        *http.Request
		wantOK   bool
		wantSame bool
	}{
		{"same", base(), true, true},
		{"other header", with(func(r *http.Request) { r.Header.Set("X-Request-Id", "7") }), true, true},
		{"HEAD", with(func(r *http.Request) { r.Method = "HEAD" }), true, false},
		{"query", httptest.NewRequest("GET", "/providers/p/price?sym=ETH", nil), true, false},
		{"path", httptest.NewRequest("GET", "/providers/p/prices?sym=BTC", nil), true, false},
		{"Authorization", with(func(r *http.Request) { r.Header.Set("Authorization", "Bearer a") }), true, false},
		{"Accept", with(func(r *http.Request) { r.Header.Set("Accept", "text/csv") }), true, false},
		{"Accept-Encoding", with(func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip") }), true, false},
		{"Cookie", with(func(r *http.Request) { r.Header.Set("Cookie", "s=1") }), true, false},
		{"POST", httptest.NewRequest("POST", "/providers/p/price?sym=BTC", nil), false, false},
		{"body", httptest.NewRequest("GET", "/providers/p/price?sym=BTC", strings.NewReader("x")), false, false},
		{"chunked", with(func(r *http.Request) { r.ContentLength = -1; r.TransferEncoding = []string{"chunked"} }), false, false},
		{"Range", with(func(r *http.Request) { r.Header.Set("Range", "bytes=0-1") }), false, false},
		{"If-None-Match", with(func(r *http.Request) { r.Header.Set("If-None-Match", `"x"`) }), false, false},
		{"Upgrade", with(func(r *http.Request) { r.Header.Set("Upgrade", "websocket") }), false, false},
		{"no-cache", with(func(r *http.Request) { r.Header.Set("Cache-Control", "max-age=0, No-Cache") }), false, false},
		{"no-store", with(func(r *http.Request) { r.Header.Set("Cache-Control", "no-store") }), false, false},
		{"Pragma", with(func(r *http.Request) { r.Header.Set("Pragma", "no-cache") }), false, false},
		{"max-age", with(func(r *http.Request) { r.Header.Set("Cache-Control", "max-age=0") }), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := Key(tt.r)
			if ok != tt.wantOK || (ok && (k == k0) != tt.wantSame) {
				t.Errorf("Key: ok %v, same key %v; want %v, %v", ok, k == k0, tt.wantOK, tt.wantSame)
			}
		})
	}
	// values are never confused across headers
	a := with(func(r *http.Request) { r.Header.Set("Accept", "x"); r.Header.Set("Authorization", "") })
	b := with(func(r *http.Request) { r.Header.Set("Accept", ""); r.Header.Set("Authorization", "x") })
	if ka, _ := Key(a); ka == func() string { kb, _ := Key(b); return kb }() {
		t.Error("Accept: x and Authorization: x share a key")
	}
}

// upstream is a handler that answers with chunks once released, counting
// its exchanges.
type upstream struct {
	calls   atomic.Int32
	release chan struct{}
	chunks  []string
	header  http.Header
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	for k, v := range u.header {
		w.Header()[k] = v
	}
	if u.release != nil {
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
	}
	for _, c := range u.chunks {
		io.WriteString(w, c)
	}
}

// serveAll serves n identical requests (with hdr's headers) on h
// concurrently and returns once all wait; wait waits for their end.
func serveAll(t *testing.T, h *Handler, n int, hdr func(i int) http.Header) (recs []*httptest.ResponseRecorder, wait func()) {
	t.Helper()
	recs = make([]*httptest.ResponseRecorder, n)
	wg := new(sync.WaitGroup)
	for i := range n {
		r := httptest.NewRequest("GET", "/x", nil)
		if hdr != nil {
			for k, v := range hdr(i) {
				r.Header[k] = v
			}
		}
		recs[i] = httptest.NewRecorder()
		wg.Go(func() { h.ServeHTTP(recs[i], r) })
	}
	waitFor(t, func() bool { return h.Clients() == n })
	return recs, wg.Wait
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a condition")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPersonalAnswer: an answer with Set-Cookie goes to the first client
// only; the others make exchanges of their own.
func TestPersonalAnswer(t *testing.T) {
	u := &upstream{release: make(chan struct{}), chunks: []string{"hello"}, header: http.Header{"Set-Cookie": {"s=1"}}}
	h := New(u, Options{})
	recs, wait := serveAll(t, h, 4, nil)
	close(u.release)
	wait()
	if got := u.calls.Load(); got != 4 {
		t.Errorf("%d exchanges; want 4 (one per client)", got)
	}
	for i, rec := range recs {
		if rec.Body.String() != "hello" {
			t.Errorf("client %d got %q; want %q", i, rec.Body.String(), "hello")
		}
	}
}

// TestVary: a joined client that sent a header the answer varies on
// differently gets an exchange of its own; one that sent it alike shares.
func TestVary(t *testing.T) {
	u := &upstream{release: make(chan struct{}), chunks: []string{"v"}, header: http.Header{"Vary": {"X-Tier"}}}
	h := New(u, Options{})
	tiers := []string{"gold", "gold", "silver"}
	_, waitFirst := serveAll(t, h, 1, func(int) http.Header { return http.Header{"X-Tier": {"gold"}} }) // the first
	var wg sync.WaitGroup
	for _, tier := range tiers[1:] {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("X-Tier", tier)
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), r) })
	}
	waitFor(t, func() bool { return h.Clients() == 3 })
	close(u.release)
	wg.Wait()
	waitFirst()
	if got := u.calls.Load(); got != 2 {
		t.Errorf("%d exchanges; want 2 (the silver client's own)", got)
	}
}

// blockingWriter is a client that reads only when told to.
type blockingWriter struct {
	httptest.ResponseRecorder
	mu    sync.Mutex
	gate  chan struct{} // nil: never blocks
	wrote atomic.Int64
}

func (w *blockingWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
	}
	w.wrote.Add(int64(len(p)))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ResponseRecorder.Write(p)
}

// TestSlowClientCut: a client that falls more than MaxLag behind another
// waiting for more is cut (its handler aborts), or, when nothing was
// written to it yet, served by an exchange of its own; the fast client
// gets the whole answer.
func TestSlowClientCut(t *testing.T) {
	chunk := strings.Repeat("x", 1000)
	u := &upstream{release: make(chan struct{})}
	for range 20 {
		u.chunks = append(u.chunks, chunk)
	}
	h := New(u, Options{MaxLag: 4000, JoinWindow: 100})
	fast := &blockingWriter{ResponseRecorder: *httptest.NewRecorder()}
	slow := &blockingWriter{ResponseRecorder: *httptest.NewRecorder(), gate: make(chan struct{})}
	done := make(chan any, 2)
	serve := func(w http.ResponseWriter) {
		defer func() { done <- recover() }()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	}
	go serve(fast)
	waitFor(t, func() bool { return h.Clients() == 1 })
	go serve(slow)
	waitFor(t, func() bool { return h.Clients() == 2 })
	close(u.release)
	if p := <-done; p != nil {
		t.Fatalf("the fast client's handler panicked: %v", p)
	}
	if got := fast.Body.Len(); got != 20000 {
		t.Errorf("fast client got %d bytes; want 20000", got)
	}
	close(slow.gate)
	p := <-done
	switch {
	case p == http.ErrAbortHandler: // cut
	case p == nil && u.calls.Load() == 2 && slow.Body.Len() == 20000: // an exchange of its own
	default:
		t.Errorf("the slow client's handler ended with %v after %d bytes, %d exchanges; want it cut (http.ErrAbortHandler) or served alone", p, slow.Body.Len(), u.calls.Load())
	}
}

// TestBackpressure: when every client is behind, the exchange waits for
// them rather than cutting anyone: a single slow client gets it all.
func TestBackpressure(t *testing.T) {
	chunk := strings.Repeat("y", 1000)
	u := &upstream{}
	for range 20 {
		u.chunks = append(u.chunks, chunk)
	}
	h := New(u, Options{MaxLag: 2500, JoinWindow: 100})
	gate := make(chan struct{})
	w := &blockingWriter{ResponseRecorder: *httptest.NewRecorder(), gate: gate}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	}()
	var p any
	for wait := true; wait; { // the client takes one write at a time
		select {
		case gate <- struct{}{}:
		case p = <-done:
			wait = false
		}
	}
	if p != nil {
		t.Fatalf("handler panicked: %v", p)
	}
	if got := w.Body.Len(); got != 20000 {
		t.Errorf("got %d bytes; want 20000", got)
	}
}

// TestExchangeBreaks: an exchange that breaks off mid-answer (the handler
// panics with http.ErrAbortHandler, as ReverseProxy does) breaks every
// client's answer after the bytes that came.
func TestExchangeBreaks(t *testing.T) {
	release := make(chan struct{})
	h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		<-release
		panic(http.ErrAbortHandler)
	}), Options{})
	var wg sync.WaitGroup
	recs := make([]*httptest.ResponseRecorder, 3)
	panics := make([]any, 3)
	for i := range recs {
		recs[i] = httptest.NewRecorder()
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			h.ServeHTTP(recs[i], httptest.NewRequest("GET", "/x", nil))
		})
	}
	waitFor(t, func() bool { return h.Clients() == 3 })
	close(release)
	wg.Wait()
	for i := range recs {
		if panics[i] != http.ErrAbortHandler || recs[i].Body.String() != "part" {
			t.Errorf("client %d: body %q, ended with %v; want %q then http.ErrAbortHandler", i, recs[i].Body.String(), panics[i], "part")
		}
	}
}

// TestTrailers: trailers the exchange sets after the body reach every
// client.
func TestTrailers(t *testing.T) {
	release := make(chan struct{})
	h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		<-release
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	}), Options{})
	recs, wait := serveAll(t, h, 3, nil)
	close(release)
	wait()
	for i, rec := range recs {
		if rec.Body.String() != "body" || rec.Header().Get("X-Sum") != "42" {
			t.Errorf("client %d: body %q, X-Sum %q; want %q and 42", i, rec.Body.String(), rec.Header().Get("X-Sum"), "body")
		}
	}
}

// FuzzBroadcast writes an answer in random chunks to clients that read at
// random paces and join at random moments, with small buffer bounds; every
// client that is not cut gets exactly the answer, and none is left
// waiting. Run it with -race.
func FuzzBroadcast(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint16(5000))
	f.Add(uint64(7), uint8(8), uint16(300))
	f.Fuzz(func(t *testing.T, seed uint64, clients uint8, size uint16) {
		n := int(clients%8) + 1
		rng := rand.New(rand.NewPCG(seed, seed^0x9e37))
		body := make([]byte, int(size))
		for i := range body {
			body[i] = byte(rng.IntN(256))
		}
		var chunks [][]byte
		for rest := body; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(700))
			chunks, rest = append(chunks, rest[:k]), rest[k:]
		}
		release := make(chan struct{})
		h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			for _, c := range chunks {
				w.Write(c)
			}
		}), Options{MaxLag: 1500, JoinWindow: 400})
		type result struct {
			body []byte
			p    any
		}
		results := make(chan result, n)
		pace := make([]time.Duration, n)
		for i := range pace {
			pace[i] = time.Duration(rng.IntN(3)) * 100 * time.Microsecond
		}
		for i := range n {
			go func() {
				var buf bytes.Buffer
				w := &pacedWriter{ResponseRecorder: httptest.NewRecorder(), buf: &buf, pace: pace[i]}
				defer func() { results <- result{buf.Bytes(), recover()} }()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil).WithContext(context.Background()))
			}()
		}
		waitFor(t, func() bool { return h.Clients() >= 1 })
		close(release)
		for range n {
			r := <-results
			if r.p == nil && !bytes.Equal(r.body, body) {
				t.Fatalf("a client got %d bytes that differ from the %d-byte answer", len(r.body), len(body))
			}
			if r.p != nil && r.p != http.ErrAbortHandler {
				t.Fatalf("a client's handler panicked: %v", r.p)
			}
		}
		waitFor(t, func() bool { return h.Clients() == 0 })
	})
}

// pacedWriter is a client that takes pace per write.
type pacedWriter struct {
	*httptest.ResponseRecorder
	buf  *bytes.Buffer
	pace time.Duration
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	if w.pace > 0 {
		time.Sleep(w.pace) // the client's own pace, not a wait for a condition
	}
	return w.buf.Write(p)
}
