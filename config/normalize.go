package config

import (
	"fmt"
	"slices"
)

// Normalize fills every zero setting of c with its default, the one a file
// that leaves the setting out gets: Parse ends with it, and a Config built
// by hand (tests, embedders) must go through it before proxy.New. It is the
// only place the defaults of settings that cannot be zero are written.
// It changes no setting that is already set, and a second call changes
// nothing.
//
// A provider's or model's zero health settings take the (normalized)
// global ones, as a provider without a health block does in a file; a
// provider's zero Retry.Attempts is one try per upstream (at most
// MaxRetryAttempts).
//
// Some zero values mean something on purpose and are kept; the loader
// writes their defaults itself when a file leaves the setting out:
//
//   - Health.AutoReinit false: no re-initialisation; Health.ReinitCooldown
//     0: none between re-inits.
//   - Health.CooldownMultiplier 0 (like 1): the cooldown does not grow;
//     then MaxCooldown and StablePeriod 0 mean no cap and no reset.
//   - Provider.SlowCallThreshold 0: off.
//   - Health.TripRule "": the count rule; Provider.Balance "": round robin.
//   - nil OutlierDetection, Hedge and Quota: off (routing.go).
//   - Provider.MaxRequestBody 0 (only from code): no limit.
//   - Retry.Backoff 0: retry at once; Retry.MaxBackoff below Backoff
//     (0 included): Backoff.
//   - AllDown.Wait 0: no wait step.
//   - Alert.MinInterval 0: every event is sent.
//   - nil HealthCheck and Cache: none; an empty (not nil) list is kept.
//   - nil Tracing: off; Tracing.SampleRatio 0: only requests whose
//     caller sampled them are traced.
func (c *Config) Normalize() {
	fill(&c.Listen, DefaultListen)
	c.Health.inherit(healthDefaults())
	for i := range c.Providers {
		c.Providers[i].normalize(c.Health)
	}
	for i := range c.Models {
		m := &c.Models[i]
		fill(&m.Name, m.Key)
		fill(&m.Timeout, DefaultModelTimeout)
		m.Health.inherit(c.Health)
		m.normalizeEndpoints() // endpoints.go
	}
	for i := range c.Alerts {
		if c.Alerts[i].On == nil {
			c.Alerts[i].On = slices.Clone(AlertEvents)
		}
	}
	c.Tracing.Normalize()
}

// healthDefaults holds the defaults of the health settings that cannot be
// zero; the others are zero.
func healthDefaults() Health {
	return Health{
		ErrorThreshold:      DefaultErrorThreshold,
		Cooldown:            DefaultCooldown,
		RecoveryCount:       DefaultRecoveryCount,
		MaxConcurrentReinit: DefaultMaxConcurrentReinit,
	}
}

// inherit fills h's zero settings that cannot be zero from def.
func (h *Health) inherit(def Health) {
	fill(&h.ErrorThreshold, def.ErrorThreshold)
	fill(&h.Cooldown, def.Cooldown)
	fill(&h.RecoveryCount, def.RecoveryCount)
	fill(&h.MaxConcurrentReinit, def.MaxConcurrentReinit)
	if h.TripRule == "" {
		h.TripRule, h.FailureRate, h.MinRequests, h.Window = def.TripRule, def.FailureRate, def.MinRequests, def.Window
	}
	h.normalizeTrip()
}

func (p *Provider) normalize(global Health) {
	fill(&p.Name, p.ID)
	fill(&p.Timeout, DefaultProviderTimeout)
	p.Health.inherit(global)
	fill(&p.Mode, DefaultMode)
	fill(&p.MaxRateLimitPause, DefaultMaxRateLimitPause)
	if p.HealthCheck != nil {
		p.HealthCheck.normalize()
	}
	p.Retry.normalize(len(p.Upstreams))
	if p.Cache != nil {
		p.Cache.normalize()
	}
	p.AllDown.normalize()
	fill(&p.IdleTimeout, DefaultIdleTimeout)
	p.normalizeRouting()
}

