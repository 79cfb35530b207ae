package provider

import (
	"errors"
	"net/http"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/balance"
	"github.com/healproxy/healproxy/internal/clientbody"
)

// balancer chooses among the upstreams of the best health rank (pick)
// when the provider balances otherwise than by plain round robin
// (README, "Balancing"): least_latency (peak EWMA, best of two) or
// weighted round robin. A provider with neither has none, and pick keeps
// its round robin.
type balancer struct {
	peak *balance.PeakEWMA       // least_latency; nil otherwise
	wrr  *balance.SmoothWeighted // weights; nil otherwise
	now  func() time.Time
}

// initBalance gives p its balancer, if its balance setting needs one. An
// upstream kept by a reload (keep) keeps its latency estimate.
func (p *Provider) initBalance(pc config.Provider, keep map[string]*Upstream) {
	switch {
	case pc.Balance == config.BalanceLeastLatency:
		now := time.Now()
		es := make([]*balance.EWMA, len(p.Upstreams))
		for i, u := range p.Upstreams {
			if old := keep[u.target.String()]; old != nil && old.ewma != nil {
				u.ewma = old.ewma
			} else {
				u.ewma = balance.NewEWMA(balance.Decay, now)
			}
			es[i] = u.ewma
		}
		p.balancer = &balancer{peak: balance.NewPeakEWMA(es), now: time.Now}
	case len(pc.Weights) > 0:
		w := make([]int, len(p.Upstreams)) // a missing weight counts as 1 (validation rejects a wrong count)
		copy(w, pc.Weights)
		p.balancer = &balancer{wrr: balance.NewSmoothWeighted(w), now: time.Now}
	}
}

// choose is the upstream to try among set, the upstreams of the best
// rank (bit i: upstream i), which holds at least two.
func (b *balancer) choose(set uint64) int {
	if b.peak != nil {
		return b.peak.Pick(set, b.now())
	}
	return b.wrr.Pick(set)
}

// observeLatency ends u's request in flight (least_latency), learning its
// latency: an answer's own; for an upstream failure without an answer
// (refused, reset, timed out) the provider's timeout, so that an upstream
// that fails fast does not look fast; nothing when the failure was not
// the upstream's (the client's body or leaving, the proxy's resources).
func (t *providerTransport) observeLatency(u *Upstream, req *http.Request, cb *clientbody.Body, rtErr error, latency time.Duration) {
	var mbe *http.MaxBytesError
	switch {
	case rtErr == nil:
		u.ewma.Observe(latency, t.p.balancer.now())
	case req.Context().Err() != nil || cb.Fault() != nil || errors.As(rtErr, &mbe) || clientbody.LocalResource(rtErr):
		u.ewma.End()
	default:
		u.ewma.Observe(max(latency, t.p.timeout), t.p.balancer.now())
	}
}

// Latency is u's latency estimate for least_latency balancing (peak
// EWMA, decayed to now) and its requests in flight; ok is false when the
// provider does not balance by latency.
func (u *Upstream) Latency() (ewma time.Duration, inFlight int64, ok bool) {
	if u.ewma == nil {
		return 0, 0, false
	}
	return u.ewma.Latency(time.Now()), u.ewma.InFlight(), true
}
