// Package httpserver is the http.Server healproxy listens with: its
// timeouts and header limit, and a guard against request smuggling.
//
// net/http accepts, as RFC 9112 allows, request framing that a front-end
// proxy may read differently: Content-Length together with
// Transfer-Encoding, Transfer-Encoding on HTTP/1.0, and obs-fold (a header
// line continued on the next). A request smuggled behind such a head
// would reach the handler as a request of its own. GuardListener's
// connections follow each connection's framing the way net/http reads
// it, and the server New builds answers 400 to a request with one of
// these shapes and closes the connection, so nothing pipelined after it
// is served. SECURITY.md describes the whole of it.
package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Limits of the HTTP server healproxy listens with (New).
const (
	// ReadHeaderTimeout bounds the time to send a request's headers: a
	// client trickling them (slowloris) is cut off after it.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds the time to send a whole request, body included.
	ReadTimeout = 60 * time.Second
	// WriteTimeout bounds the time to write an answer; the event stream
	// lifts it, provider requests set a tighter deadline of their own.
	WriteTimeout = 10 * time.Minute
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes bounds a request's line and headers; larger ones get
	// 431 Request Header Fields Too Large.
	MaxHeaderBytes = 64 << 10
)

// New is the http.Server healproxy serves h with: the timeouts
// and header limit above, and refusal (400, connection closed) of
// requests whose framing two HTTP parsers could read differently. Serve
// it on GuardListener(ln): the refusal needs the raw headers, which
// net/http does not keep. errLog nil means the log package's logger.
func New(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           refuseAmbiguousFraming(h),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if gc, ok := c.(*guardConn); ok {
				return context.WithValue(ctx, guardConnKey{}, gc)
			}
			return ctx
		},
		// A hijacked connection (an upgrade a handler grants, with 101
		// or a tunnel) carries no HTTP any more: the guard stops there.
		// net/http calls this inside Hijack, before the handler gets the
		// connection.
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateHijacked {
				if gc, ok := c.(*guardConn); ok {
					gc.hijacked.Store(true)
				}
			}
		},
	}
}

// Request smuggling: net/http itself refuses differing duplicate
// Content-Length headers (400) and, on HTTP/1.1, any Transfer-Encoding
// but a single "chunked" (501). Shapes it accepts, which a front-end
// proxy may read differently, are refused here:
//   - Content-Length together with Transfer-Encoding: on HTTP/1.1
//     net/http drops the Content-Length and reads chunks; a front-end
//     that trusted the Content-Length would see a different request
//     boundary;
//   - Transfer-Encoding on HTTP/1.0, with a Content-Length or without:
//     net/http ignores it and reads the Content-Length (none: no body);
//     a front-end that read chunks would see a different boundary. RFC
//     9112 §6.1 makes such framing faulty;
//   - obs-fold, a header line continued on the next line: net/http joins
//     it into the previous value; another parser may read the continued
//     line as a header of its own (a hidden Transfer-Encoding).
//
// GuardListener's connections follow the framing of what they read as
// net/http does (request heads, Content-Length and chunked bodies) and
// mark the connection once a head has one of these shapes;
// refuseAmbiguousFraming then answers 400 and closes it, so no request
// after it on that connection is served. A connection is followed for as
// long as net/http reads HTTP on it: a request asking for an upgrade
// (Upgrade, CONNECT) changes nothing unless a handler hijacks the
// connection to grant it, and only then does the guard stop. Where the
// stream cannot be followed (something net/http refuses anyway) the guard
// stops too, and refuses the connection.

type guardConnKey struct{}

// GuardListener wraps ln for New (see above).
func GuardListener(ln net.Listener) net.Listener { return guardListener{ln} }

type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &guardConn{Conn: c}, nil
}

func refuseAmbiguousFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gc, _ := r.Context().Value(guardConnKey{}).(*guardConn); gc != nil {
			if why := gc.refused.Load(); why != nil {
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusBadRequest, "ambiguous request framing refused: "+*why)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// writeError answers code with the JSON error body healproxy answers
// with everywhere: {"status":"error","error":msg}, not to be cached.
func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}{"error", msg}) // strings only: cannot fail
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// guardConn follows the request framing of what the server reads. Until
// a hijack only the server's reading goroutine calls Read; after it, the
// hijacker's, and the guard no longer follows.
type guardConn struct {
	net.Conn
	refused  atomic.Pointer[string] // why; set once, never cleared
	hijacked atomic.Bool            // by the server's ConnState hook

	state int
	head  []byte // the head read so far
	left  int64  // bytes left of a body or chunk
	line  []byte // a chunk-size or trailer line read so far
}

const (
	gHead      = iota // reading a request head
	gBody             // skipping left bytes of a Content-Length body
	gChunkSize        // reading a chunk-size line
	gChunkData        // skipping left bytes of chunk data, then its CRLF
	gTrailer          // reading trailer lines until an empty one
	gOff              // not following any more

	// maxGuardHead bounds the head the guard keeps. net/http answers 431
	// to a longer one: it reads at most MaxHeaderBytes + 4096 bytes for
	// a request, plus what its 4 KiB buffer already holds of it from the
	// read of the request before.
	maxGuardHead = MaxHeaderBytes + 4096 + 4096
)

func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.hijacked.Load() && c.state != gOff {
		c.follow(p[:n])
	}
	return n, err
}

