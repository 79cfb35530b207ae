package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/healproxy/healproxy/internal/hclx"
)

// This file builds a provider's resilience settings (mode,
// slow_call_threshold, max_rate_limit_pause and the blocks health_check,
// retry, cache and all_down) and checks the cooldown backoff of the health
// blocks. The default values are the constants of config.go.

// The default* blocks are what a file that leaves a block's settings out
// gets: the defaults of the settings whose zero means something (see
// Normalize), then Normalize's.

func defaultHealthCheck() *HealthCheck {
	hc := &HealthCheck{}
	hc.normalize()
	return hc
}

// defaultRetry is the retry policy of a provider with upstreams upstreams.
func defaultRetry(upstreams int) Retry {
	r := Retry{Backoff: DefaultRetryBackoff, MaxBackoff: DefaultRetryMaxBackoff}
	r.normalize(upstreams)
	return r
}

func defaultCache() *Cache {
	c := &Cache{}
	c.normalize()
	return c
}

func defaultAllDown() AllDown {
	a := AllDown{Wait: DefaultAllDownWait}
	a.normalize()
	return a
}

// resilience fills p's resilience settings from fp. p.Upstreams is already
// set.
func (b *builder) resilience(fp *fileProvider, p *Provider) {
	if fp.Mode != nil && b.Decoded(fp.ModeRange) {
		switch m := *fp.Mode; m {
		case ModeEnforce, ModeObserve:
			p.Mode = m
		default:
			modes := []string{ModeEnforce, ModeObserve}
			b.Errorf(fp.ModeRange, "Invalid mode",
				"%s is not a mode; want %q (the default: unavailable upstreams get no traffic) or %q (track health, metrics and alerts, never block a request).%s",
				hclx.Quote(m), ModeEnforce, ModeObserve, hclx.Suggest(m, modes))
		}
	}

	maxReq := int(DefaultMaxRequestBody)
	b.IntTo(&maxReq, fp.MaxRequestBody, "max_request_body", 1, hclx.MaxInt)
	p.MaxRequestBody = int64(maxReq)
	p.SlowCallThreshold = DefaultSlowCallThreshold
	if d, _ := b.DurationIn(fp.SlowCallThreshold, fp.SlowCallThresholdRange, "slow_call_threshold", false, 0, 0); d != nil {
		p.SlowCallThreshold = *d
	}
	if d, _ := b.DurationIn(fp.MaxRateLimitPause, fp.MaxRateLimitPauseRange, "max_rate_limit_pause", true, 0, 0); d != nil {
		p.MaxRateLimitPause = *d
	}

	if fp.HealthCheck != nil {
		p.HealthCheck = b.healthCheck(fp.HealthCheck)
	}
	p.Retry = b.retry(fp.Retry, len(p.Upstreams))
	if fp.Cache != nil {
		p.Cache = b.cache(fp.Cache)
	}
	p.AllDown = b.allDown(fp.AllDown, fp.ID, p.Upstreams)
}

func (b *builder) healthCheck(fh *fileHealthCheck) *HealthCheck {
	hc := defaultHealthCheck()
	if fh.Path != nil && b.Decoded(fh.PathRange) {
		if problem := checkProbePath(*fh.Path); problem != "" {
			b.Errorf(fh.PathRange, "Invalid path", "%s: %s.", hclx.Quote(*fh.Path), problem)
		} else {
			hc.Path = *fh.Path
		}
	}

	interval, intervalBad := b.DurationIn(fh.Interval, fh.IntervalRange, "interval", true, MinHealthCheckInterval, 0)
	if interval != nil {
		hc.Interval = *interval
	}
	timeout, timeoutBad := b.DurationIn(fh.Timeout, fh.TimeoutRange, "timeout", true, 0, 0)
	if timeout != nil {
		hc.Timeout = *timeout
	}
	if !intervalBad && !timeoutBad && hc.Timeout > hc.Interval {
		switch {
		case timeout != nil:
			b.Errorf(fh.TimeoutRange, "Invalid timeout",
				"The probe timeout %s is longer than the interval %s (%s); it must be at most the interval.",
				hc.Timeout, hc.Interval, setAt(fh.IntervalRange, interval != nil))
		case interval != nil:
			b.Errorf(fh.IntervalRange, "Invalid interval",
				"The interval %s is shorter than the probe timeout %s (the default); set timeout to at most the interval.",
				hc.Interval, hc.Timeout)
		}
	}

	items, present, d := hclx.IntList(fh.ExpectStatus, b.Ectx, "expect_status", 100, 599)
	b.Add(d)
	if present {
		hc.ExpectStatus = nil
		if len(items) == 0 && !d.HasErrors() {
			b.Errorf(fh.ExpectStatus.Range(), "Empty expect_status",
				"expect_status lists no status; list one or more such as [200, 204], or leave it out for [200].")
		}
		for _, it := range items {
			if slices.Contains(hc.ExpectStatus, it.Value) {
				b.Errorf(it.Range, "Duplicate status", "expect_status[%d]: %d is already listed.", it.Index, it.Value)
				continue
			}
			hc.ExpectStatus = append(hc.ExpectStatus, it.Value)
		}
	}
	return hc
}

