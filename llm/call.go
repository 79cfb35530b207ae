package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/retry"
)

// outcome is how an attempt, or a model's turn, ended.
type outcome int

const (
	// outFailed: it failed before any of its answer reached the client;
	// the call may go on elsewhere.
	outFailed outcome = iota
	// outRefused: the endpoint admits no call now (cooldown, rate-limit
	// pause, recovery trials busy).
	outRefused
	// outClient: an answer for the client as it is (a 4xx); never retried.
	outClient
	// outDone: the answer reached the client whole.
	outDone
	// outBroken: a streamed answer broke after part of it reached the
	// client.
	outBroken
	// outMismatch: a replay whose answer does not begin with what was
	// delivered.
	outMismatch
	// outGone: the client left; nothing more is written.
	outGone
)

// result is what one attempt (or a model's turn) came to.
type result struct {
	out outcome
	// status, header and body are an endpoint's HTTP answer that failed or
	// is for the client as it is, to pass on when nothing better comes.
	status int
	header http.Header
	body   []byte
	msg    string       // what went wrong; free of secrets
	kind   breaker.Kind // the failure's kind, when one
	// timeout: no first token (or headers) within the timeout. expired:
	// the call's max_duration passed.
	timeout, expired bool
	ctxLen           bool      // a 400 context_length_exceeded
	pause            time.Time // a rate-limit pause asked for (Retry-After)
	latency          time.Duration
	health           error // what the health entry records: nil, breaker.Excluded() or a *breaker.Failure
}

// mode is what an attempt asks for beyond the client's request.
type mode struct {
	prefill string // continue the answer from this text (an assistant prefill)
	replay  string // the answer must begin with this text, already delivered
}

// call is one client request: its models, endpoints and what reached
// the client so far.
type call struct {
	g      *Gateway
	w      http.ResponseWriter
	rc     *http.ResponseController
	r      *http.Request
	chat   bool
	path   string // "/chat/completions" or "/completions"
	req    map[string]json.RawMessage
	stream bool
	start  time.Time
	ctx    context.Context // the client's, bounded by max_duration
	asked  *Model

	timedOut map[*Endpoint]bool // endpoints that timed out in this call: not tried again

	// What reached the client of a streamed answer.
	wrote      bool            // headers written
	delivered  strings.Builder // the first choice's text
	opaque     bool            // something that cannot be recovered by its text (tool calls, other choices)
	firstToken time.Time
	abort      bool // end the answer without its last chunk (a broken non-SSE stream)
}

func (g *Gateway) serveCall(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.opts.MaxRequestBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
				fmt.Sprintf("the request body is larger than %d bytes", g.opts.MaxRequestBody))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "the request body could not be read")
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "the request body is not a JSON object")
		return
	}
	var key string
	if err := json.Unmarshal(req["model"], &key); err != nil || key == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "missing_model", `the request needs "model", a string naming a model`)
		return
	}
	stream := false
	if raw, ok := req["stream"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &stream); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_stream", `"stream" must be true or false`)
			return
		}
	}
	m := g.Model(key)
	if m == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "The model `"+clip(key, 64)+"` does not exist")
		return
	}
	ctx := r.Context()
	if d := m.cfg.MaxDuration; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c := &call{g: g, w: w, rc: http.NewResponseController(w), r: r, chat: chat, req: req, stream: stream,
		start: time.Now(), ctx: ctx, asked: m, timedOut: map[*Endpoint]bool{}, path: "/completions"}
	if chat {
		c.path = "/chat/completions"
	}
	c.run()
	if c.abort {
		panic(http.ErrAbortHandler) // net/http's way to end a response without its last chunk
	}
}

// clip shortens s for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// run answers the call: the asked model, then its fallbacks.
func (c *call) run() {
	m := c.asked
	seen := map[string]bool{}
	var last *result
	lastModel := m
	for m != nil && !seen[m.Key] {
		seen[m.Key] = true
		lastModel = m
		res := c.tryModel(m, mode{}, m.cfg.Fallback == "")
		switch res.out {
		case outDone, outGone:
			return
		case outBroken:
			c.recoverStream(m, res)
			return
		case outClient:
			if cf := c.g.Model(m.cfg.ContextFallback); res.ctxLen && cf != nil && !seen[cf.Key] {
				c.fellBack(m, cf, ReasonContextLength, res)
				last, m = res, cf
				continue
			}
			c.passOn(m, res)
			return
		}
		last = res
		if c.ctx.Err() != nil {
			break
		}
		next := c.g.Model(m.cfg.Fallback)
		if next == nil || seen[next.Key] {
			break
		}
		c.fellBack(m, next, ReasonFailure, res)
		m = next
	}
	c.fail(lastModel, last)
}

