package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/idle"
	"github.com/healproxy/healproxy/internal/sse"
)

// watchBody waits, inside the attempt, for the first byte of the body of
// an answer that is about to count as a success. An upstream that sends
// its headers and then hangs or hangs up has failed the attempt: nothing
// has reached the client yet, so it gets a 502/504 (or a retry on another
// upstream) instead of a dropped connection, and the upstream's health
// records the failure instead of a success. It returns the error that
// broke the body before its first byte (r.Body is then closed), or nil
// with r.Body wrapped so that a break later on (a reset, a truncation, the
// attempt's timeout), which can only reach the client as a cut connection,
// is still recorded as a failure of u. client is the client's request
// context, attempt the attempt's (for Provider.classify).
func (u *Upstream) watchBody(r *http.Response, client, attempt context.Context, start time.Time) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	w := &watchedBody{ReadCloser: r.Body, u: u, client: client, attempt: attempt, start: start}
	for range 8 { // a Read may return 0, nil; never spin on it
		n, err := r.Body.Read(w.first[:])
		if n > 0 {
			w.has = true
			break
		}
		if err == io.EOF {
			break // an empty body
		}
		if err != nil {
			r.Body.Close()
			return err
		}
	}
	r.Body = w
	return nil
}

// watchedBody is an answer's body with its first byte read ahead; a read
// error other than EOF records a failure of u once, unless the client has
// gone (then nobody reads the answer and it counts for nothing). It is
// read by one goroutine at a time, as http.Response bodies are.
type watchedBody struct {
	io.ReadCloser
	first   [1]byte
	has     bool      // first holds the next byte
	u       *Upstream // nil once a failure was recorded
	client  context.Context
	attempt context.Context
	start   time.Time
	at      *attemptTimer // non-nil: bounds each read by the idle timeout (boundBody)
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.has {
		if len(p) == 0 {
			return 0, nil
		}
		p[0], b.has = b.first[0], false
		return 1, nil
	}
	if b.at != nil {
		b.at.reading()
	}
	n, err := b.ReadCloser.Read(p)
	if b.at != nil {
		b.at.read()
	}
	if err != nil && err != io.EOF && b.u != nil {
		u := b.u
		b.u = nil
		if b.client.Err() == nil {
			kind, msg := u.provider.bodyFailure(err, b.attempt)
			u.Health.Fail(&breaker.Failure{Kind: kind, Latency: time.Since(b.start), Message: msg})
		}
	}
	return n, err
}

// boundBody gives the body of r, which has started (watchBody), the
// bounds of a streamed answer: no read may wait longer than idle_timeout
// for data, and, with max_duration, the whole answer ends by then
// (counted from start, the attempt's). A healthy stream that keeps
// flowing is never cut, however long it runs. An event stream
// (text/event-stream) that breaks gets an SSE error event before its end
// (sse.Marker), so that the client sees the answer is incomplete.
func (p *Provider) boundBody(r *http.Response, start time.Time, at *attemptTimer) {
	if at != nil {
		at.started()
	}
	w, ok := r.Body.(*watchedBody)
	if !ok {
		return
	}
	var maxAt time.Time
	if p.maxDuration > 0 {
		maxAt = start.Add(p.maxDuration)
	}
	switch {
	case h1.Bound(w.ReadCloser, p.idleTimeout, maxAt): // the lean client's read deadlines
	case at != nil && p.maxDuration == 0:
		w.at = at // the attempt's timer, re-armed around each read
	case p.idleTimeout > 0 || p.maxDuration > 0:
		var left time.Duration // idle.New: 0 is no bound
		if !maxAt.IsZero() {
			left = max(time.Until(maxAt), time.Nanosecond)
		}
		w.ReadCloser = idle.New(w.ReadCloser, p.idleTimeout, left)
	}
	if eventStream(r.Header.Get("Content-Type")) {
		r.Body = sse.NewMarker(r.Body, func(err error) (string, string) {
			kind, msg := p.bodyFailure(err, w.attempt)
			return string(kind), msg
		})
	}
}

// bodyFailure names the failure of an answer's body after its first byte:
// a stall (no data within idle_timeout), an answer over max_duration (a
// timeout), or a break (cut), with a message free of secrets.
func (p *Provider) bodyFailure(err error, attempt context.Context) (breaker.Kind, string) {
	switch {
	case errors.Is(err, idle.ErrStalled), attempt != nil && errors.Is(context.Cause(attempt), idle.ErrStalled):
		return breaker.KindStalled, "answer stalled: no data within idle_timeout (" + p.idleTimeout.String() + ")"
	case errors.Is(err, idle.ErrMaxDuration):
		return breaker.KindTimeout, "answer longer than max_duration (" + p.maxDuration.String() + ")"
	}
	kind, msg := p.classify(err, attempt)
	if kind == breaker.KindTimeout {
		return kind, "answer cut short after its headers: " + msg
	}
	return breaker.KindCut, "answer cut short after its headers: " + msg
}

// eventStream: the media type ct names is text/event-stream (without
// mime.ParseMediaType's allocations, on every answer's path).
func eventStream(ct string) bool {
	const es = "text/event-stream"
	if len(ct) < len(es) || !strings.EqualFold(ct[:len(es)], es) {
		return false
	}
	rest := strings.TrimLeft(ct[len(es):], " \t")
	return rest == "" || rest[0] == ';'
}