// checkProbePath returns "" when p is an acceptable health-check path (it
// is joined to each upstream's base path), else the problem.
func checkProbePath(p string) string {
	u, err := url.Parse(p)
	unescaped, uerr := url.PathUnescape(p)
	switch {
	case !strings.HasPrefix(p, "/"):
		return `want a path starting with "/" such as "/ping"`
	case strings.HasPrefix(p, "//"):
		return `the path must not start with "//"`
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "the path must not contain spaces or control characters"
	case strings.Contains(p, "#"):
		return "the path must not have a #fragment"
	case err != nil || uerr != nil || u.Host != "" || u.Scheme != "":
		return "not a valid URL path"
	case strings.Contains(p, "..") || strings.Contains(unescaped, ".."):
		return `the path must not contain ".."`
	}
	return ""
}

func (b *builder) retry(fr *fileRetry, upstreams int) Retry {
	r := defaultRetry(upstreams)
	if fr == nil {
		return r
	}
	b.IntTo(&r.Attempts, fr.Attempts, "attempts", 1, MaxRetryAttempts)
	b.IntTo(&r.MinRetries, fr.MinRetries, "min_retries", 0, hclx.MaxInt)

	backoff, backoffBad := b.DurationIn(fr.Backoff, fr.BackoffRange, "backoff", false, 0, 0)
	if backoff != nil {
		r.Backoff = *backoff
	}
	maxBackoff, maxBad := b.DurationIn(fr.MaxBackoff, fr.MaxBackoffRange, "max_backoff", false, 0, 0)
	if maxBackoff != nil {
		r.MaxBackoff = *maxBackoff
	}
	if !backoffBad && !maxBad && r.MaxBackoff < r.Backoff {
		switch {
		case maxBackoff != nil:
			b.Errorf(fr.MaxBackoffRange, "Invalid max_backoff",
				"max_backoff %s is less than backoff %s (%s); it must be at least the backoff.",
				r.MaxBackoff, r.Backoff, setAt(fr.BackoffRange, backoff != nil))
		case backoff != nil:
			b.Errorf(fr.BackoffRange, "Invalid backoff",
				"backoff %s is more than max_backoff %s (the default); set max_backoff to at least %s.",
				r.Backoff, r.MaxBackoff, r.Backoff)
		}
	}

	if items, present := b.distinctList(fr.On, "on", "retry condition",
		fmt.Sprintf("on lists no failure; list some of %s, or set attempts = 1 to turn retries off.", quoteList(RetryOnValues)),
		func(v string) string {
			if slices.Contains(RetryOnValues, v) {
				return ""
			}
			return fmt.Sprintf("%s is not a failure that can be retried; they are %s.%s", hclx.Quote(v), quoteList(RetryOnValues), hclx.Suggest(v, RetryOnValues))
		}); present {
		r.On = values(items)
	}

	if items, present := b.distinctList(fr.Methods, "methods", "retry method",
		"methods lists no method; list some such as [\"GET\", \"PUT\"], or set attempts = 1 to turn retries off.",
		checkMethod); present {
		r.Methods = values(items)
	}

	budget, d := hclx.Float(fr.Budget, b.Ectx, "budget", "a number greater than 0 and at most 1, such as 0.2 (20 %)",
		func(f float64) bool { return f > 0 && f <= 1 })
	b.Add(d)
	if budget != nil {
		r.Budget = *budget
	}
	if w, _ := b.DurationIn(fr.BudgetWindow, fr.BudgetWindowRange, "budget_window", true, MinRetryBudgetWindow, 0); w != nil {
		r.BudgetWindow = *w
	}
	return r
}