func (c *call) fellBack(from, to *Model, reason string, res *result) {
	c.g.metrics.fallbacks.WithLabelValues(from.Key, to.Key, reason).Inc()
	c.g.opts.Logger.Info("model call handed to its fallback", "from", from.Key, "to", to.Key, "reason", reason, "error", res.msg)
	if h := c.g.opts.Hooks.OnFallback; h != nil {
		h(Fallback{From: from.Key, To: to.Key, Reason: reason, Error: res.msg})
	}
}

// ordered is the model's endpoints, healthy (and never called) ones
// first, then degraded, then unavailable (which refuse until their
// cooldown ends); the configured order within each.
func (m *Model) ordered() []*Endpoint {
	eps := slices.Clone(m.endpoints)
	rank := func(ep *Endpoint) int {
		switch ep.Health.Status() {
		case breaker.Unknown, breaker.Healthy:
			return 0
		case breaker.Degraded:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(eps, func(a, b *Endpoint) int { return rank(a) - rank(b) })
	return eps
}

// tryModel makes the attempts of one model: a pass over its endpoints,
// failing over between them, then further passes after a backoff. An
// endpoint that timed out is not tried again in the call. With mayWait,
// a rate-limit pause that ends within MaxRetryWait is waited for when
// nothing else is left.
func (c *call) tryModel(m *Model, md mode, mayWait bool) *result {
	var last *result
	for pass := range c.g.opts.Passes {
		if pass > 0 && !c.sleep(c.backoff(pass)) {
			break
		}
		tried := false
		for _, ep := range m.ordered() {
			if c.timedOut[ep] {
				continue
			}
			if c.ctx.Err() != nil {
				return c.ended(last)
			}
			res := c.attempt(m, ep, md)
			switch res.out {
			case outRefused:
				if last == nil {
					last = res
				}
				continue
			case outFailed:
				last, tried = res, true
				if res.timeout {
					c.timedOut[ep] = true
				}
				continue
			}
			return res
		}
		if !tried {
			break // everything refused: another pass would be refused too
		}
	}
	if mayWait && c.ctx.Err() == nil {
		if ep, until := m.earliestPause(); ep != nil && time.Until(until) <= c.g.opts.MaxRetryWait && c.sleepUntil(until) {
			res := c.attempt(m, ep, md)
			if res.out != outFailed && res.out != outRefused {
				return res
			}
			last = res
		}
	}
	if c.ctx.Err() != nil {
		return c.ended(last)
	}
	if last == nil {
		last = &result{out: outRefused, msg: "model " + strconv.Quote(m.Key) + " has no endpoint"}
	}
	return last
}

// ended is the result of a call whose context is done: the client left,
// or max_duration passed.
func (c *call) ended(last *result) *result {
	if c.r.Context().Err() != nil {
		return &result{out: outGone}
	}
	return &result{out: outFailed, expired: true, status: http.StatusGatewayTimeout,
		msg: fmt.Sprintf("no complete answer within max_duration (%s)", c.asked.cfg.MaxDuration)}
}

// earliestPause is the endpoint whose rate-limit pause ends first.
func (m *Model) earliestPause() (*Endpoint, time.Time) {
	var best *Endpoint
	var end time.Time
	for _, ep := range m.endpoints {
		if until, _, ok := ep.Health.PausedUntil(); ok && (best == nil || until.Before(end)) {
			best, end = ep, until
		}
	}
	return best, end
}

func (c *call) backoff(pass int) time.Duration {
	d := c.g.opts.Backoff << min(pass-1, 16)
	d = min(d, c.g.opts.MaxBackoff)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// sleep waits d, or less when the call ends; it reports whether the call
// goes on.
func (c *call) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *call) sleepUntil(t time.Time) bool { return c.sleep(time.Until(t) + time.Millisecond) }

// attempt sends the call to one endpoint through its health entry.
func (c *call) attempt(m *Model, ep *Endpoint, md mode) *result {
	var res *result
	err := ep.Health.Call(func() (time.Duration, error) {
		res = c.exchange(m, ep, md)
		return res.latency, res.health
	})
	if res == nil {
		return &result{out: outRefused, msg: fmt.Sprintf("endpoint %s of model %q admits no call now: %v", ep.URL, m.Key, err)}
	}
	if !res.pause.IsZero() {
		ep.Health.Pause(res.pause, strconv.Itoa(res.status)+" with Retry-After")
	}
	outcome := "ok"
	switch {
	case !res.pause.IsZero():
		outcome = "rate_limited"
	case res.out == outGone:
		outcome = "gone"
	case res.out == outClient:
		outcome = "client_error"
	case res.health != nil && res.health != breaker.Excluded():
		outcome = "failure"
	}
	c.g.metrics.attempts.WithLabelValues(m.Key, ep.URL, outcome).Inc()
	return res
}

// upstreamBody is the client's request for model m: its "model" the
// upstream_model, and for a continuation the answer so far as an
// assistant prefill (chat) or at the end of the prompt (completions).
func (c *call) upstreamBody(m *Model, md mode) ([]byte, error) {
	out := maps.Clone(c.req)
	name := m.cfg.UpstreamModel
	if name == "" {
		name = m.Key
	}
	out["model"], _ = json.Marshal(name)
	if md.prefill != "" {
		if c.chat {
			var msgs []json.RawMessage
			if err := json.Unmarshal(c.req["messages"], &msgs); err != nil {
				return nil, errors.New("the request's messages are not a list")
			}
			a, _ := json.Marshal(map[string]string{"role": "assistant", "content": md.prefill})
			out["messages"], _ = json.Marshal(append(msgs, a))
		} else {
			var p string
			if err := json.Unmarshal(c.req["prompt"], &p); err != nil {
				return nil, errors.New("the request's prompt is not a string")
			}
			out["prompt"], _ = json.Marshal(p + md.prefill)
		}
	}
	return json.Marshal(out)
}

// canPrefill reports whether the request can carry a continuation.
func (c *call) canPrefill() bool {
	if c.chat {
		raw := bytes.TrimSpace(c.req["messages"])
		return len(raw) > 0 && raw[0] == '['
	}
	var p string
	return json.Unmarshal(c.req["prompt"], &p) == nil
}

// exchange sends one request to ep and handles its answer.
func (c *call) exchange(m *Model, ep *Endpoint, md mode) *result {
	start := time.Now()
	body, err := c.upstreamBody(m, md)
	if err != nil {
		return &result{out: outFailed, msg: err.Error(), health: breaker.Excluded()}
	}
	actx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(m.cfg.Timeout, func() { timedOut.Store(true); cancel() })
	defer timer.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.base.JoinPath(c.path).String(), bytes.NewReader(body))
	if err != nil {
		return &result{out: outFailed, msg: "invalid endpoint request: " + m.secrets.Scrub(err.Error()), health: breaker.Excluded()}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	for k, v := range m.headers {
		req.Header[k] = v
	}
	resp, err := c.g.client.Do(req)
	if err != nil {
		return c.sendFailed(m, err, timedOut.Load(), start)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return c.errorAnswer(m, resp, &timedOut, start)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case c.stream && ct == "text/event-stream":
		return c.streamAnswer(m, md, resp, timer, &timedOut, start)
	case c.stream && ct != "application/json" && md == (mode{}):
		return c.rawStream(m, resp, timer, &timedOut, start)
	}
	return c.plainAnswer(m, resp, timer, &timedOut, start)
}

// sendFailed is the result of a request that got no answer.
func (c *call) sendFailed(m *Model, err error, timedOut bool, start time.Time) *result {
	lat := time.Since(start)
	switch {
	case c.r.Context().Err() != nil:
		return &result{out: outGone, health: breaker.Excluded()}
	case timedOut:
		msg := fmt.Sprintf("no answer within the timeout (%s)", m.cfg.Timeout)
		return &result{out: outFailed, timeout: true, kind: breaker.KindTimeout, status: http.StatusGatewayTimeout, msg: msg, latency: lat,
			health: &breaker.Failure{Kind: breaker.KindTimeout, Latency: lat, Message: msg}}
	case c.ctx.Err() != nil:
		r := c.ended(nil)
		r.health = breaker.Excluded()
		return r
	}
	msg := "could not reach the endpoint: " + m.secrets.Scrub(err.Error())
	return &result{out: outFailed, kind: breaker.KindConnect, status: http.StatusBadGateway, msg: msg, latency: lat,
		health: &breaker.Failure{Kind: breaker.KindConnect, Latency: lat, Message: msg}}
}

// maxErrorBody bounds the error answer of an endpoint that is kept.
const maxErrorBody = 1 << 20

// errorAnswer handles an answer 3xx to 5xx: a failure, a rate-limit pause,
// or an answer for the client as it is (docs/behaviour.md: no 4xx but 429
// counts against health).
func (c *call) errorAnswer(m *Model, resp *http.Response, timedOut *atomic.Bool, start time.Time) *result {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	lat := time.Since(start)
	if err != nil {
		return c.sendFailed(m, err, timedOut.Load(), start)
	}
	h := http.Header{}
	for _, k := range []string{"Content-Type", "Retry-After", "X-Request-Id"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	res := &result{status: resp.StatusCode, header: h, body: b, latency: lat}
	code, _ := errorCode(b)
	what := "the endpoint answered " + strconv.Itoa(resp.StatusCode)
	if code != "" {
		what += " (" + clip(code, 64) + ")"
	}
	res.msg = m.secrets.Scrub(what)
	s := resp.StatusCode
	if s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable {
		if d, why, ok := retry.RateLimitPause(resp.Header, time.Now()); ok {
			res.out, res.health = outFailed, breaker.Excluded() // rate limited is not unhealthy
			res.pause = time.Now().Add(min(d, config.DefaultMaxRateLimitPause))
			res.msg += "; asked to wait (" + why + ")"
			return res
		}
	}
	switch {
	case s == http.StatusTooManyRequests || (s >= 500 && s != http.StatusNotImplemented):
		res.out, res.kind = outFailed, breaker.KindStatus
		res.health = &breaker.Failure{Kind: breaker.KindStatus, StatusCode: s, Latency: lat, Message: res.msg}
	case s == http.StatusBadRequest && isContextLength(b):
		res.out, res.ctxLen, res.health = outClient, true, breaker.Excluded()
	case s == http.StatusBadRequest && isContentPolicy(b):
		res.out, res.health = outClient, breaker.Excluded()
	default:
		res.out = outClient // the endpoint answered: a success for its health
	}
	return res
}

// bodyFailed is the result of an answer whose body broke before any of
// it reached the client.
func (c *call) bodyFailed(m *Model, err error, timedOut bool, start time.Time, what string) *result {
	res := c.sendFailed(m, err, timedOut, start)
	if res.out != outFailed || res.timeout || res.expired {
		return res
	}
	kind, msg := c.bodyError(m, err)
	res.kind, res.msg = kind, what+": "+msg
	res.health = &breaker.Failure{Kind: kind, Latency: res.latency, Message: res.msg}
	return res
}

// writeHead writes the headers of a successful answer from m.
func (c *call) writeHead(m *Model, contentType string, stream bool) {
	h := c.w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if stream {
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
	}
	c.modelHeaders(m)
	c.w.WriteHeader(http.StatusOK)
	c.wrote = true
}

// modelHeaders say which model answered.
func (c *call) modelHeaders(m *Model) {
	h := c.w.Header()
	h.Set("X-Healproxy-Model", m.Key)
	if m != c.asked {
		h.Set("X-Healproxy-Fallback-From", c.asked.Key)
	}
}

// passOn gives the client an endpoint's answer as it is (a 4xx, or the
// last failure when nothing better came).
func (c *call) passOn(m *Model, res *result) {
	for k, v := range res.header {
		c.w.Header()[k] = v
	}
	c.w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	c.modelHeaders(m)
	c.w.WriteHeader(res.status)
	c.w.Write(res.body)
}

// fail answers a call that got no answer: the last endpoint's own answer
// when there is one, else 503 (every endpoint refused), 504 (timed out)
// or 502, in OpenAI's error shape.
func (c *call) fail(m *Model, res *result) {
	switch {
	case res == nil:
		c.modelHeaders(m)
		writeError(c.w, http.StatusServiceUnavailable, "server_error", "model_unavailable", "no model could answer")
	case res.out == outGone:
	case res.body != nil:
		c.passOn(m, res)
	case res.out == outRefused:
		wait := time.Second
		for _, ep := range m.endpoints {
			if until, blocked := ep.Health.BlockedUntil(); blocked {
				wait = max(wait, time.Until(until))
			}
		}
		c.w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
		c.modelHeaders(m)
		writeError(c.w, http.StatusServiceUnavailable, "server_error", "model_unavailable",
			fmt.Sprintf("every endpoint of model %q is unavailable (cooling down or rate limited); retry later", m.Key))
	case res.timeout || res.expired:
		c.modelHeaders(m)
		writeError(c.w, http.StatusGatewayTimeout, "server_error", "upstream_timeout", res.msg)
	default:
		c.modelHeaders(m)
		writeError(c.w, http.StatusBadGateway, "server_error", "upstream_error", res.msg)
	}
}