func (c *guardConn) follow(b []byte) {
	for len(b) > 0 && c.state != gOff {
		switch c.state {
		case gHead:
			if len(c.head) == 0 { // blank lines before a request line are skipped
				for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
					b = b[1:]
				}
				if len(b) == 0 {
					return
				}
			}
			start := max(0, len(c.head)-3)
			c.head = append(c.head, b...)
			end := headEnd(c.head, start)
			if end < 0 {
				if len(c.head) > maxGuardHead {
					c.lose("a request head too long to inspect") // net/http answers 431
				}
				return
			}
			// What follows the head is the tail of b: no head ended in
			// what c.head held before b.
			rest := len(c.head) - end
			c.head = c.head[:end]
			c.endHead()
			b = b[len(b)-rest:]
			c.head = c.head[:0]
		case gBody:
			k := min(int64(len(b)), c.left)
			c.left -= k
			b = b[k:]
			if c.left == 0 {
				c.state = gHead
			}
		case gChunkSize, gTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				if len(c.line) > 4096 {
					c.lose("a chunk-size or trailer line too long") // net/http refuses the body
				}
				return
			}
			line := b[:i]
			if len(c.line) > 0 { // the line began in an earlier read
				c.line = append(c.line, line...)
				line = c.line
			}
			line = bytes.TrimRight(line, "\r")
			c.line = c.line[:0]
			b = b[i+1:]
			if c.state == gTrailer {
				if len(line) == 0 {
					c.state = gHead
				}
				continue
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 62)
			switch {
			case err != nil:
				c.lose("a malformed chunk size") // net/http refuses the body
			case size == 0:
				c.state = gTrailer
			default:
				c.left, c.state = int64(size)+2, gChunkData // the data and its CRLF
			}
		case gChunkData:
			k := min(int64(len(b)), c.left)
			c.left -= k
			b = b[k:]
			if c.left == 0 {
				c.state = gChunkSize
			}
		}
	}
}

// headEnd is the index just past the blank line ending a head, or -1.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i >= 1 && b[i-1] == '\n' {
			return i + 1
		}
		if i >= 2 && b[i-1] == '\r' && b[i-2] == '\n' {
			return i + 1
		}
	}
	return -1
}

// endHead reads a complete head: marks the connection on an ambiguous
// one, and sets up following its body the way net/http reads it.
func (c *guardConn) endHead() {
	reqLine, lines, _ := bytes.Cut(c.head, []byte("\n"))
	http11 := atLeastHTTP11(bytes.TrimSuffix(reqLine, []byte("\r")))
	var cl, te bool
	var length int64
	for len(lines) > 0 { // the header lines, then the empty one ending them
		var l []byte
		l, lines, _ = bytes.Cut(lines, []byte("\n"))
		l = bytes.TrimRight(l, "\r")
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			c.refuse("a header line is folded onto the next (obs-fold)")
			continue
		}
		name, value, _ := bytes.Cut(l, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = true
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				length = n
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// net/http ignores Transfer-Encoding on HTTP/1.0 (refused
			// below); on HTTP/1.1 it takes a single "chunked" only.
			if http11 && (te || !bytes.EqualFold(value, []byte("chunked"))) {
				c.lose("a Transfer-Encoding other than a single chunked") // net/http answers 501
				return
			}
			te = true
		}
	}
	switch {
	case cl && te:
		c.refuse("Content-Length together with Transfer-Encoding")
	case te && !http11:
		// RFC 9112 §6.1: the framing of an HTTP/1.0 message with
		// Transfer-Encoding is faulty, a Content-Length or none; a
		// front-end may have read it chunked.
		c.refuse("Transfer-Encoding on an HTTP/1.0 request")
	}
	switch {
	case te && http11:
		c.state = gChunkSize
	case length > 0: // HTTP/1.0 too: net/http reads its Content-Length
		c.state, c.left = gBody, length
	default:
		c.state = gHead
	}
}

// atLeastHTTP11 reports whether net/http reads the request with this
// request line as HTTP/1.1 or later, where Transfer-Encoding frames the
// body: it splits the line at its first two spaces (a tab or a non-ASCII
// space separates nothing) and parses the version as ParseHTTPVersion
// does. A line net/http refuses (400, 505, connection closed) counts as
// HTTP/1.1.
func atLeastHTTP11(line []byte) bool {
	_, rest, _ := bytes.Cut(line, []byte(" "))
	_, proto, _ := bytes.Cut(rest, []byte(" "))
	switch {
	case bytes.Equal(proto, []byte("HTTP/1.1")):
		return true
	case bytes.Equal(proto, []byte("HTTP/1.0")):
		return false
	}
	major, minor, ok := http.ParseHTTPVersion(string(proto))
	return !ok || major > 1 || major == 1 && minor >= 1
}

func (c *guardConn) refuse(why string) {
	c.refused.CompareAndSwap(nil, &why)
}

// lose stops following a stream the guard can no longer follow. net/http
// refuses what led here and closes the connection; were it ever to read
// on, the refusal keeps what follows from being served.
func (c *guardConn) lose(why string) {
	c.refuse(why)
	c.state = gOff
}

// Interface guards
var (
	_ net.Listener = guardListener{}
	_ net.Conn     = (*guardConn)(nil)
)
