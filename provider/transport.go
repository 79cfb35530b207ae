package provider

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/clientbody"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/idle"
	"github.com/healproxy/healproxy/internal/retry"
	"github.com/healproxy/healproxy/internal/tracing"
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
	kind  breaker.Kind
	msg   string
	retry bool // the retry policy retries this failure
	paid  bool // the retry was already taken from the budget (a failure answer given up for it)
}

func (e *upstreamError) Error() string { return e.msg }

// cooldownError: no upstream would admit the request.
type cooldownError struct{ remaining time.Duration }

func (e *cooldownError) Error() string { return "every upstream is unavailable" }

// errClientGone: the client cancelled; nobody reads the answer.
var errClientGone = errors.New("client went away")

func (t *providerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.p
	rp := p.retry
	rp.Budget().Request()
	var cb *clientbody.Body // the client's body, if any (internal/clientbody)
	if req.Body != nil && req.Body != http.NoBody {
		cb = clientbody.Of(req)
	}
	maxAttempts := 1
	var body []byte
	hedge := false // hedge.go
	if (rp.Attempts() > 1 || p.hedge != nil) && rp.Method(req.Method) {
		b, ok, err := retry.ReplayableBody(req)
		if err != nil { // the client's body broke while it was read: never sent
			if req.Context().Err() != nil {
				return nil, errClientGone
			}
			return nil, clientbody.ReadError(err)
		}
		if ok {
			body, maxAttempts = b, rp.Attempts()
			hedge = p.hedge != nil && p.hedge.admit(req)
		}
	}
	retryable := maxAttempts > 1
	var tried uint64 // bit i: upstream i was tried in this round (providers have at most 64 upstreams)
	start := p.rr.Add(1)
	var lastErr error
	var lastResp *http.Response // a failure answer kept to pass through
	attempts, paid := 0, false
	for attempts < maxAttempts {
		i, more := p.pick(start, tried, retryable)
		if i < 0 && tried != 0 && attempts < maxAttempts && attempts > 0 {
			// every upstream had its try: a new round, the same ones again
			tried = 0
			i, more = p.pick(start+uint32(attempts), tried, retryable)
			more = more || i >= 0
		}
		if i < 0 {
			break
		}
		if attempts > 0 { // a retry: within the budget, after a backoff
			if !paid && !rp.Budget().Take() {
				p.m.retryBudgetExhausted.WithLabelValues(p.ID).Inc()
				p.tracer.BudgetExhausted(req.Context())
				break
			}
			p.tracer.Retry(req.Context(), attempts+1, 0, "failure")
			if !rp.Wait(req.Context(), attempts) {
				return nil, errClientGone
			}
		}
		tried |= 1 << i
		u := p.Upstreams[i]
		if body != nil {
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		retryLater := retryable && attempts+1 < maxAttempts && (more || maxAttempts > len(p.Upstreams))
		var resp *http.Response
		var err error
		var refused bool
		if hedge {
			var h int
			resp, h, err, refused = t.hedged(i, req, cb, body, retryLater, attempts+1, start, tried)
			if h >= 0 {
				tried |= 1 << h
			}
		} else {
			resp, err, refused = t.attempt(u, req, cb, retryLater, attempts+1)
		}
		if refused {
			continue
		}
		attempts++
		if notUpstream(err) {
			return nil, err
		}
		if err == nil {
			if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
				if lastResp != nil {
					lastResp.Body.Close()
				}
				if p.cache != nil {
					if key := p.cache.Key(req); key != "" {
						p.cache.Capture(key, resp)
					}
				}
				return resp, nil
			}
			// the last upstream's failure answer: passed through unless the
			// all-down policy finds better
			lastResp, lastErr = resp, nil
			break
		}
		lastErr = err
		var ue *upstreamError
		paid = errors.As(err, &ue) && ue.paid
		if !retryable || req.Context().Err() != nil || !errors.As(err, &ue) || !ue.retry {
			break
		}
	}
	// A request sent before can be sent again only when the retry policy
	// retries it (its method, a body kept for replay); one never sent
	// still has its body. The try after the all-down wait is a retry like
	// any other, within the policy's attempts; the last resort is the
	// fallback after them.
	resend := attempts == 0 || retryable
	return t.allDown(req, body, cb, allDownSends{lastResort: resend, wait: resend && attempts < maxAttempts}, lastResp, lastErr)
}

