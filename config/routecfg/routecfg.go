// Package routecfg builds a provider's routing blocks: outlier_detection
// (ejection against peers), hedge and quota (steering by announced
// rate-limit quotas). Package config calls the Build functions and
// Normalize; the README's "Routing" section documents the settings.
package routecfg

import (
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/internal/hclx"
)

// Defaults and bounds of the blocks.
const (
	DefaultOutlierInterval           = 10 * time.Second
	DefaultOutlierMinRequests        = 20
	DefaultOutlierFailurePercentage  = 50.0
	DefaultOutlierSuccessRateStdev   = 1.9
	DefaultOutlierLatencyFactor      = 3.0
	DefaultOutlierMaxEjectionPercent = 50
	MinOutlierInterval               = time.Second

	DefaultHedgePercentile = 0.95
	DefaultHedgeMaxExtra   = 0.1
	DefaultHedgeWindow     = 10 * time.Second
	MinHedgeWindow         = time.Second
	MaxHedgeWindow         = time.Minute // the budget counts whole seconds over at most 63

	DefaultQuotaReserve = 0.05
)

// OutlierDetection ejects an upstream that does much worse than its peers
// (block outlier_detection). A rule set to 0 is off; at least one is on.
type OutlierDetection struct {
	Interval time.Duration // how often the upstreams are compared; default 10s; >= 1s
	// MinRequests an upstream must have had in the last interval to be
	// judged or to count as a peer; default 20; >= 1.
	MinRequests int
	// FailurePercentage ejects an upstream whose failures in the interval
	// are at least this percentage of its requests; default 50; 0..100.
	FailurePercentage float64
	// SuccessRateStdev ejects an upstream whose success rate is more than
	// this many standard deviations below its peers' mean (with at least
	// three upstreams having MinRequests); default 1.9; >= 0.
	SuccessRateStdev float64
	// LatencyFactor ejects an upstream whose p90 latency exceeds this
	// factor times the median of its peers' p90; default 3; 0 or > 1.
	LatencyFactor float64
	// MaxEjectionPercent of a provider's upstreams may be ejected at once;
	// at least one always serves. Default 50; 0..100.
	MaxEjectionPercent int
}

// Hedge sends a second attempt of an idempotent request to another
// upstream when the first has not answered in time (block hedge).
type Hedge struct {
	// After is a fixed delay; when 0, the delay is the AfterPercentile of
	// the provider's recent latencies.
	After           time.Duration
	AfterPercentile float64 // after = "p95": 0.95; in (0, 1)
	// MaxExtra caps hedged attempts at this share of requests over
	// Window; default 0.1; 0 < MaxExtra <= 1.
	MaxExtra float64
	Window   time.Duration // default 10s
}

// Quota steers traffic away from an upstream whose announced rate-limit
// quota runs low, before it answers 429 (block quota).
type Quota struct {
	// Reserve is the share of the quota left at which the upstream's
	// peers are preferred until the quota resets; at 0 left it is paused.
	// Default 0.05; 0 <= Reserve < 1.
	Reserve float64
	// WeightLimit is the used-weight limit per minute that Binance's
	// X-MBX-USED-WEIGHT-1M counts against; 0: that header is not read.
	WeightLimit int
}

// Normalize fills o's zero settings that cannot be zero.
func (o *OutlierDetection) Normalize() {
	if o.Interval == 0 {
		o.Interval = DefaultOutlierInterval
	}
	if o.MinRequests == 0 {
		o.MinRequests = DefaultOutlierMinRequests
	}
}

// Normalize fills h's zero settings that cannot be zero.
func (h *Hedge) Normalize() {
	if h.After == 0 && h.AfterPercentile == 0 {
		h.AfterPercentile = DefaultHedgePercentile
	}
	if h.MaxExtra == 0 {
		h.MaxExtra = DefaultHedgeMaxExtra
	}
	if h.Window == 0 {
		h.Window = DefaultHedgeWindow
	}
}

// OutlierFile is the outlier_detection block as decoded (gohcl).
type OutlierFile struct {
	Interval           *string        `hcl:"interval,optional"`
	IntervalRange      hcl.Range      `hcl:"interval,attr_value_range"`
	MinRequests        hcl.Expression `hcl:"min_requests,optional"`
	FailurePercentage  hcl.Expression `hcl:"failure_percentage,optional"`
	SuccessRateStdev   hcl.Expression `hcl:"success_rate_stdev,optional"`
	LatencyFactor      hcl.Expression `hcl:"latency_factor,optional"`
	MaxEjectionPercent hcl.Expression `hcl:"max_ejection_percent,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// HedgeFile is the hedge block as decoded (gohcl).
type HedgeFile struct {
	After       *string        `hcl:"after,optional"`
	AfterRange  hcl.Range      `hcl:"after,attr_value_range"`
	MaxExtra    hcl.Expression `hcl:"max_extra,optional"`
	Window      *string        `hcl:"window,optional"`
	WindowRange hcl.Range      `hcl:"window,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

// QuotaFile is the quota block as decoded (gohcl).
type QuotaFile struct {
	Reserve     hcl.Expression `hcl:"reserve,optional"`
	WeightLimit hcl.Expression `hcl:"weight_limit,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// BuildOutlier builds an outlier_detection block; problems go to b.
func BuildOutlier(b *hclx.Builder, fo *OutlierFile) *OutlierDetection {
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

// BuildHedge builds a hedge block; problems go to b.
func BuildHedge(b *hclx.Builder, fh *HedgeFile) *Hedge {
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
	if d, _ := b.DurationIn(fh.Window, fh.WindowRange, "window", true, MinHedgeWindow, MaxHedgeWindow); d != nil {
		h.Window = *d
	}
	return h
}

// percentileName reads "p95" or "p99.9" as 0.95 or 0.999.
func percentileName(s string) (float64, bool) {
	if len(s) < 2 || s[0] != 'p' {
		return 0, false
	}
	num := s[1:]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f >= 100 || strconv.FormatFloat(f, 'f', -1, 64) != num {
		return 0, false
	}
	q, _ := strconv.ParseFloat(num+"e-2", 64) // 99.9e-2 is 0.999 exactly, where 99.9/100 is not
	return q, true
}

// BuildQuota builds a quota block; problems go to b.
func BuildQuota(b *hclx.Builder, fq *QuotaFile) *Quota {
	q := &Quota{Reserve: DefaultQuotaReserve}
	b.FloatTo(&q.Reserve, fq.Reserve, "reserve", "a share of the quota from 0 to below 1, such as 0.05", func(f float64) bool { return f >= 0 && f < 1 })
	b.IntTo(&q.WeightLimit, fq.WeightLimit, "weight_limit", 1, hclx.MaxInt)
	return q
}
