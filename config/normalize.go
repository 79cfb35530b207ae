package config

import "slices"

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
//   - Provider.MaxRequestBody 0 (only from code): no limit.
//   - Retry.Backoff 0: retry at once; Retry.MaxBackoff below Backoff
//     (0 included): Backoff.
//   - AllDown.Wait 0: no wait step.
//   - Alert.MinInterval 0: every event is sent.
//   - nil HealthCheck and Cache: none; an empty (not nil) list is kept.
func (c *Config) Normalize() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	c.Health.inherit(healthDefaults())
	for i := range c.Providers {
		c.Providers[i].normalize(c.Health)
	}
	for i := range c.Models {
		m := &c.Models[i]
		if m.Name == "" {
			m.Name = m.Key
		}
		if m.Timeout == 0 {
			m.Timeout = DefaultModelTimeout
		}
		m.Health.inherit(c.Health)
	}
	for i := range c.Alerts {
		if c.Alerts[i].On == nil {
			c.Alerts[i].On = slices.Clone(AlertEvents)
		}
	}
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
	if h.ErrorThreshold == 0 {
		h.ErrorThreshold = def.ErrorThreshold
	}
	if h.Cooldown == 0 {
		h.Cooldown = def.Cooldown
	}
	if h.RecoveryCount == 0 {
		h.RecoveryCount = def.RecoveryCount
	}
	if h.MaxConcurrentReinit == 0 {
		h.MaxConcurrentReinit = def.MaxConcurrentReinit
	}
}

func (p *Provider) normalize(global Health) {
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultProviderTimeout
	}
	p.Health.inherit(global)
	if p.Mode == "" {
		p.Mode = DefaultMode
	}
	if p.MaxRateLimitPause == 0 {
		p.MaxRateLimitPause = DefaultMaxRateLimitPause
	}
	if p.HealthCheck != nil {
		p.HealthCheck.normalize()
	}
	p.Retry.normalize(len(p.Upstreams))
	if p.Cache != nil {
		p.Cache.normalize()
	}
	p.AllDown.normalize()
}

func (a *AllDown) normalize() {
	if a.Order == nil {
		a.Order = slices.Clone(DefaultAllDownOrder)
	}
}

func (hc *HealthCheck) normalize() {
	if hc.Path == "" {
		hc.Path = DefaultHealthCheckPath
	}
	if hc.Interval == 0 {
		hc.Interval = DefaultHealthCheckInterval
	}
	if hc.Timeout == 0 {
		hc.Timeout = DefaultHealthCheckTimeout
	}
	if hc.ExpectStatus == nil {
		hc.ExpectStatus = slices.Clone(DefaultExpectStatus)
	}
}

// normalize fills r for a provider with upstreams upstreams.
func (r *Retry) normalize(upstreams int) {
	if r.Attempts == 0 {
		r.Attempts = min(max(1, upstreams), MaxRetryAttempts)
	}
	if r.On == nil {
		r.On = slices.Clone(DefaultRetryOn)
	}
	if r.Methods == nil {
		r.Methods = slices.Clone(DefaultRetryMethods)
	}
	if r.Budget == 0 {
		r.Budget = DefaultRetryBudget
	}
	if r.BudgetWindow == 0 {
		r.BudgetWindow = DefaultRetryBudgetWindow
	}
	// A file may say min_retries = 0, but the proxy has always taken a
	// zero for the default; kept so that behaviour does not change.
	if r.MinRetries == 0 {
		r.MinRetries = DefaultRetryMinRetries
	}
}

func (c *Cache) normalize() {
	if c.StaleIfError == 0 {
		c.StaleIfError = DefaultCacheStaleIfError
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultCacheMaxBodyBytes
	}
}
