package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/idle"
	"github.com/healproxy/healproxy/internal/sse"
)

var doneEvent = []byte("data: [DONE]\n\n")

// bodyError names what broke an answer's body.
func (c *call) bodyError(m *Model, err error) (breaker.Kind, string) {
	switch {
	case errors.Is(err, idle.ErrStalled):
		return breaker.KindStalled, fmt.Sprintf("the answer stalled: no data for %s (idle_timeout)", m.cfg.IdleTimeout)
	case err == io.EOF, errors.Is(err, sse.ErrIncomplete), errors.Is(err, io.ErrUnexpectedEOF):
		return breaker.KindCut, "the answer broke off before its end"
	case errors.Is(err, sse.ErrLineTooLong):
		return breaker.KindError, "the answer has an event over the size limit"
	}
	return breaker.KindCut, "the answer broke off: " + m.secrets.Scrub(err.Error())
}

// plainAnswer reads a non-streamed answer whole (so that a body that
// breaks or stalls is a failure the client never sees) and sends it on.
func (c *call) plainAnswer(m *Model, resp *http.Response, timer *time.Timer, timedOut *atomic.Bool, start time.Time) *result {
	// timeout bounds the wait for the headers; the body has idle_timeout.
	if !timer.Stop() && timedOut.Load() {
		return c.sendFailed(m, errTimedOut, true, start)
	}
	lat := time.Since(start)
	body := idle.New(resp.Body, m.cfg.IdleTimeout, 0)
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, c.g.opts.MaxResponseBody+1))
	if err != nil {
		return c.bodyFailed(m, err, false, start, "before its end")
	}
	if int64(len(b)) > c.g.opts.MaxResponseBody {
		return &result{out: outFailed, latency: lat, health: breaker.Excluded(),
			msg: fmt.Sprintf("the answer is larger than %d bytes", c.g.opts.MaxResponseBody)}
	}
	var ck chunk
	if err := json.Unmarshal(b, &ck); err != nil {
		msg := "the answer is not valid JSON"
		return &result{out: outFailed, kind: breaker.KindError, status: http.StatusBadGateway, latency: lat, msg: msg,
			health: &breaker.Failure{Kind: breaker.KindError, Latency: lat, Message: msg}}
	}
	c.countUsage(m, ck.Usage)
	c.w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	c.writeHead(m, resp.Header.Get("Content-Type"), false)
	c.w.Write(b)
	return &result{out: outDone, latency: lat}
}

// errTimedOut stands for the error of a request cut by its timeout.
var errTimedOut = errors.New("timed out")

// rawStream passes on a streamed answer that is not an event stream
// (chunked JSON lines, say) as it comes. It cannot be recovered: a break
// ends the client's answer without its last chunk.
func (c *call) rawStream(m *Model, resp *http.Response, timer *time.Timer, timedOut *atomic.Bool, start time.Time) *result {
	body := idle.New(resp.Body, m.cfg.IdleTimeout, 0)
	defer body.Close()
	buf := make([]byte, 32<<10)
	n, err := body.Read(buf)
	for n == 0 && err == nil {
		n, err = body.Read(buf)
	}
	if !timer.Stop() && timedOut.Load() {
		return c.sendFailed(m, errTimedOut, true, start)
	}
	lat := time.Since(start)
	if err != nil && !(err == io.EOF && n > 0) {
		return c.bodyFailed(m, err, false, start, "before its first byte")
	}
	c.writeHead(m, resp.Header.Get("Content-Type"), true)
	for {
		if n > 0 {
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return &result{out: outGone, health: breaker.Excluded()}
			}
			c.rc.Flush()
		}
		if err == io.EOF {
			return &result{out: outDone, latency: lat}
		}
		if err != nil {
			if c.r.Context().Err() != nil {
				return &result{out: outGone, health: breaker.Excluded()}
			}
			c.abort = true
			kind, msg := c.bodyError(m, err)
			return &result{out: outDone, latency: lat, health: &breaker.Failure{Kind: kind, Latency: lat, Message: msg}}
		}
		n, err = body.Read(buf)
	}
}

