package config

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/hclx"
)

// This file builds the routing settings of routing.go from a file: the
// trip rule of a health block, and a provider's balance, weights,
// coalesce and the blocks outlier_detection, hedge and quota.

// tripRule applies the trip settings of the health block fh over h, which
// holds the inherited ones.
func (b *builder) tripRule(fh *fileHealth, h *Health) {
	if fh.Trip != nil && b.Decoded(fh.TripRange) {
		switch t := *fh.Trip; t {
		case TripCount, TripRate:
			if t != h.TripRule {
				h.TripRule, h.FailureRate, h.MinRequests, h.Window = t, 0, 0, 0
			}
		default:
			b.Errorf(fh.TripRange, "Invalid trip", "%s is not a trip rule; want %q (error_threshold failures in a row, the default) or %q (failure_rate of at least min_requests calls within window).%s",
				hclx.Quote(t), TripCount, TripRate, hclx.Suggest(t, []string{TripCount, TripRate}))
			return
		}
	}
	rate, d := hclx.Float(fh.FailureRate, b.Ectx, "failure_rate", "a share of calls above 0 and at most 1, such as 0.5",
		func(f float64) bool { return f > 0 && f <= 1 })
	b.Add(d)
	minReq, d := hclx.Int(fh.MinRequests, b.Ectx, "min_requests", 1)
	b.Add(d)
	window, _ := b.DurationIn(fh.Window, fh.WindowRange, "window", true, MinTripWindow, 0)
	if h.TripRule != TripRate {
		for _, set := range []struct {
			on   bool
			name string
			rng  hcl.Range
		}{{rate != nil, "failure_rate", exprRange(fh.FailureRate)}, {minReq != nil, "min_requests", exprRange(fh.MinRequests)}, {window != nil, "window", fh.WindowRange}} {
			if set.on {
				b.Errorf(set.rng, "Unused "+set.name, "%s applies to the rate rule only; add trip = %q to this health block, or remove %s.", set.name, TripRate, set.name)
			}
		}
		return
	}
	if rate != nil {
		h.FailureRate = *rate
	}
	if minReq != nil {
		h.MinRequests = *minReq
	}
	if window != nil {
		h.Window = *window
	}
}

func exprRange(e hcl.Expression) hcl.Range {
	if e == nil {
		return hcl.Range{}
	}
	return e.Range()
}

// routing fills p's routing settings from fp. p.Upstreams is already set.
func (b *builder) routing(fp *fileProvider, p *Provider) {
	if fp.Balance != nil && b.Decoded(fp.BalanceRange) {
		switch v := *fp.Balance; v {
		case BalanceRoundRobin, BalanceLeastLatency:
			p.Balance = v
		default:
			b.Errorf(fp.BalanceRange, "Invalid balance", "%s is not a balancing policy; want %q (the default) or %q.%s",
				hclx.Quote(v), BalanceRoundRobin, BalanceLeastLatency, hclx.Suggest(v, []string{BalanceRoundRobin, BalanceLeastLatency}))
		}
	}
	items, present, d := hclx.IntList(fp.Weights, b.Ectx, "weights", 1, MaxWeight)
	b.Add(d)
	if present && !d.HasErrors() {
		switch {
		case p.Balance == BalanceLeastLatency:
			b.Errorf(fp.Weights.Range(), "Unused weights", "weights apply to balance = %q only; least_latency weighs upstreams by their latency.", BalanceRoundRobin)
		case len(p.Upstreams) > 0 && len(items) != len(p.Upstreams):
			b.Errorf(fp.Weights.Range(), "Invalid weights", "weights lists %d numbers for %d upstreams; give one weight per upstream, in their order.", len(items), len(p.Upstreams))
		default:
			for _, it := range items {
				p.Weights = append(p.Weights, it.Value)
			}
		}
	}
	if fp.Coalesce != nil {
		p.Coalesce = *fp.Coalesce
	}
	if fo := fp.OutlierDetection; fo != nil {
		p.OutlierDetection = routecfg.BuildOutlier(b.Builder, fo)
	}
	if fh := fp.Hedge; fh != nil {
		p.Hedge = routecfg.BuildHedge(b.Builder, fh)
	}
	if fq := fp.Quota; fq != nil {
		p.Quota = routecfg.BuildQuota(b.Builder, fq)
	}
}

// MaxWeight bounds one upstream's round robin weight.
const MaxWeight = 1000