func (a *AllDown) normalize() {
	if a.Order == nil {
		a.Order = slices.Clone(DefaultAllDownOrder)
	}
}

func (hc *HealthCheck) normalize() {
	fill(&hc.Path, DefaultHealthCheckPath)
	fill(&hc.Interval, DefaultHealthCheckInterval)
	fill(&hc.Timeout, DefaultHealthCheckTimeout)
	if hc.ExpectStatus == nil {
		hc.ExpectStatus = slices.Clone(DefaultExpectStatus)
	}
}

// normalize fills r for a provider with upstreams upstreams.
func (r *Retry) normalize(upstreams int) {
	fill(&r.Attempts, min(max(1, upstreams), MaxRetryAttempts))
	if r.On == nil {
		r.On = slices.Clone(DefaultRetryOn)
	}
	if r.Methods == nil {
		r.Methods = slices.Clone(DefaultRetryMethods)
	}
	fill(&r.Budget, DefaultRetryBudget)
	fill(&r.BudgetWindow, DefaultRetryBudgetWindow)
	// A file may say min_retries = 0, but the proxy has always taken a
	// zero for the default; kept so that behaviour does not change.
	fill(&r.MinRetries, DefaultRetryMinRetries)
}

func (c *Cache) normalize() {
	fill(&c.StaleIfError, DefaultCacheStaleIfError)
	fill(&c.MaxEntries, DefaultCacheMaxEntries)
	fill(&c.MaxBodyBytes, DefaultCacheMaxBodyBytes)
}

// CheckNormalized returns an error naming the first setting of c that
// Normalize would fill, or nil: a Config built by hand that skipped
// Normalize. Meaningful zero values (see Normalize) are not reported.
func (c *Config) CheckNormalized() error {
	for _, p := range c.Providers {
		if name := p.zeroSetting(); name != "" {
			return notNormalized("provider", p.ID, name)
		}
	}
	for _, m := range c.Models {
		if name := zeroSetting(m.Health, m.Timeout == 0); name != "" {
			return notNormalized("model", m.Key, name)
		}
	}
	return nil
}

func notNormalized(kind, id, setting string) error {
	return fmt.Errorf("%s %q: %s is zero; build the Config with config.Load or config.Parse, or call its Normalize method", kind, id, setting)
}

// zeroSetting names the first setting of p that Normalize would fill.
func (p *Provider) zeroSetting() string {
	r := p.Retry
	switch {
	case p.Mode == "":
		return "mode"
	case p.MaxRateLimitPause == 0:
		return "max_rate_limit_pause"
	case p.HealthCheck != nil && (p.HealthCheck.Interval == 0 || p.HealthCheck.Timeout == 0 || p.HealthCheck.ExpectStatus == nil):
		return "health_check.interval, timeout or expect_status"
	case r.Attempts == 0:
		return "retry.attempts"
	case r.On == nil || r.Methods == nil:
		return "retry.on or retry.methods"
	case r.Budget == 0 || r.BudgetWindow == 0 || r.MinRetries == 0:
		return "retry.budget, budget_window or min_retries"
	case p.Cache != nil && (p.Cache.StaleIfError == 0 || p.Cache.MaxEntries == 0 || p.Cache.MaxBodyBytes == 0):
		return "cache.stale_if_error, max_entries or max_body"
	case p.AllDown.Order == nil:
		return "all_down.order"
	}
	return zeroSetting(p.Health, p.Timeout == 0)
}

// zeroSetting names the first health setting of an entry (or its timeout)
// that Normalize would fill.
func zeroSetting(h Health, noTimeout bool) string {
	switch {
	case noTimeout:
		return "timeout"
	case h.ErrorThreshold == 0 || h.Cooldown == 0 || h.RecoveryCount == 0 || h.MaxConcurrentReinit == 0:
		return "health.error_threshold, cooldown, success_recovery_count or max_concurrent_reinit"
	}
	return ""
}

// fill sets *p to def when it is zero.
func fill[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
