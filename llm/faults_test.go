package llm

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/fakeopenai"
)

// The 16 faults of the Failover Bench catalogue, each against a fake
// OpenAI-compatible server that streams a known answer of 60 numbered
// tokens, so that a truncated or duplicated answer shows.

var full = fakeopenai.Answer(60)

// twoModels is a primary with one endpoint and a fallback.
const twoModels = `
model "primary" {
  endpoints      = ["{primary}"]
  upstream_model = "fb-primary"
  timeout        = "150ms"
  idle_timeout   = "150ms"
  fallback       = "backup"
  health {
    error_threshold = 3
    cooldown        = "1m"
  }
}
model "backup" {
  endpoints      = ["{backup}"]
  upstream_model = "fb-ok"
  timeout        = "1s"
}
`

// oneModel has no fallback.
const oneModel = `
model "primary" {
  endpoints      = ["{primary}"]
  upstream_model = "fb-primary"
  timeout        = "150ms"
  idle_timeout   = "150ms"
  health {
    error_threshold = 3
    cooldown        = "1m"
  }
}
`

func TestFault429RetryAfter(t *testing.T) {
	t.Run("no fallback: waits for Retry-After, then the same endpoint answers", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.First(1, fakeopenai.RateLimitRetryAfter), RetryAfter: "1"})
		e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
		a := e.post("primary", true)
		wantComplete(t, a, full)
		reqs := p.Requests()
		if len(reqs) != 2 {
			t.Fatalf("primary saw %d requests; want 2", len(reqs))
		}
		if gap := reqs[1].Since - reqs[0].Since; gap < 950*time.Millisecond {
			t.Errorf("second attempt %s after the 429; want Retry-After (1s) honoured", gap)
		}
		if st := e.entry("primary", 0).Export(); st.ErrorCount != 0 || st.FailureTotal != 0 {
			t.Errorf("a 429 with Retry-After counted as a failure: %+v", st)
		}
	})
	t.Run("with a fallback: fails over at once, the primary is paused, not failed", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.First(1, fakeopenai.RateLimitRetryAfter), RetryAfter: "30"})
		b := fake(t, fakeopenai.Options{})
		e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
		a := e.post("primary", true)
		wantComplete(t, a, full)
		if a.header.Get("X-Healproxy-Model") != "backup" || a.header.Get("X-Healproxy-Fallback-From") != "primary" {
			t.Errorf("got headers %v", a.header)
		}
		if n := len(p.Requests()); n != 1 {
			t.Errorf("primary saw %d requests; want 1 (no second attempt before Retry-After)", n)
		}
		ent := e.entry("primary", 0)
		if _, _, paused := ent.PausedUntil(); !paused || ent.Export().ErrorCount != 0 {
			t.Errorf("primary: paused %v, %+v; want paused without a failure", paused, ent.Export())
		}
		// The next call does not touch the paused primary.
		wantComplete(t, e.post("primary", true), full)
		if n := len(p.Requests()); n != 1 {
			t.Errorf("primary saw %d requests while paused; want 1", n)
		}
	})
}

func TestFault429Persistent(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.RateLimit)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if n := len(p.Requests()); n != 2 {
		t.Errorf("primary saw %d requests; want 2 (one retry after a backoff, then the fallback)", n)
	}
	if got := e.entry("primary", 0).Export().ErrorCount; got != 2 {
		t.Errorf("primary error_count %d; want 2 (a 429 without Retry-After is a failure)", got)
	}
	if got := counter(t, e.g.metrics.fallbacks.WithLabelValues("primary", "backup", ReasonFailure)); got != 1 {
		t.Errorf("fallbacks metric %v; want 1", got)
	}
	// Without a fallback, the client gets the 429 as the endpoint sent it.
	p2 := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.RateLimit)})
	e2 := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p2})
	a = e2.post("primary", true)
	if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), "rate_limit_exceeded") {
		t.Errorf("got %d %s; want the endpoint's 429", a.status, a.body)
	}
	if n := len(p2.Requests()); n != 2 {
		t.Errorf("primary saw %d requests; want 2", n)
	}
}

func TestFault500Once(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.First(1, fakeopenai.ServerError)})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if a.header.Get("X-Healproxy-Model") != "primary" || a.header.Get("X-Healproxy-Fallback-From") != "" {
		t.Errorf("got headers %v", a.header)
	}
	if n := len(p.Requests()); n != 2 {
		t.Errorf("primary saw %d requests; want 2 (a retry on the same endpoint)", n)
	}
	ent := e.entry("primary", 0)
	if st := ent.Export(); st.FailureTotal != 1 || st.ErrorCount != 0 || ent.Status() != breaker.Healthy {
		t.Errorf("primary: %s %+v; want healthy after one failure and a success", ent.Status(), st)
	}
}

