package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/internal/hclx"
)

// This file builds the routing settings of routing.go from a file: the
// trip rule of a health block, and a provider's balance, weights,
// coalesce and the blocks outlier_detection, hedge and quota.

type fileOutlier struct {
	Interval           *string        `hcl:"interval,optional"`
	IntervalRange      hcl.Range      `hcl:"interval,attr_value_range"`
	MinRequests        hcl.Expression `hcl:"min_requests,optional"`
	FailurePercentage  hcl.Expression `hcl:"failure_percentage,optional"`
	SuccessRateStdev   hcl.Expression `hcl:"success_rate_stdev,optional"`
	LatencyFactor      hcl.Expression `hcl:"latency_factor,optional"`
	MaxEjectionPercent hcl.Expression `hcl:"max_ejection_percent,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileHedge struct {
	After       *string        `hcl:"after,optional"`
	AfterRange  hcl.Range      `hcl:"after,attr_value_range"`
	MaxExtra    hcl.Expression `hcl:"max_extra,optional"`
	Window      *string        `hcl:"window,optional"`
	WindowRange hcl.Range      `hcl:"window,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileQuota struct {
	Reserve     hcl.Expression `hcl:"reserve,optional"`
	WeightLimit hcl.Expression `hcl:"weight_limit,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

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
		p.OutlierDetection = b.outlier(fo)
	}
	if fh := fp.Hedge; fh != nil {
		p.Hedge = b.hedge(fh)
	}
	if fq := fp.Quota; fq != nil {
		p.Quota = b.quota(fq)
	}
}

// MaxWeight bounds one upstream's round robin weight.
const MaxWeight = 1000

func (b *builder) outlier(fo *fileOutlier) *OutlierDetection {
	o := &OutlierDetection{
		FailurePercentage:  DefaultOutlierFailurePercentage,
		SuccessRateStdev:   DefaultOutlierSuccessRateStdev,
		LatencyFactor:      DefaultOutlierLatencyFactor,
		MaxEjectionPercent: DefaultOutlierMaxEjectionPercent,
	}
	if d, _ := b.DurationIn(fo.Interval, fo.IntervalRange, "interval", true, MinOutlierInterval, 0); d != nil {
		o.Interval = *d
	}
	b.IntTo(&o.MinRequests, fo.MinRequests, "min_requests", 1, hclx.MaxInt)
	b.IntTo(&o.MaxEjectionPercent, fo.MaxEjectionPercent, "max_ejection_percent", 0, 100)
	b.FloatTo(&o.FailurePercentage, fo.FailurePercentage, "failure_percentage", "a percentage from 0 (off) to 100", func(f float64) bool { return f >= 0 && f <= 100 })
	b.FloatTo(&o.SuccessRateStdev, fo.SuccessRateStdev, "success_rate_stdev", "a number of standard deviations, 0 (off) or more", func(f float64) bool { return f >= 0 })
	b.FloatTo(&o.LatencyFactor, fo.LatencyFactor, "latency_factor", "0 (off) or a factor above 1, such as 3", func(f float64) bool { return f == 0 || f > 1 })
	if o.FailurePercentage == 0 && o.SuccessRateStdev == 0 && o.LatencyFactor == 0 {
		b.Errorf(fo.DefRange, "No outlier rule", "failure_percentage, success_rate_stdev and latency_factor are all 0: nothing would be ejected; leave one on, or remove the block.")
	}
	return o
}

func (b *builder) hedge(fh *fileHedge) *Hedge {
	h := &Hedge{}
	if fh.After != nil && b.Decoded(fh.AfterRange) {
		if pct, ok := percentileName(*fh.After); ok {
			h.AfterPercentile = pct
		} else if d, err := time.ParseDuration(*fh.After); err == nil && d > 0 {
			h.After = d
		} else {
			b.Errorf(fh.AfterRange, "Invalid after", "%s is neither a percentile of recent latencies such as \"p95\" nor a duration > 0 such as \"200ms\".", hclx.Quote(*fh.After))
		}
	}
	b.FloatTo(&h.MaxExtra, fh.MaxExtra, "max_extra", "a share of requests above 0 and at most 1, such as 0.1", func(f float64) bool { return f > 0 && f <= 1 })
	if d, _ := b.DurationIn(fh.Window, fh.WindowRange, "window", true, time.Second, 0); d != nil {
		h.Window = *d
	}
	return h
}

// percentileName reads "p95" or "p99.9" as 0.95 or 0.999.
func percentileName(s string) (float64, bool) {
	if len(s) < 2 || s[0] != 'p' {
		return 0, false
	}
	var f float64
	if _, err := fmt.Sscanf(s[1:], "%g", &f); err != nil || f <= 0 || f >= 100 || fmt.Sprint(f) != s[1:] {
		return 0, false
	}
	return f / 100, true
}

func (b *builder) quota(fq *fileQuota) *Quota {
	q := &Quota{Reserve: DefaultQuotaReserve}
	b.FloatTo(&q.Reserve, fq.Reserve, "reserve", "a share of the quota from 0 to below 1, such as 0.05", func(f float64) bool { return f >= 0 && f < 1 })
	b.IntTo(&q.WeightLimit, fq.WeightLimit, "weight_limit", 1, hclx.MaxInt)
	return q
}
