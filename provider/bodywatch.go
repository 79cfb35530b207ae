package provider

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/healproxy/healproxy/breaker"
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
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.has {
		if len(p) == 0 {
			return 0, nil
		}
		p[0], b.has = b.first[0], false
		return 1, nil
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.u != nil {
		u := b.u
		b.u = nil
		if b.client.Err() == nil {
			kind, msg := u.provider.classify(err, b.attempt)
			u.Health.Fail(&breaker.Failure{Kind: kind, Latency: time.Since(b.start),
				Message: "answer cut short after its headers: " + msg})
		}
	}
	return n, err
}
