// Package clientbody tells whose fault a failed provider request is when
// the upstream did not cause it (docs/behaviour.md, "What counts as a
// failure"): such a failure is answered with its own status, and counted
// in healproxy_provider_errors_not_upstream_total rather than against the
// upstream's health:
//   - the client: a request body with broken framing (400), cut off
//     before its end (400), sent slower than the attempt may take (408),
//     or over max_request_body (413);
//   - the proxy itself: no file descriptor, buffer or local port left to
//     open a connection with (503, Retry-After: 1);
//   - the client leaving before its answer (499, which nobody reads).
//
// Without this, any client could shut a provider for everyone: three
// requests with a malformed chunked body would trip its breaker.
//
// Wrap puts a Body around a request's body; the transport finds it with
// Of, bounds its reads by an attempt's (Body.Watch) and asks it, when an
// attempt failed, for the client's part (Body.Fault).
package clientbody

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// Error is a failed provider request that the upstream did not cause.
type Error struct {
	Status int    // the answer's status code
	Cause  string // the metric's cause label
	Msg    string // the error text of the answer; never a secret
}

func (e *Error) Error() string { return e.Msg }

// Causes of Error, the metric's labels.
const (
	CauseMalformed  = "client_body_malformed"
	CauseAborted    = "client_body_aborted"
	CauseSlow       = "client_body_slow"
	CauseTooLarge   = "client_body_too_large"
	CauseResources  = "proxy_resources"
	CauseClientGone = "client_gone"
)

// The answers of Error's kinds that are always the same.
var (
	// ErrSlow: the attempt's time ran out while the proxy waited for the
	// client's body.
	ErrSlow = &Error{Status: http.StatusRequestTimeout, Cause: CauseSlow,
		Msg: "the request body arrived too slowly: the upstream's timeout passed while the proxy was still waiting for it"}
	// ErrAborted: the client's body ended before its declared end.
	ErrAborted = &Error{Status: http.StatusBadRequest, Cause: CauseAborted,
		Msg: "the request body ended before its declared end"}
	// ErrResources: the proxy is out of descriptors, buffers or ports.
	ErrResources = &Error{Status: http.StatusServiceUnavailable, Cause: CauseResources,
		Msg: "the proxy is out of connections or file descriptors; retry later"}
)

// ErrTooLarge: the client's body ran over max_request_body
// (http.MaxBytesReader) while it was read; the client's fault, not the
// upstream's. The provider answers it 413 with its own limit.
var ErrTooLarge = errors.New("request body too large")

// Body is a provider request's body as read from the client. It
// tells a failed attempt's cause: the client (a read of its body failed,
// or the attempt ran out of time while the proxy waited for the client's
// bytes) or the upstream (the attempt ran out of time while the upstream
// did not read or answer). Read runs on http.Transport's writing
// goroutine, the rest on the request's own.
type Body struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController // the client's connection, to cut a pending read
	waiting atomic.Bool              // a Read is waiting for the client
	eof     atomic.Bool              // the body was read to its end
	cut     atomic.Int32             // cutNone, or why cutPending cut the read
	failed  atomic.Pointer[error]    // the first read error but EOF
}

const (
	cutNone     = iota
	cutWaiting  // the attempt ended while a read waited for the client
	cutUpstream // the attempt ended while the upstream held things up
)

// Read reads the client's body, noting whether it waits for the client,
// reached the end or failed.
func (b *Body) Read(p []byte) (int, error) {
	b.waiting.Store(true)
	n, err := b.rc.Read(p)
	b.waiting.Store(false)
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil && b.failed.Load() == nil:
		b.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close closes the client's body.
func (b *Body) Close() error { return b.rc.Close() }

// aLongTimeAgo is a deadline that has passed: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// cutPending ends a read of the client's body that is, or could soon be,
// waiting when an attempt has ended: http.Transport does not return from
// a failed request before its body writer does, and that one would wait
// for a slow client until the server's read timeout.
func (b *Body) cutPending() {
	if b.eof.Load() {
		return
	}
	why := int32(cutUpstream)
	if b.waiting.Load() {
		why = cutWaiting
	}
	if b.cut.CompareAndSwap(cutNone, why) {
		_ = b.ctl.SetReadDeadline(aLongTimeAgo)
	}
}

// Watch cuts a pending read once ctx, an attempt's, ends while the
// client, whose request context is client, is still there (a client that
// left ends its reads itself); stop it before the attempt's answer is
// passed on. A nil b (no body) has nothing to watch; all of Body's
// methods but Read and Close accept a nil b.
func (b *Body) Watch(ctx, client context.Context) (stop func() bool) {
	if b == nil || b.eof.Load() {
		return alwaysTrue
	}
	return context.AfterFunc(ctx, func() {
		if client.Err() == nil {
			b.cutPending()
		}
	})
}

// CutSlow says whether the attempt ended while a read waited for the
// client, and the read was cut for it.
func (b *Body) CutSlow() bool { return b != nil && b.cut.Load() == cutWaiting }

func alwaysTrue() bool { return true }

// Fault is the client's part in a failed attempt: nil when the client
// body is blameless (or there is none).
func (b *Body) Fault() error {
	if b == nil {
		return nil
	}
	switch b.cut.Load() {
	case cutWaiting:
		return ErrSlow
	case cutUpstream:
		return nil // the read failed because the attempt ended: the upstream's doing
	}
	if e := b.failed.Load(); e != nil {
		return ReadError(*e)
	}
	if b.waiting.Load() {
		return ErrSlow
	}
	return nil
}

type bodyKey struct{}

// Wrap wraps r's body, if it has one, in a Body that the
// transport finds in the request's context (ReverseProxy wraps the body
// again, so the transport cannot find it there).
func Wrap(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	cb := &Body{rc: r.Body, ctl: http.NewResponseController(w)}
	r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, cb))
	r.Body = cb
	return r
}

// Of is the Body of req's context; nil for none.
func Of(req *http.Request) *Body {
	cb, _ := req.Context().Value(bodyKey{}).(*Body)
	return cb
}

// ReadError is the answer to an error reading the client's body.
func ReadError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return ErrTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return ErrSlow
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return ErrAborted
	}
	// net/http's own parse errors ("malformed chunked encoding", "invalid
	// byte in chunk length"): text of our own server, free of secrets.
	return &Error{Status: http.StatusBadRequest, Cause: CauseMalformed,
		Msg: "the request body is malformed: " + err.Error()}
}

// LocalResource says whether err is the proxy running out of a resource
// of its own (descriptors, buffers, memory, local ports) rather than
// anything the upstream did.
func LocalResource(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