func TestFault503Persistent(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Overloaded)})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	a := e.post("primary", true)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "overloaded") {
		t.Errorf("got %d %s; want the endpoint's own 503", a.status, a.body)
	}
	if n := len(p.Requests()); n != 2 {
		t.Errorf("primary saw %d requests; want 2", n)
	}
	// A second call trips the entry (threshold 3); a third is refused
	// without reaching the endpoint.
	e.post("primary", true)
	if s := e.entry("primary", 0).Status(); s != breaker.Unavailable {
		t.Errorf("primary is %s; want unavailable", s)
	}
	n := len(p.Requests())
	a = e.post("primary", true)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(string(a.body), "model_unavailable") {
		t.Errorf("got %d %v %s; want 503 with Retry-After", a.status, a.header, a.body)
	}
	if len(p.Requests()) != n {
		t.Error("an unavailable endpoint was sent a request")
	}
}

func TestFaultResetBeforeHeaders(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.First(1, fakeopenai.Reset)})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	wantComplete(t, e.post("primary", true), full)
	if n := len(p.Requests()); n != 2 {
		t.Errorf("primary saw %d requests; want 2", n)
	}
	if got := recent(e.entry("primary", 0)); !slices.Equal(got, []breaker.Kind{breaker.KindConnect}) {
		t.Errorf("recent failures %v; want one connect", got)
	}
}

func TestFaultNoResponse(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.NoResponse)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if n := len(p.Requests()); n != 1 {
		t.Errorf("the silent primary saw %d requests; want 1 (no retry at full timeout)", n)
	}
	if a.took > time.Second {
		t.Errorf("took %s; want about the 150ms timeout", a.took)
	}
	if got := recent(e.entry("primary", 0)); !slices.Equal(got, []breaker.Kind{breaker.KindTimeout}) {
		t.Errorf("recent failures %v; want one timeout", got)
	}
	// Without a fallback: 504, after one attempt.
	p2 := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.NoResponse)})
	e2 := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p2})
	a = e2.post("primary", true)
	if a.status != http.StatusGatewayTimeout || len(p2.Requests()) != 1 {
		t.Errorf("got %d after %d requests; want 504 after 1", a.status, len(p2.Requests()))
	}
}

func TestFaultSlowFirstToken(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.SlowFirstToken), Delay: 3 * time.Second})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if a.took > time.Second || a.header.Get("X-Healproxy-Model") != "backup" {
		t.Errorf("took %s, answered by %q; want the fallback after the 150ms time-to-first-token bound", a.took, a.header.Get("X-Healproxy-Model"))
	}
	if got := recent(e.entry("primary", 0)); !slices.Equal(got, []breaker.Kind{breaker.KindTimeout}) {
		t.Errorf("recent failures %v; want one timeout", got)
	}
}

func TestFaultStreamCut(t *testing.T) {
	t.Run("fallback with prefill continues", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
		b := fake(t, fakeopenai.Options{})
		e := newEnv(t, strings.Replace(twoModels, `upstream_model = "fb-ok"`, `upstream_model = "fb-ok"
  prefill = true`, 1), map[string]*fakeopenai.Server{"primary": p, "backup": b})
		a := e.post("primary", true)
		wantComplete(t, a, full)
		breqs := b.Requests()
		if len(breqs) != 1 || breqs[0].LastRole != "assistant" || breqs[0].Prefill != fakeopenai.Answer(40) {
			t.Errorf("fallback requests %+v; want one continuation of the 40 tokens delivered", breqs)
		}
		if got := recent(e.entry("primary", 0)); !slices.Equal(got, []breaker.Kind{breaker.KindCut}) {
			t.Errorf("recent failures %v; want one cut", got)
		}
		if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayPrefill)); got != 1 {
			t.Errorf("prefill recoveries %v; want 1", got)
		}
		if r := e.recoveries(); len(r) != 1 || r[0].Way != WayPrefill || r[0].To != "backup" || r[0].Delivered != len(fakeopenai.Answer(40)) {
			t.Errorf("recovery events %+v", r)
		}
	})
	t.Run("fallback without prefill replays", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
		b := fake(t, fakeopenai.Options{})
		e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
		wantComplete(t, e.post("primary", true), full)
		if breqs := b.Requests(); len(breqs) != 1 || breqs[0].LastRole != "user" {
			t.Errorf("fallback requests %+v; want one request from the start", breqs)
		}
		if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayReplay)); got != 1 {
			t.Errorf("replay recoveries %v; want 1", got)
		}
	})
	t.Run("no fallback: an error event and a cut connection", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
		e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
		a := e.post("primary", true)
		wantIncomplete(t, a, "cut")
		if a.text != fakeopenai.Answer(40) {
			t.Errorf("got text %q; want the 40 tokens delivered", a.text)
		}
		if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayFailed)); got != 1 {
			t.Errorf("failed recoveries %v; want 1", got)
		}
	})
}

