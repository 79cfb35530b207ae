package sse

import (
	"bytes"
	"io"
)

// maxHeld bounds the bytes of an unfinished event a Marker holds back;
// beyond it they are passed on as they are.
const maxHeld = DefaultMaxEvent

// Marker wraps the body of an event stream that is being proxied as
// bytes (httputil.ReverseProxy copies it): it passes on whole events only,
// and when a read fails (other than io.EOF) it drops the unfinished event
// and returns an error event saying why, then the error. The proxy's copy
// then fails on that error and ends the response without its last chunk
// (net/http's ErrAbortHandler), so the client sees an answer marked
// incomplete, never a clean end. At io.EOF whatever is held is passed on.
type Marker struct {
	rc       io.ReadCloser
	describe func(error) (code, message string)
	buf      []byte
	ready    int    // buf[:ready] are whole events, to pass on
	tail     []byte // the error event, once the body broke
	err      error
	chunk    []byte
}

// NewMarker wraps rc; describe names a read error for the error event
// ({"error": {"message", "type": "upstream_error", "code"}}); its message
// must be free of secrets.
func NewMarker(rc io.ReadCloser, describe func(error) (code, message string)) *Marker {
	return &Marker{rc: rc, describe: describe, chunk: make([]byte, 32<<10)}
}

// Read passes on whole events, then the error event of a break.
func (m *Marker) Read(p []byte) (int, error) {
	for {
		if m.ready > 0 {
			n := copy(p, m.buf[:m.ready])
			m.buf = m.buf[n:]
			m.ready -= n
			return n, nil
		}
		if len(m.tail) > 0 {
			n := copy(p, m.tail)
			m.tail = m.tail[n:]
			return n, nil
		}
		if m.err != nil {
			return 0, m.err
		}
		n, err := m.rc.Read(m.chunk)
		m.buf = append(m.buf, m.chunk[:n]...)
		if i := lastBoundary(m.buf); i > 0 {
			m.ready = i
		}
		if len(m.buf)-m.ready > maxHeld {
			m.ready = len(m.buf)
		}
		switch {
		case err == io.EOF:
			m.ready, m.err = len(m.buf), io.EOF
		case err != nil:
			m.buf = m.buf[:m.ready] // the unfinished event is dropped
			code, msg := m.describe(err)
			var eb bytes.Buffer
			WriteError(&eb, "upstream_error", code, msg)
			m.tail, m.err = eb.Bytes(), err
		}
	}
}

// lastBoundary is the length of the whole events at the start of b: just
// past its last blank line, 0 when there is none.
func lastBoundary(b []byte) int {
	i := bytes.LastIndex(b, []byte("\n\n"))
	j := bytes.LastIndex(b, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return 0
	case i > j:
		return i + 2
	}
	return j + 3
}

// Close closes the underlying body.
func (m *Marker) Close() error { return m.rc.Close() }

// Interface guards.
var _ io.ReadCloser = (*Marker)(nil)