// streamAnswer reads an event stream. Events are held until the first
// token, so that an attempt that fails before it can still fail over
// unnoticed; from the first token on they are forwarded as they come
// (malformed ones dropped). In a replay (md.replay), nothing is forwarded
// until the answer has matched what was already delivered.
func (c *call) streamAnswer(m *Model, md mode, resp *http.Response, timer *time.Timer, timedOut *atomic.Bool, start time.Time) *result {
	// Until the first token the timeout applies; idle_timeout after it.
	body := idle.New(resp.Body, 0, 0)
	defer body.Close()
	rd := sse.NewReader(body)
	var (
		pending   [][]byte // events held until the first token
		token     bool     // a token arrived: the timeout no longer applies
		started   bool     // this attempt's events reach the client
		matched   int      // bytes of md.replay matched
		finished  bool     // a finish_reason arrived
		done      bool     // "[DONE]" arrived
		use       *usage
		contents  int
		firstAt   time.Time
		lat       time.Duration
		recovered = c.wrote
	)
	fail := func(out outcome, kind breaker.Kind, msg string) *result {
		r := &result{out: out, kind: kind, msg: msg, latency: time.Since(start), status: http.StatusBadGateway}
		r.health = &breaker.Failure{Kind: kind, Latency: r.latency, Message: msg}
		if out == outMismatch {
			r.health = breaker.Excluded()
		}
		return r
	}
	var err error
	for {
		var ev sse.Event
		ev, err = rd.Next()
		if err != nil {
			break
		}
		if ev.IsComment() {
			if started {
				if c.forward(ev.Raw, rd.HasEvent()) != nil {
					return &result{out: outGone, health: breaker.Excluded()}
				}
			}
			continue
		}
		if !ev.HasData {
			continue
		}
		data := bytes.TrimSpace(ev.Data)
		if ev.Type == "error" {
			_, msg := errorCode(data)
			err = fmt.Errorf("the endpoint sent an error event: %s", clip(m.secrets.Scrub(msg), 200))
			break
		}
		if bytes.Equal(data, []byte("[DONE]")) {
			done = true
			break
		}
		var ck chunk
		if json.Unmarshal(data, &ck) != nil {
			c.g.metrics.malformed.WithLabelValues(m.Key).Inc()
			continue
		}
		if isSet(ck.Error) {
			_, msg := errorCode(data)
			err = fmt.Errorf("the endpoint sent an error in the stream: %s", clip(m.secrets.Scrub(msg), 200))
			break
		}
		if ck.Usage != nil {
			use = ck.Usage
		}
		text, fin, opaque := ck.text()
		raw := ev.Raw
		if !token && (text != "" || fin || opaque) {
			token = true
			if !timer.Stop() && timedOut.Load() {
				err = errTimedOut
				break
			}
			lat, firstAt = time.Since(start), time.Now()
			body.SetIdleTimeout(m.cfg.IdleTimeout)
		}
		if md.replay != "" && matched < len(md.replay) {
			// Compare with what was delivered; forward only what follows.
			if opaque {
				return fail(outMismatch, breaker.KindError, "the replayed answer holds more than text")
			}
			n := min(len(text), len(md.replay)-matched)
			if text[:n] != md.replay[matched:matched+n] {
				return fail(outMismatch, breaker.KindError, "the replayed answer does not begin with what was delivered")
			}
			matched += n
			if matched < len(md.replay) {
				if fin {
					return fail(outMismatch, breaker.KindError, "the replayed answer is shorter than what was delivered")
				}
				continue
			}
			text = text[n:]
			if text == "" && !fin {
				started = true // matched exactly: what follows is new
				continue
			}
			b, werr := withText(data, text)
			if werr != nil {
				return fail(outMismatch, breaker.KindError, "the replayed answer's event cannot be cut")
			}
			raw = append(append([]byte("data: "), b...), '\n', '\n')
		}
		if !started && !token {
			pending = append(pending, bytes.Clone(raw))
			continue
		}
		if !started || !c.wrote {
			started = true
			if !c.wrote {
				c.writeHead(m, resp.Header.Get("Content-Type"), true)
				for _, p := range pending {
					c.w.Write(p)
				}
			}
			// A continuation's or replay's leading events (the role) are
			// not sent twice.
			pending = nil
			if c.firstToken.IsZero() {
				c.firstToken = time.Now()
				c.g.metrics.ttft.WithLabelValues(m.Key).Observe(c.firstToken.Sub(c.start).Seconds())
			}
		}
		// Events that arrived together go out together: a flush (a write
		// to the client) only when the next event is not already here.
		if c.forward(raw, rd.HasEvent()) != nil {
			return &result{out: outGone, health: breaker.Excluded()}
		}
		c.delivered.WriteString(text)
		if opaque {
			c.opaque = true
		}
		if text != "" {
			contents++
		}
		if fin && !finished {
			finished = true
			body.SetIdleTimeout(min(m.cfg.IdleTimeout, c.g.opts.FinishGrace))
		}
	}

	complete := done || (finished && (err == io.EOF || errors.Is(err, sse.ErrIncomplete) || errors.Is(err, idle.ErrStalled)))
	if complete && started {
		if c.forward(doneEvent, false) != nil {
			return &result{out: outGone, health: breaker.Excluded()}
		}
		c.countUsage(m, use)
		if !firstAt.IsZero() {
			n := contents
			if use != nil && use.CompletionTokens > 0 {
				n = use.CompletionTokens
			}
			if d := time.Since(firstAt).Seconds(); d > 0 && n > 0 {
				c.g.metrics.tps.WithLabelValues(m.Key).Observe(float64(n) / d)
			}
		}
		return &result{out: outDone, latency: lat}
	}
	if complete {
		// A stream that ended before any token reached the client.
		return fail(outFailed, breaker.KindError, "the stream ended without any token")
	}
	switch {
	case c.r.Context().Err() != nil:
		return &result{out: outGone, health: breaker.Excluded()}
	case timedOut.Load() && !token:
		return c.sendFailed(m, err, true, start)
	case c.ctx.Err() != nil:
		r := c.ended(nil)
		r.health = breaker.Excluded()
		if started || recovered {
			r.out = outBroken
		}
		return r
	}
	kind, msg := c.bodyError(m, err)
	if err == io.EOF || errors.Is(err, sse.ErrIncomplete) {
		msg = "the stream ended without finish_reason or [DONE]"
	}
	if !started {
		if !token && kind == breaker.KindCut {
			msg += " (before its first token)"
		}
		return fail(outFailed, kind, msg)
	}
	return fail(outBroken, kind, msg)
}