// checkMethod returns "" for an upper-case HTTP method name, else the
// problem.
func checkMethod(m string) string {
	switch {
	case !httpguts.ValidHeaderFieldName(m):
		return fmt.Sprintf(`%s is not an HTTP method name such as "GET".`, hclx.Quote(m))
	case strings.ToUpper(m) != m:
		return fmt.Sprintf("%s must be upper case (HTTP methods are case-sensitive). Did you mean %s?", hclx.Quote(m), hclx.Quote(strings.ToUpper(m)))
	}
	return ""
}

func (b *builder) cache(fc *fileCache) *Cache {
	c := defaultCache()
	if d, _ := b.DurationIn(fc.StaleIfError, fc.StaleIfErrorRange, "stale_if_error", true, 0, 0); d != nil {
		c.StaleIfError = *d
	}
	b.IntTo(&c.MaxEntries, fc.MaxEntries, "max_entries", 1, hclx.MaxInt)
	maxBody := int(c.MaxBodyBytes)
	b.IntTo(&maxBody, fc.MaxBody, "max_body", 1, hclx.MaxInt)
	c.MaxBodyBytes = int64(maxBody)
	return c
}

// allDown builds the all-down policy of provider id. An empty last_resort
// (typically env() of an unset variable) means none.
func (b *builder) allDown(fa *fileAllDown, id string, upstreams []*url.URL) AllDown {
	a := defaultAllDown()
	if fa == nil {
		return a
	}

	items, present := b.distinctList(fa.Order, "order", "all_down step",
		fmt.Sprintf(`order lists no step; list some of %s, or write ["fail"] to answer 503 at once.`, quoteList(AllDownSteps)),
		func(v string) string {
			if slices.Contains(AllDownSteps, v) {
				return ""
			}
			return fmt.Sprintf("%s is not a step; the steps are %s.%s", hclx.Quote(v), quoteList(AllDownSteps), hclx.Suggest(v, AllDownSteps))
		})
	if present {
		for i, it := range items {
			if it.Value == "fail" && i != len(items)-1 {
				b.Errorf(it.Range, "Invalid all_down step",
					`order[%d]: "fail" ends the chain, so it must be the last step (leave it out and it is implied at the end).`, it.Index)
			}
		}
		a.Order = values(items)
		if !slices.Contains(a.Order, "fail") {
			a.Order = append(a.Order, "fail")
		}
	}

	if fa.LastResort != nil && strings.TrimSpace(*fa.LastResort) != "" && b.Decoded(fa.LastResortRange) {
		// The URL is not echoed: like an upstream's, it may hold a secret.
		u, problem := parseUpstream(*fa.LastResort)
		switch {
		case problem != "":
			b.Errorf(fa.LastResortRange, "Invalid last_resort URL", "Provider %s: last_resort: %s.", hclx.Quote(id), problem)
		case slices.ContainsFunc(upstreams, func(up *url.URL) bool { return upstreamKey(up) == upstreamKey(u) }):
			b.Errorf(fa.LastResortRange, "Invalid last_resort URL",
				"Provider %s: last_resort is one of its upstreams; it must be another endpoint, used only when every upstream is out.", hclx.Quote(id))
		default:
			a.LastResort = u
		}
	}

	if w, _ := b.DurationIn(fa.Wait, fa.WaitRange, "wait", false, 0, MaxAllDownWait); w != nil {
		a.Wait = *w
	}
	return a
}

// distinctList evaluates an optional list of distinct strings, each
// accepted by check (which returns "" or the problem). It reports an empty
// list with emptyDetail, a rejected element as "Invalid "+what and a repeat
// as "Duplicate "+what, and returns the accepted elements and whether the
// list is present.
func (b *builder) distinctList(expr hcl.Expression, name, what, emptyDetail string, check func(string) string) ([]hclx.StringItem, bool) {
	items, present, d := hclx.StringList(expr, b.Ectx, name)
	b.Add(d)
	if !present {
		return nil, false
	}
	if len(items) == 0 && !d.HasErrors() {
		b.Errorf(expr.Range(), "Empty "+name, "%s", emptyDetail)
	}
	var out []hclx.StringItem
	for _, it := range items {
		if problem := check(it.Value); problem != "" {
			b.Errorf(it.Range, "Invalid "+what, "%s[%d]: %s", name, it.Index, problem)
			continue
		}
		if slices.ContainsFunc(out, func(o hclx.StringItem) bool { return o.Value == it.Value }) {
			b.Errorf(it.Range, "Duplicate "+what, "%s[%d]: %s is already listed.", name, it.Index, hclx.Quote(it.Value))
			continue
		}
		out = append(out, it)
	}
	return out, true
}

