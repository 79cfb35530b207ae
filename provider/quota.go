package provider

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/quota"
)

// Rate-limit steering (README, "Rate-limit steering"): with a quota
// block, the quota headers of every answer but a 429 are read
// (internal/quota). At or below the reserve the upstream ranks after its
// healthy peers until the quota resets, as a degraded one does, with no
// change of health; with none left it is paused until the reset (capped
// by max_rate_limit_pause), as a 429 with Retry-After pauses it, so its
// peers take the traffic, or with no peer the client gets 503 with
// Retry-After from the proxy rather than a 429 from the upstream.

// upstreamQuota is one upstream's quota tracker and its steering counter.
type upstreamQuota struct {
	*quota.Tracker
	steered prometheus.Counter
}

// quotaMetrics are the metrics of rate-limit steering.
type quotaMetrics struct {
	steered *prometheus.CounterVec
}

// newQuotaMetrics makes the quota metrics and registers them on reg.
func newQuotaMetrics(reg prometheus.Registerer) *quotaMetrics {
	qm := &quotaMetrics{
		steered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_quota_steered_total",
			Help: "Times an upstream's announced rate-limit quota fell to the reserve (or to none left) and traffic was steered to its peers until the quota resets.",
		}, []string{"provider", "upstream"}),
	}
	reg.MustRegister(qm.steered)
	return qm
}

// forget drops the series matching l (Metrics.Forget).
func (qm *quotaMetrics) forget(l prometheus.Labels) {
	qm.steered.DeletePartialMatch(l)
}

// initQuota gives p's upstreams their quota trackers, if p has a quota
// block.
func (p *Provider) initQuota(pc config.Provider) {
	if pc.Quota == nil {
		return
	}
	p.quotaClock = time.Now
	for _, u := range p.Upstreams {
		u.quota = &upstreamQuota{Tracker: quota.NewTracker(*pc.Quota),
			steered: p.m.quota.steered.WithLabelValues(p.ID, u.Display)}
	}
}

// observeQuota reads the quota announced in an answer of u (never a 429:
// its pause is retry.RateLimitPause's) and steers or pauses u by it.
func (p *Provider) observeQuota(u *Upstream, h http.Header) {
	now := p.quotaClock()
	d, ok := u.quota.Observe(h, now)
	if !ok || !d.Steer {
		return
	}
	if d.Started {
		u.quota.steered.Inc()
	}
	if d.Pause {
		wait := min(d.Until.Sub(now), p.maxPause)
		u.Health.Pause(time.Now().Add(wait), "quota exhausted: "+d.Reason)
	}
}

// steered: u's quota is low, so its healthy peers come first (pick).
func (p *Provider) steered(u *Upstream) bool {
	return u.quota != nil && u.quota.Steering(p.quotaClock)
}

// Quota is the rate-limit quota u last announced, with whether it steers
// traffic to u's peers now; ok is false when the provider has no quota
// block or u announced none yet.
func (u *Upstream) Quota() (quota.Snapshot, bool) {
	if u.quota == nil {
		return quota.Snapshot{}, false
	}
	return u.quota.Snapshot(u.provider.quotaClock())
}