// allDownSends says which all-down steps may send the request again.
type allDownSends struct{ lastResort, wait bool }

// notUpstream: an attempt's error that ends the request at once, not
// being the upstream's to retry or fail over from.
func notUpstream(err error) bool {
	if err == errClientGone || err == clientbody.ErrTooLarge {
		return true
	}
	_, ok := err.(*clientbody.Error)
	return ok
}

// allDown answers when no upstream gave a good answer (docs/behaviour.md,
// and the provider's all_down policy): the steps of its order in turn —
// a stale copy from the cache, the last-resort upstream, a short wait for
// the earliest end of a cooldown — and at last the failure: the last
// upstream's own failure answer, its error, or 503 with Retry-After.
// sends says which steps may send the request once more (see RoundTrip):
// a request whose body was streamed to an upstream has none left to send.
func (t *providerTransport) allDown(req *http.Request, body []byte, cb *clientbody.Body, sends allDownSends, lastResp *http.Response, lastErr error) (*http.Response, error) {
	p := t.p
	if req.Context().Err() != nil {
		if lastResp != nil {
			lastResp.Body.Close()
		}
		return nil, errClientGone
	}
	for _, step := range p.allDownOrder {
		switch step {
		case "stale":
			if p.cache == nil {
				continue
			}
			if key := p.cache.Key(req); key != "" {
				if resp, ok := p.cache.Stale(key, req, time.Now()); ok {
					if lastResp != nil {
						lastResp.Body.Close()
					}
					p.m.allDown.WithLabelValues(p.ID, "stale").Inc()
					p.tracer.AllDown(req.Context(), "stale")
					return resp, nil
				}
			}
		case "last_resort":
			if p.lastResort == nil || !sends.lastResort {
				continue
			}
			if body != nil {
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			resp, err, refused := t.attempt(p.lastResort, req, cb, false, 0)
			if notUpstream(err) {
				if lastResp != nil {
					lastResp.Body.Close()
				}
				return nil, err
			}
			if !refused && err == nil && !failureStatus(resp.StatusCode) {
				if lastResp != nil {
					lastResp.Body.Close()
				}
				p.m.allDown.WithLabelValues(p.ID, "last_resort").Inc()
				p.tracer.AllDown(req.Context(), "last_resort")
				return resp, nil
			}
			if resp != nil {
				resp.Body.Close()
			}
		case "wait":
			if p.allDownWait <= 0 || lastResp != nil || !sends.wait {
				continue // a failure answer is an answer: no wait
			}
			wait, ok := p.nextRecovery()
			if !ok || wait > p.allDownWait {
				continue // nothing cools down (an upstream failed but is not out), or not soon enough
			}
			timer := time.NewTimer(wait + time.Millisecond)
			select {
			case <-timer.C:
			case <-req.Context().Done():
				timer.Stop()
				return nil, errClientGone
			}
			i, _ := p.pick(p.rr.Add(1), 0, false)
			if i >= 0 {
				if body != nil {
					req.Body = io.NopCloser(bytes.NewReader(body))
				}
				resp, err, refused := t.attempt(p.Upstreams[i], req, cb, false, 0)
				if !refused {
					p.m.allDown.WithLabelValues(p.ID, "wait").Inc()
					p.tracer.AllDown(req.Context(), "wait")
					return resp, err
				}
			}
		}
	}
	p.m.allDown.WithLabelValues(p.ID, "fail").Inc()
	p.tracer.AllDown(req.Context(), "fail")
	if lastResp != nil {
		return lastResp, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, &cooldownError{remaining: p.CooldownRemaining()}
}

// pick returns the index of the next upstream to try, preferring healthy
// (or never called) ones, then degraded ones, never unavailable or already
// tried ones; -1 when none is left. more says whether another candidate
// would remain after this one. For a retryable request a degraded upstream
// is given one pick in degradedShare while healthy ones exist, so that it
// can prove itself (its failure is then hidden by a retry). A healthy
// upstream whose quota runs low ranks as degraded (quota.go). Among the
// upstreams of the best rank the provider's balancer chooses (balance.go),
// or round robin does: the (start mod their number)-th of them, so that an
// upstream left out gives its turns to all of its peers alike.
func (p *Provider) pick(start uint32, tried uint64, retryable bool) (int, bool) {
	n := len(p.Upstreams)
	if n == 1 {
		if tried != 0 || (!p.observe && !p.Upstreams[0].Available()) {
			return -1, false
		}
		return 0, false
	}
	best, bestRank, candidates := -1, 3, 0
	steer, bal := p.quotaClock != nil, p.balancer != nil
	var set uint64 // the upstreams of the best rank
	for i := range n {
		if tried&(1<<i) != 0 {
			continue
		}
		u := p.Upstreams[i]
		if u.drain.Load() != nil && u.Drained(time.Now()) != nil {
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
			if !p.observe { // shadow mode never blocks: unavailable ones come last
				continue
			}
			rank = 2
		}
		if steer && rank == 0 && p.steered(u) {
			rank = 1 // its quota runs low: after healthy peers (quota.go)
		}
		candidates++
		if rank < bestRank {
			best, bestRank, set = i, rank, 0
		}
		if rank == bestRank {
			set |= 1 << i
		}
	}
	if set&(set-1) != 0 { // two or more of the best rank
		if bal { // least_latency or weights
			return p.balancer.choose(set), true
		}
		for k := start % uint32(bits.OnesCount64(set)); k > 0; k-- {
			set &= set - 1
		}
		best = bits.TrailingZeros64(set)
	}
	return best, candidates > 1
}

const degradedShare = 16

// attempt sends req to u through u's breaker. refused says the breaker did
// not admit it (nothing was sent). With retryLater, a failure status is
// not passed to the client but turned into an error, so the caller tries
// the next upstream.
func (t *providerTransport) attempt(u *Upstream, req *http.Request, cb *clientbody.Body, retryLater bool, n int) (resp *http.Response, err error, refused bool) {
	p := t.p
	if p.tracer.Enabled() { // one span per attempt; nothing at all when tracing is off
		actx, span := p.tracer.StartAttempt(req.Context(), tracing.Attempt{Provider: p.ID, Upstream: u.Display, Number: n,
			Breaker: u.Health.Status().String(), Method: req.Method})
		p.tracer.Inject(actx, req.Header) // the upstream continues this trace
		defer func() { span.EndAttempt(attemptResult(resp, err, refused, u)) }()
	}
	callErr := u.Health.Call(u.observed(func() (time.Duration, error) { // observed: outlier detection (outlier.go)
		if u.ewma != nil {
			u.ewma.Begin() // least_latency: in flight until observeLatency
		}
		start := time.Now()
		r, at, ctx, rtErr := t.send(u, req, cb)
		if rtErr == nil && !failureStatus(r.StatusCode) {
			rtErr = u.watchBody(r, req.Context(), ctx, start) // headers, then a body that never starts: a failed attempt
			if rtErr == nil {
				p.boundBody(r, start, at) // the answer has started: from now on its body's bounds apply
			}
		}
		latency := time.Since(start)
		if u.ewma != nil {
			t.observeLatency(u, req, cb, rtErr, latency)
		}
		cancel := at.end // nil-safe: the lean client has no context to end
		if rtErr != nil {
			cancel()
			// Not the upstream's doing: the client's body or its leaving,
			// or the proxy's own resources (internal/clientbody). A body cut
			// for slowness comes first: cutting its read cancels the
			// request's context too.
			if cerr := cb.Fault(); cerr != nil && (cb.CutSlow() || req.Context().Err() == nil) {
				err = cerr
				u.metrics.observe("canceled", latency)
				return latency, breaker.Excluded()
			}
			if req.Context().Err() != nil {
				err = errClientGone
				u.metrics.observe("canceled", latency)
				return latency, breaker.Excluded()
			}
			if mbe := (*http.MaxBytesError)(nil); errors.As(rtErr, &mbe) {
				err = clientbody.ErrTooLarge
				u.metrics.observe("canceled", latency)
				return latency, breaker.Excluded()
			}
			if clientbody.LocalResource(rtErr) {
				err = clientbody.ErrResources
				return latency, breaker.Excluded()
			}
			kind, msg := p.classify(rtErr, ctx)
			u.metrics.observe(string(kind), latency)
			err = &upstreamError{kind: kind, msg: msg, retry: p.retry.Kind(kind)}
			return latency, &breaker.Failure{Kind: kind, Latency: latency, Message: msg}
		}
		u.metrics.observeCode(r.StatusCode, latency)
		if u.quota != nil && r.StatusCode != http.StatusTooManyRequests {
			p.observeQuota(u, r.Header)
		}
		keep := func() { // the answer goes to the client
			if r.StatusCode == http.StatusSwitchingProtocols {
				cancel() // the upgraded connection is the caller's now; ReverseProxy needs its body as is
			} else if at != nil {
				r.Body = &cancelBody{ReadCloser: r.Body, at: at}
			}
			resp = r
		}
		// Rate limited is not unhealthy: a 429 or 503 that says when to come
		// back pauses the upstream until then, and counts for nothing.
		if r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusServiceUnavailable {
			if d, why, ok := retry.RateLimitPause(r.Header, time.Now()); ok {
				u.Health.Pause(time.Now().Add(min(d, p.maxPause)), strconv.Itoa(r.StatusCode)+" with "+why)
				// The answer is given up for a retry only when another
				// upstream can take it: with this one paused and no other
				// left, the client gets the upstream's own answer, its
				// Retry-After included.
				if retryLater && p.availableBesides(u) && t.spendRetry() {
					drainBody(r.Body)
					cancel()
					err = &upstreamError{kind: breaker.KindStatus, retry: true, paid: true,
						msg: "upstream rate limited the request (" + why + ")"}
				} else {
					keep()
				}
				return latency, breaker.Excluded()
			}
		}
		if !failureStatus(r.StatusCode) {
			keep()
			if p.slowCall > 0 && latency > p.slowCall {
				return latency, &breaker.Failure{Kind: kindSlow, StatusCode: r.StatusCode, Latency: latency,
					Message: "slow call: answered in " + latency.Round(time.Millisecond).String() + ", over slow_call_threshold " + p.slowCall.String()}
			}
			return latency, nil
		}
		f := &breaker.Failure{Kind: breaker.KindStatus, StatusCode: r.StatusCode, Latency: latency,
			Message: "upstream answered " + strconv.Itoa(r.StatusCode) + " " + http.StatusText(r.StatusCode)}
		if retryLater && p.retry.Status(r.StatusCode) && t.spendRetry() {
			drainBody(r.Body)
			cancel()
			err = &upstreamError{kind: breaker.KindStatus, msg: f.Message, retry: true, paid: true}
		} else {
			keep() // the failure answer passes through
		}
		return latency, f
	}))
	switch callErr {
	case breaker.ErrCooldown, breaker.ErrTrialsBusy, breaker.ErrHeld, breaker.ErrPaused:
		return nil, nil, true
	}
	return resp, err, false
}

// send sends one attempt to u: a GET or HEAD without a body to a plain-HTTP
// upstream through the lean client (internal/h1), anything else through
// the base transport with a context bounding it by the provider's timeout.
// cancel ends that context once the answer is read or dropped (nil for the
// lean client, which has none); ctx is the attempt's context, for classifyError.
//
// The timeout bounds the attempt until its answer starts: the response
// headers and the first byte of a body (watchBody). stop ends that bound;
// the caller calls it once the first byte came, and the body's own bounds
// (idle_timeout, max_duration: boundBody) take over. Until then a failure
// answer passed to the client as it is stays within the timeout, body
// included.
func (t *providerTransport) send(u *Upstream, req *http.Request, cb *clientbody.Body) (r *http.Response, at *attemptTimer, ctx context.Context, err error) {
	p := t.p
	if u.fast != nil && u.fault.Load() == nil && h1.Eligible(req) {
		r, err = u.fast.RoundTrip(req, u.h1Target(req.URL), p.timeout)
		if err == nil && (r.Header["Location"] != nil || r.Header["Content-Location"] != nil || r.Header["Link"] != nil) {
			// modifyResponse resolves them against the URL as sent
			out := req.WithContext(req.Context())
			out.URL = u.targetURL(req.URL)
			r.Request = out
		}
		return r, nil, req.Context(), err // the connection's deadline is the timeout (h1.Bound ends it)
	}
	at = &attemptTimer{idle: p.idleTimeout}
	ctx, at.cancel = context.WithCancelCause(req.Context())
	at.timer = time.AfterFunc(p.timeout, at.fire)
	out := req.WithContext(ctx) // a shallow copy: ReverseProxy's own clone stays intact for a retry
	out.URL = u.targetURL(req.URL)
	stopWatch := cb.Watch(ctx, req.Context()) // a slow client must not hold the attempt past its timeout
	r, err = u.send(t.base, out)              // u.send: fault injection, see fault.go
	stopWatch()
	if err == nil && r.StatusCode == http.StatusSwitchingProtocols {
		at.timer.Stop() // the timeout bounds the wait for the answer; an upgraded connection outlives it
	}
	return r, at, ctx, err
}

// attemptTimer bounds an attempt sent through the base transport with
// one timer: until its answer starts, the provider's timeout (the
// attempt's context ends with context.DeadlineExceeded); once it started
// (body), each read of the body waits at most idle (the context ends
// with idle.ErrStalled). One timer and no allocation per read.
type attemptTimer struct {
	timer  *time.Timer
	cancel context.CancelCauseFunc
	idle   time.Duration // 0: the body's reads are not bounded
	body   atomic.Bool   // the answer started: a firing is a stall
}

func (a *attemptTimer) fire() {
	if a.body.Load() {
		a.cancel(idle.ErrStalled)
		return
	}
	a.cancel(context.DeadlineExceeded)
}

// end ends the attempt's context (the answer was read or dropped); a nil
// a (the lean client's attempt) has none.
func (a *attemptTimer) end() {
	if a == nil {
		return
	}
	a.timer.Stop()
	a.cancel(context.Canceled)
}

// started: the answer's first byte came. The timeout is over; from now
// on the timer runs only while a read of the body waits (reading and
// read), if there is an idle bound.
func (a *attemptTimer) started() {
	a.timer.Stop()
	a.body.Store(true)
}

func (a *attemptTimer) reading() {
	if a.idle > 0 {
		a.timer.Reset(a.idle)
	}
}

func (a *attemptTimer) read() {
	if a.idle > 0 {
		a.timer.Stop()
	}
}

// spendRetry takes a retry from the budget before a failure answer is
// given up for it, counting a refusal.
func (t *providerTransport) spendRetry() bool {
	if t.p.retry.Budget().Take() {
		return true
	}
	t.p.m.retryBudgetExhausted.WithLabelValues(t.p.ID).Inc()
	return false
}

// failureStatus: 5xx and 429 are failures; any other answer means the
// upstream works (docs/behaviour.md). 501 Not Implemented is the one 5xx
// that is not: it says the request asked for a method or feature the
// upstream does not have, which any client can provoke at will.
func failureStatus(code int) bool {
	return (code >= 500 && code != http.StatusNotImplemented) || code == http.StatusTooManyRequests
}

// classify names a transport error's kind and gives its message, free of
// URLs and of every secret the provider holds: an upstream that answers
// with non-HTTP bytes echoing the request line (a TCP echo service, a
// wrong port) puts the request target, the upstream's query with its API
// key, into the parse error's text. Every message that leaves an attempt
// (the client's error answer, health, logs, events, alerts, the state
// file) is made here.
func (p *Provider) classify(err error, ctx context.Context) (breaker.Kind, string) {
	kind, msg := classifyError(err, ctx)
	return kind, p.secrets.Scrub(msg)
}

// classifyError names a transport error's kind and gives a message free of
// URLs (whose query strings may hold secrets). Use Provider.classify,
// which also scrubs the provider's secrets.
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

// CooldownRemaining is how long until the first upstream admits requests
// again; a second when one is half-open with all its trials busy.
// A drained upstream counts until its drain ends; an indefinite drain or
// forced open counts as maxRetryAfter.
func (p *Provider) CooldownRemaining() time.Duration {
	best := time.Duration(math.MaxInt64)
	now := time.Now()
	for _, u := range p.Upstreams {
		var wait time.Duration
		if until, ok := u.Health.BlockedUntil(); ok {
			wait = until.Sub(now)
		} else if u.Drained(now) == nil {
			return time.Second // half-open with all trials busy
		}
		if d := u.Drained(now); d != nil {
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

// nextRecovery is how long until the earliest known end of a cooldown or
// pause, when no upstream would admit a request now; ok is false when one
// would, or when none has a known end (drained, forced open, or
// half-open with its trials busy): then there is nothing to wait for.
func (p *Provider) nextRecovery() (time.Duration, bool) {
	best, ok := time.Duration(math.MaxInt64), false
	now := time.Now()
	for _, u := range p.Upstreams {
		if d := u.Drained(now); d != nil {
			continue
		}
		until, blocked := u.Health.BlockedUntil()
		if !blocked {
			if u.Available() {
				return 0, false
			}
			continue
		}
		best, ok = min(best, until.Sub(now)), true
	}
	return max(best, 0), ok
}

// availableBesides: an upstream other than u would admit a request now.
func (p *Provider) availableBesides(u *Upstream) bool {
	for _, o := range p.Upstreams {
		if o != u && o.Available() {
			return true
		}
	}
	return false
}

// maxRetryAfter caps Retry-After for waits with no known end.
const maxRetryAfter = time.Hour

// writeBudget is how long answering one request may take: every attempt's
// timeout, the backoffs between them, and a minute for a slow client.
func (p *Provider) writeBudget() time.Duration {
	n := time.Duration(p.retry.Attempts())
	if p.lastResort != nil {
		n++
	}
	return n*p.timeout + n*p.retry.MaxBackoff() + p.allDownWait + time.Minute
}

// StartChecks starts the provider's active health checks and its outlier
// detection, if it has them.
func (p *Provider) StartChecks() {
	if p.checker != nil {
		p.checker.Start()
	}
	p.outlier.start()
}

// StopChecks stops them and waits.
func (p *Provider) StopChecks() {
	if p.checker != nil {
		p.checker.Stop()
	}
	p.outlier.stop()
}

// hasAllDownFallback: with every upstream out, something may still answer
// (shadow mode, a stale copy, a last resort, a wait), so the request must go
// through the transport rather than get an immediate 503.
func (p *Provider) hasAllDownFallback() bool {
	return p.observe || p.cache != nil || p.lastResort != nil || p.allDownWait > 0
}

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
	at *attemptTimer
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.at.end()
	return err
}

// drainBody reads a little of a discarded body so the connection can be reused.
func drainBody(body io.ReadCloser) {
	io.CopyN(io.Discard, body, 4<<10)
	body.Close()
}

// kindSlow is a call that answered, slower than slow_call_threshold.
const kindSlow breaker.Kind = "slow"

// attemptResult is how an attempt ended, for its span: what its upstream's
// entry recorded last when it failed, the answer's status otherwise.
func attemptResult(resp *http.Response, err error, refused bool, u *Upstream) tracing.Result {
	var ue *upstreamError
	switch {
	case refused:
		return tracing.Result{Class: "refused"}
	case errors.As(err, &ue):
		return tracing.Result{Class: string(ue.kind), Failure: true}
	case err != nil:
		return tracing.Result{Class: "not_upstream"}
	case resp != nil && failureStatus(resp.StatusCode):
		return tracing.Result{Class: string(breaker.KindStatus), Status: resp.StatusCode, Failure: true}
	case resp != nil:
		return tracing.Result{Class: "success", Status: resp.StatusCode}
	}
	return tracing.Result{Class: "error", Failure: true}
}