func TestFaultStreamStall(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Stall), Delay: 5 * time.Second})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if a.took > 2*time.Second {
		t.Errorf("took %s; want the stall noticed after idle_timeout (150ms)", a.took)
	}
	if got := recent(e.entry("primary", 0)); !slices.Equal(got, []breaker.Kind{breaker.KindStalled}) {
		t.Errorf("recent failures %v; want one stalled", got)
	}
	if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayReplay)); got != 1 {
		t.Errorf("replay recoveries %v; want 1", got)
	}
	// Alive after: the next call through the same gateway is answered.
	wantComplete(t, e.post("backup", true), full)

	// Without a fallback the client is told.
	p2 := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Stall), Delay: 5 * time.Second})
	e2 := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p2})
	a = e2.post("primary", true)
	wantIncomplete(t, a, "stalled")
	if a.text != fakeopenai.Answer(20) || a.took > 2*time.Second {
		t.Errorf("got %q after %s; want the 20 tokens, ended after the idle timeout", a.text, a.took)
	}
}

func TestFaultMalformedChunk(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Malformed)})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	wantComplete(t, e.post("primary", true), full) // the helper also fails on any malformed event forwarded
	if got := counter(t, e.g.metrics.malformed.WithLabelValues("primary")); got != 1 {
		t.Errorf("malformed events %v; want 1", got)
	}
	if ent := e.entry("primary", 0); ent.Status() != breaker.Healthy {
		t.Errorf("primary is %s; want healthy", ent.Status())
	}
}

func TestFaultNoDone(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.NoDone)})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	a := e.post("primary", true)
	wantComplete(t, a, full) // [DONE] written by the gateway
	if a.usage == nil || a.usage.CompletionTokens != 60 {
		t.Errorf("usage %+v; want it passed through", a.usage)
	}
	if a.took > time.Second {
		t.Errorf("took %s; want it finished promptly", a.took)
	}
	if got := counter(t, e.g.metrics.tokens.WithLabelValues("primary", "completion")); got != 60 {
		t.Errorf("completion tokens %v; want 60", got)
	}
	if ent := e.entry("primary", 0); ent.Status() != breaker.Healthy {
		t.Errorf("primary is %s; want healthy", ent.Status())
	}
}

const contextModels = `
model "primary" {
  endpoints        = ["{primary}"]
  timeout          = "1s"
  context_fallback = "long"
}
model "long" {
  endpoints = ["{long}"]
}
`

func TestFaultContextLength(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.ContextLength)})
	l := fake(t, fakeopenai.Options{})
	e := newEnv(t, contextModels, map[string]*fakeopenai.Server{"primary": p, "long": l})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if a.header.Get("X-Healproxy-Model") != "long" || a.header.Get("X-Healproxy-Fallback-From") != "primary" {
		t.Errorf("got headers %v", a.header)
	}
	if n := len(p.Requests()); n != 1 {
		t.Errorf("primary saw %d requests; want 1 (never retried)", n)
	}
	if f := e.fallbacks(); len(f) != 1 || f[0].Reason != ReasonContextLength {
		t.Errorf("fallback events %+v", f)
	}
	if ent := e.entry("primary", 0); ent.Status() != breaker.Unknown {
		t.Errorf("primary is %s; want unknown (a 400 counts for nothing)", ent.Status())
	}

	// Without context_fallback: the 400 as it is.
	p2 := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.ContextLength)})
	e2 := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p2})
	a = e2.post("primary", true)
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "context_length_exceeded") || len(p2.Requests()) != 1 {
		t.Errorf("got %d %s after %d requests; want the 400 after 1", a.status, a.body, len(p2.Requests()))
	}
}

func TestFaultContentFilter(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.ContentFilter)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "rejected as a result of our safety system") {
		t.Errorf("got %d %s; want the provider's 400 and its reason", a.status, a.body)
	}
	if n, nb := len(p.Requests()), len(b.Requests()); n != 1 || nb != 0 {
		t.Errorf("primary saw %d, fallback %d requests; want 1 and 0", n, nb)
	}
	if st := e.entry("primary", 0).Export(); st.ErrorCount != 0 || st.SuccessCount != 0 {
		t.Errorf("a content-policy refusal was counted: %+v", st)
	}
}

