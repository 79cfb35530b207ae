package proxy

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/breaker"
)

// providerTransport is where a provider request meets its upstreams: it
// picks an available upstream (healthy first), lets the upstream's breaker
// admit the attempt, sends it, classifies the result once, and on a
// retryable failure tries the next upstream. ReverseProxy around it does
// the HTTP hygiene (hop-by-hop headers, X-Forwarded-For, body copying).
type providerTransport struct {
	p    *Provider
	base http.RoundTripper
}

// upstreamError is a failed attempt as the client's error answer needs it.
type upstreamError struct {
	kind breaker.Kind
	msg  string
}

func (e *upstreamError) Error() string { return e.msg }

// cooldownError: no upstream would admit the request.
type cooldownError struct{ remaining time.Duration }

func (e *cooldownError) Error() string { return "every upstream is unavailable" }

// errClientGone: the client cancelled; nobody reads the answer.
var errClientGone = errors.New("client went away")

func (t *providerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.p
	retryable := idempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody)
	var tried uint64 // bit i: upstream i was tried (providers have at most 64 upstreams)
	start := p.rr.Add(1)
	var lastErr error
	for {
		i, more := p.pick(start, tried, retryable)
		if i < 0 {
			break
		}
		tried |= 1 << i
		u := p.Upstreams[i]
		resp, err, refused := t.attempt(u, req, retryable && more)
		if refused {
			continue
		}
		if err == nil {
			return resp, nil
		}
		if err == errClientGone {
			return nil, err
		}
		lastErr = err
		if !retryable || req.Context().Err() != nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, &cooldownError{remaining: p.cooldownRemaining()}
}

// pick returns the index of the next upstream to try, preferring healthy
// (or never called) ones, then degraded ones, never unavailable or already
// tried ones; -1 when none is left. more says whether another candidate
// would remain after this one. For a retryable request a degraded upstream
// is given one pick in degradedShare while healthy ones exist, so that it
// can prove itself (its failure is then hidden by a retry).
func (p *Provider) pick(start uint32, tried uint64, retryable bool) (int, bool) {
	n := len(p.Upstreams)
	if n == 1 {
		if tried != 0 || !p.Upstreams[0].Available() {
			return -1, false
		}
		return 0, false
	}
	best, bestRank, candidates := -1, 3, 0
	for k := range n {
		i := int((start + uint32(k)) % uint32(n))
		if tried&(1<<i) != 0 {
			continue
		}
		u := p.Upstreams[i]
		if u.drain.Load() != nil && u.drained(time.Now()) != nil {
			continue
		}
		var rank int
		switch u.Health.Status() {
		case breaker.Healthy, breaker.Unknown:
			rank = 0
		case breaker.Degraded:
			rank = 1
			if retryable && start%degradedShare == 0 {
				rank = -1
			}
		default:
			continue
		}
		candidates++
		if rank < bestRank {
			best, bestRank = i, rank
		}
	}
	return best, candidates > 1
}

const degradedShare = 16