func values(items []hclx.StringItem) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.Value)
	}
	return out
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// setAt says where a value compared in a message came from: "set at
// FILE:LINE" when set (in the file, at rng), else "the default".
func setAt(rng hcl.Range, set bool) string {
	if !set {
		return "the default"
	}
	return fmt.Sprintf("set at %s:%d", rng.Filename, rng.Start.Line)
}

// cooldownOrigin tells where the Cooldown and MaxCooldown of a Health came
// from, so that MaxCooldown < Cooldown is reported once, at the value to
// blame, after the environment overrides.
type cooldownOrigin struct {
	cooldown, maxCooldown *hcl.Range // the file's value; nil: the default or the environment
	fromEnv               bool       // Cooldown is HEALTH_COOLDOWN_SECONDS
	cooldownBad, maxBad   bool       // set to a value already reported as invalid: not compared
}

// cooldownOrigin returns o updated by the health block fh, whose patch is p.
func (b *builder) cooldownOrigin(o cooldownOrigin, fh *fileHealth, p healthPatch) cooldownOrigin {
	switch {
	case p.Cooldown != nil:
		o.cooldown, o.fromEnv, o.cooldownBad = fh.CooldownRange.Ptr(), false, false
	case fh.Cooldown != nil || !b.Decoded(fh.CooldownRange):
		o.cooldownBad = true
	}
	switch {
	case p.MaxCooldown != nil:
		o.maxCooldown, o.maxBad = fh.MaxCooldownRange.Ptr(), false
	case fh.MaxCooldown != nil || !b.Decoded(fh.MaxCooldownRange):
		o.maxBad = true
	}
	return o
}

// entryHealth applies a provider's or model's health block over h, which
// holds the global values (whose origin is inherited), and checks the
// cooldowns when the block sets one of them.
func (b *builder) entryHealth(fh *fileHealth, h *Health, inherited cooldownOrigin) {
	p := b.healthPatch(fh)
	p.apply(h)
	b.tripRule(fh, h) // routingfile.go
	o := b.cooldownOrigin(inherited, fh, p)
	if p.Cooldown != nil || p.MaxCooldown != nil {
		// Blame the value this block sets; when it sets only the
		// cooldown, that is the cooldown.
		b.checkMaxCooldown(h, o, p.MaxCooldown == nil)
	}
}

// checkMaxCooldown handles h.MaxCooldown < h.Cooldown. When no
// max_cooldown is set, the default simply rises to the cooldown (a long
// cooldown is no mistake); when one is set, it is reported at max_cooldown
// (unless blameCooldown and the file sets the cooldown), else at cooldown.
func (b *builder) checkMaxCooldown(h *Health, o cooldownOrigin, blameCooldown bool) {
	if o.cooldownBad || o.maxBad || h.MaxCooldown >= h.Cooldown {
		return
	}
	if o.maxCooldown == nil {
		h.MaxCooldown = h.Cooldown
		return
	}
	cooldownFrom := "the default"
	switch {
	case o.cooldown != nil:
		cooldownFrom = setAt(*o.cooldown, true)
	case o.fromEnv:
		cooldownFrom = "from " + EnvCooldown
	}
	switch {
	case o.maxCooldown != nil && (!blameCooldown || o.cooldown == nil):
		b.Errorf(*o.maxCooldown, "Invalid max_cooldown",
			"max_cooldown %s is less than the cooldown %s (%s); it must be at least the cooldown.",
			h.MaxCooldown, h.Cooldown, cooldownFrom)
	case o.cooldown != nil:
		maxFrom := "the default"
		if o.maxCooldown != nil {
			maxFrom = setAt(*o.maxCooldown, true)
		}
		b.Errorf(*o.cooldown, "Invalid cooldown",
			"The cooldown %s is more than max_cooldown %s (%s); set max_cooldown to at least %s.",
			h.Cooldown, h.MaxCooldown, maxFrom, h.Cooldown)
	default:
		b.Diags = append(b.Diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary: fmt.Sprintf("%s=%s: more than max_cooldown", EnvCooldown,
				hclx.Quote(strconv.FormatInt(int64(h.Cooldown/time.Second), 10))),
			Detail: fmt.Sprintf("The cooldown %s is more than max_cooldown %s (the default); set max_cooldown in the health block to at least %s.",
				h.Cooldown, h.MaxCooldown, h.Cooldown),
		})
	}
}