func TestFaultFallbackRejectsPrefill(t *testing.T) {
	const models = `
model "primary" {
  endpoints = ["{primary}"]
  timeout   = "1s"
  fallback  = "backup"
}
model "backup" {
  endpoints = ["{backup}"]
  prefill   = true   # it says so, but its server refuses a prefill
}
`
	t.Run("the replay recovers", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
		b := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.RejectPrefill)})
		e := newEnv(t, models, map[string]*fakeopenai.Server{"primary": p, "backup": b})
		wantComplete(t, e.post("primary", true), full)
		breqs := b.Requests()
		if len(breqs) != 2 || breqs[0].LastRole != "assistant" || breqs[1].LastRole != "user" {
			t.Errorf("fallback requests %+v; want the refused continuation, then a replay", breqs)
		}
		if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayReplay)); got != 1 {
			t.Errorf("replay recoveries %v; want 1", got)
		}
	})
	t.Run("nothing recovers: the original break is reported, not the refusal", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
		b := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.RejectPrefill), Word: "w"}) // another answer
		e := newEnv(t, models, map[string]*fakeopenai.Server{"primary": p, "backup": b})
		a := e.post("primary", true)
		wantIncomplete(t, a, "cut")
		if msg := a.errEvent.Error.Message; strings.Contains(msg, "prefill") || strings.Contains(msg, "400") {
			t.Errorf("the error event reports the refusal: %q", msg)
		}
		if a.text != fakeopenai.Answer(40) {
			t.Errorf("got %q; want only the 40 tokens of the primary (nothing of a different replay)", a.text)
		}
		if got := counter(t, e.g.metrics.recoveries.WithLabelValues("primary", WayFailed)); got != 1 {
			t.Errorf("failed recoveries %v; want 1", got)
		}
	})
}

func TestFaultFlap(t *testing.T) {
	const models = `
model "primary" {
  endpoints = ["{primary}"]
  timeout   = "1s"
  fallback  = "backup"
  health {
    error_threshold        = 2
    cooldown               = "150ms"
    cooldown_multiplier    = 1
    success_recovery_count = 1
  }
}
model "backup" {
  endpoints = ["{backup}"]
}
`
	p := fake(t, fakeopenai.Options{Script: fakeopenai.During(400*time.Millisecond, fakeopenai.Overloaded)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, models, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	var answeredBy []string
	sawUnavailable := false
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 60 && time.Now().Before(deadline); i++ {
		a := e.post("primary", true)
		wantComplete(t, a, full)
		answeredBy = append(answeredBy, a.header.Get("X-Healproxy-Model"))
		if e.entry("primary", 0).Status() == breaker.Unavailable {
			sawUnavailable = true
		}
		if len(answeredBy) >= 3 && answeredBy[len(answeredBy)-1] == "primary" && answeredBy[len(answeredBy)-2] == "primary" {
			break
		}
		time.Sleep(40 * time.Millisecond) // the requests' pace, as the benchmark's sequence
	}
	if !sawUnavailable {
		t.Error("the primary never became unavailable while it failed")
	}
	if answeredBy[0] != "backup" || answeredBy[len(answeredBy)-1] != "primary" {
		t.Errorf("answered by %v; want the fallback during the outage, the primary after it", answeredBy)
	}
	if s := e.entry("primary", 0).Status(); s != breaker.Healthy {
		t.Errorf("primary is %s after recovering; want healthy", s)
	}
	// While it was unavailable, it was not sent requests: at most two per
	// call until it tripped, then one trial per cooldown.
	if n := len(p.Requests()); n > 2*2+8 {
		t.Errorf("primary saw %d requests; want it spared while unavailable", n)
	}
}

func TestFaultFailoverAccounting(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Overloaded)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.post("primary", true)
	wantComplete(t, a, full)
	if a.model != "fb-ok" || a.header.Get("X-Healproxy-Model") != "backup" || a.header.Get("X-Healproxy-Fallback-From") != "primary" {
		t.Errorf("got model %q, headers %v; want the fallback's own model name", a.model, a.header)
	}
	if a.usage == nil || a.usage.CompletionTokens != 60 {
		t.Errorf("usage %+v; want the fallback's", a.usage)
	}
	if got := counter(t, e.g.metrics.tokens.WithLabelValues("backup", "completion")); got != 60 {
		t.Errorf("backup completion tokens %v; want 60", got)
	}
	if got := counter(t, e.g.metrics.tokens.WithLabelValues("primary", "completion")); got != 0 {
		t.Errorf("primary completion tokens %v; want 0 (failed attempts are not completions)", got)
	}
	if n := len(p.Requests()); n > 6 {
		t.Errorf("primary saw %d requests; want at most 6", n)
	}
	// Non-streamed, the same.
	a = e.post("primary", false)
	if a.status != http.StatusOK || a.text != full || a.model != "fb-ok" || a.usage == nil {
		t.Errorf("non-streamed: got %d %q model %q usage %+v", a.status, a.text, a.model, a.usage)
	}
}