// attempt sends req to u through u's breaker. refused says the breaker did
// not admit it (nothing was sent). With retryLater, a failure status is
// not passed to the client but turned into an error, so the caller tries
// the next upstream.
func (t *providerTransport) attempt(u *Upstream, req *http.Request, retryLater bool) (resp *http.Response, err error, refused bool) {
	p := t.p
	callErr := u.Health.Call(func() (time.Duration, error) {
		ctx, cancel := req.Context(), context.CancelFunc(noop)
		stopTimer := func() bool { return false }
		if req.Header.Get("Upgrade") == "" {
			ctx, cancel = context.WithTimeout(ctx, p.timeout)
		} else { // the timeout bounds the wait for the answer; an upgraded connection outlives it
			var cancelCause context.CancelCauseFunc
			ctx, cancelCause = context.WithCancelCause(ctx)
			cancel = func() { cancelCause(context.Canceled) }
			stopTimer = time.AfterFunc(p.timeout, func() { cancelCause(context.DeadlineExceeded) }).Stop
		}
		out := req.WithContext(ctx) // a shallow copy: ReverseProxy's own clone stays intact for a retry
		out.URL = u.targetURL(req.URL)
		start := time.Now()
		r, rtErr := t.base.RoundTrip(out)
		stopTimer()
		latency := time.Since(start)
		if rtErr != nil {
			cancel()
			if req.Context().Err() != nil {
				err = errClientGone
				u.metrics.observe("canceled", latency)
				return latency, breaker.Excluded()
			}
			kind, msg := classifyError(rtErr, out.Context())
			u.metrics.observe(string(kind), latency)
			err = &upstreamError{kind: kind, msg: msg}
			return latency, &breaker.Failure{Kind: kind, Latency: latency, Message: msg}
		}
		u.metrics.observeCode(r.StatusCode, latency)
		if !failureStatus(r.StatusCode) {
			if r.StatusCode == http.StatusSwitchingProtocols {
				cancel() // the upgraded connection is the caller's now; ReverseProxy needs its body as is
			} else {
				r.Body = &cancelBody{ReadCloser: r.Body, cancel: cancel}
			}
			resp = r
			return latency, nil
		}
		f := &breaker.Failure{Kind: breaker.KindStatus, StatusCode: r.StatusCode, Latency: latency,
			Message: "upstream answered " + strconv.Itoa(r.StatusCode) + " " + http.StatusText(r.StatusCode)}
		if retryLater {
			drainBody(r.Body)
			cancel()
			err = &upstreamError{kind: breaker.KindStatus, msg: f.Message}
		} else {
			r.Body = &cancelBody{ReadCloser: r.Body, cancel: cancel}
			resp = r // the last upstream's failure answer passes through
		}
		return latency, f
	})
	switch callErr {
	case breaker.ErrCooldown, breaker.ErrTrialsBusy, breaker.ErrHeld:
		return nil, nil, true
	}
	return resp, err, false
}

// failureStatus: CONTRACT section 3 counts 5xx and 429 as failures; any
// other answer means the upstream works.
func failureStatus(code int) bool { return code >= 500 || code == http.StatusTooManyRequests }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// classifyError names a transport error's kind and gives a message free of
// URLs (whose query strings may hold secrets).
func classifyError(err error, ctx context.Context) (breaker.Kind, string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() == context.DeadlineExceeded || context.Cause(ctx) == context.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return breaker.KindTimeout, "upstream timed out"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return breaker.KindTimeout, "upstream timed out: " + err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return breaker.KindConnect, "cannot connect to upstream: " + oe.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return breaker.KindConnect, "cannot resolve upstream host: " + de.Err
	}
	return breaker.KindError, "upstream request failed: " + err.Error()
}

// cooldownRemaining is how long until the first upstream admits requests
// again; a second when one is half-open with all its trials busy.
// A drained upstream counts until its drain ends; an indefinite drain or
// forced open counts as maxRetryAfter.
func (p *Provider) cooldownRemaining() time.Duration {
	best := time.Duration(math.MaxInt64)
	now := time.Now()
	for _, u := range p.Upstreams {
		var wait time.Duration
		if until, ok := u.Health.CooldownUntil(); ok {
			wait = until.Sub(now)
		} else if u.drained(now) == nil {
			return time.Second // half-open with all trials busy
		}
		if d := u.drained(now); d != nil {
			if d.Until.IsZero() {
				wait = max(wait, maxRetryAfter)
			} else {
				wait = max(wait, d.Until.Sub(now))
			}
		}
		best = min(best, wait)
	}
	return min(max(best, time.Millisecond), maxRetryAfter)
}

// maxRetryAfter caps Retry-After for waits with no known end.
const maxRetryAfter = time.Hour

// available: some upstream would be sent a request now.
func (p *Provider) available() bool {
	for _, u := range p.Upstreams {
		if u.Available() {
			return true
		}
	}
	return false
}

// cancelBody ends the attempt's timeout context when ReverseProxy is done
// with the body.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// drainBody reads a little of a discarded body so the connection can be reused.
func drainBody(body io.ReadCloser) {
	io.CopyN(io.Discard, body, 4<<10)
	body.Close()
}

func noop() {}