// forward writes an event to the client and flushes it, unless more
// follows at once.
func (c *call) forward(raw []byte, more bool) error {
	if _, err := c.w.Write(raw); err != nil {
		return err
	}
	if more {
		return nil
	}
	return c.rc.Flush()
}

func (c *call) countUsage(m *Model, u *usage) {
	if u == nil {
		return
	}
	if u.PromptTokens > 0 {
		c.g.metrics.tokens.WithLabelValues(m.Key, "prompt").Add(float64(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		c.g.metrics.tokens.WithLabelValues(m.Key, "completion").Add(float64(u.CompletionTokens))
	}
}

// recoverStream continues a streamed answer that broke after part of it
// reached the client, on the broken model's fallbacks in turn: a fallback
// with prefill continues from the text delivered; otherwise, or when it
// refuses, it answers again from the start and only what follows the
// delivered text is forwarded, if its answer begins with exactly that.
// When nothing works the stream ends with an SSE error event naming the
// original break (a refusal of the continuation never replaces it).
func (c *call) recoverStream(m *Model, broken *result) {
	cause, broke := broken, m
	seen := map[string]bool{m.Key: true}
	next := m.cfg.Fallback
outer:
	for !c.opaque && !cause.expired && c.ctx.Err() == nil {
		t := c.g.Model(next)
		if t == nil || seen[t.Key] {
			break
		}
		seen[t.Key] = true
		ways := []string{WayReplay}
		if t.cfg.Prefill && c.canPrefill() {
			ways = []string{WayPrefill, WayReplay}
		}
		for _, way := range ways {
			delivered := c.delivered.String()
			md := mode{replay: delivered}
			if way == WayPrefill {
				md = mode{prefill: delivered}
			}
			res := c.tryModel(t, md, false)
			switch res.out {
			case outDone:
				c.recovered(broke, t, way, len(delivered), cause)
				return
			case outGone:
				return
			case outBroken: // recovered, then broke again: go on from t
				c.recovered(broke, t, way, len(delivered), cause)
				cause, broke = res, t
				next = t.cfg.Fallback
				continue outer
			}
		}
		next = t.cfg.Fallback
	}
	if c.r.Context().Err() != nil {
		return
	}
	c.recovered(broke, nil, WayFailed, c.delivered.Len(), cause)
	code := string(cause.kind)
	if cause.expired {
		code = "max_duration"
	}
	if code == "" {
		code = "upstream_error"
	}
	sse.WriteError(c.w, "upstream_error", code, "the answer is incomplete: "+cause.msg)
	c.rc.Flush()
	c.abort = true
}

func (c *call) recovered(from, to *Model, way string, delivered int, cause *result) {
	c.g.metrics.recoveries.WithLabelValues(from.Key, way).Inc()
	// Lengths only: prompts and answers are never logged.
	c.g.opts.Logger.Info("streamed answer broke after reaching the client", "model", from.Key, "way", way,
		"delivered_bytes", delivered, "cause", cause.msg)
	if h := c.g.opts.Hooks.OnRecovery; h != nil {
		r := Recovery{Model: from.Key, Way: way, Delivered: delivered, Cause: cause.msg}
		if to != nil {
			r.To = to.Key
		}
		h(r)
	}
}
