package provider

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

// A failed attempt counts against an upstream's health only when the
// upstream caused it (docs/behaviour.md, "What counts as a failure"). Two
// other causes are told apart here, answered with their own status, and
// counted in healproxy_provider_errors_not_upstream_total instead:
//   - the client: a request body with broken framing (400), cut off
//     before its end (400), sent slower than the attempt may take (408),
//     or over max_request_body (413);
//   - the proxy itself: no file descriptor, buffer or local port left to
//     open a connection with (503, Retry-After: 1);
//   - the client leaving before its answer (499, which nobody reads).
//
// Without this, any client could shut a provider for everyone: three
// requests with a malformed chunked body would trip its breaker.

// localError is a failed provider request that the upstream did not cause.
type localError struct {
	status int    // the answer's status code
	cause  string // the metric's cause label
	msg    string // the error text of the answer; never a secret
}

func (e *localError) Error() string { return e.msg }

// Causes of localError, the metric's labels.
const (
	CauseBodyMalformed = "client_body_malformed"
	CauseBodyAborted   = "client_body_aborted"
	CauseBodySlow      = "client_body_slow"
	CauseBodyTooLarge  = "client_body_too_large"
	CauseResources     = "proxy_resources"
	CauseClientGone    = "client_gone"
)

var (
	errBodySlow = &localError{status: http.StatusRequestTimeout, cause: CauseBodySlow,
		msg: "the request body arrived too slowly: the upstream's timeout passed while the proxy was still waiting for it"}
	errBodyAborted = &localError{status: http.StatusBadRequest, cause: CauseBodyAborted,
		msg: "the request body ended before its declared end"}
	errResources = &localError{status: http.StatusServiceUnavailable, cause: CauseResources,
		msg: "the proxy is out of connections or file descriptors; retry later"}
)

// clientBody is a provider request's body as read from the client. It
// tells a failed attempt's cause: the client (a read of its body failed,
// or the attempt ran out of time while the proxy waited for the client's
// bytes) or the upstream (the attempt ran out of time while the upstream
// did not read or answer). Read runs on http.Transport's writing
// goroutine, the rest on the request's own.
type clientBody struct {
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

func (b *clientBody) Read(p []byte) (int, error) {
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

func (b *clientBody) Close() error { return b.rc.Close() }

// aLongTimeAgo is a deadline that has passed: it unblocks a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// cutPending ends a read of the client's body that is, or could soon be,
// waiting when an attempt has ended: http.Transport does not return from
// a failed request before its body writer does, and that one would wait
// for a slow client until the server's read timeout.
func (b *clientBody) cutPending() {
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

// watch cuts a pending read once ctx, an attempt's, ends while the
// client, whose request context is client, is still there (a client that
// left ends its reads itself); stop it before the attempt's answer is
// passed on.
func (b *clientBody) watch(ctx, client context.Context) (stop func() bool) {
	if b == nil || b.eof.Load() {
		return alwaysTrue
	}
	return context.AfterFunc(ctx, func() {
		if client.Err() == nil {
			b.cutPending()
		}
	})
}

// cutSlow says whether the attempt ended while a read waited for the
// client, and the read was cut for it.
func (b *clientBody) cutSlow() bool { return b != nil && b.cut.Load() == cutWaiting }

func alwaysTrue() bool { return true }

// fault is the client's part in a failed attempt: nil when the client
// body is blameless (or there is none).
func (b *clientBody) fault() error {
	if b == nil {
		return nil
	}
	switch b.cut.Load() {
	case cutWaiting:
		return errBodySlow
	case cutUpstream:
		return nil // the read failed because the attempt ended: the upstream's doing
	}
	if e := b.failed.Load(); e != nil {
		return clientBodyError(*e)
	}
	if b.waiting.Load() {
		return errBodySlow
	}
	return nil
}

type clientBodyKey struct{}

// withClientBody wraps r's body, if it has one, in a clientBody that the
// transport finds in the request's context (ReverseProxy wraps the body
// again, so the transport cannot find it there).
func withClientBody(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	cb := &clientBody{rc: r.Body, ctl: http.NewResponseController(w)}
	r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, cb))
	r.Body = cb
	return r
}

// clientBodyOf is the clientBody of req's context; nil for none.
func clientBodyOf(req *http.Request) *clientBody {
	cb, _ := req.Context().Value(clientBodyKey{}).(*clientBody)
	return cb
}

// clientBodyError is the answer to an error reading the client's body.
func clientBodyError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return errBodyTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return errBodySlow
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return errBodyAborted
	}
	// net/http's own parse errors ("malformed chunked encoding", "invalid
	// byte in chunk length"): text of our own server, free of secrets.
	return &localError{status: http.StatusBadRequest, cause: CauseBodyMalformed,
		msg: "the request body is malformed: " + err.Error()}
}

// localResource says whether err is the proxy running out of a resource
// of its own (descriptors, buffers, memory, local ports) rather than
// anything the upstream did.
func localResource(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
