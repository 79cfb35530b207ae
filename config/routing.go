package config

import "time"

// This file holds a provider's routing settings: how it trips an upstream
// on a failure rate, ejects outliers against their peers, balances,
// hedges, coalesces and steers by announced quotas (README, "Routing").
// All are off by default: a provider without them behaves as before.

// Trip rules of a health block.
const (
	TripCount = "count" // the default ("" too): T failures in a row (docs/behaviour.md)
	TripRate  = "rate"  // FailureRate of at least MinRequests calls within Window
)

// Balancing policies.
const (
	BalanceRoundRobin   = "round_robin"   // the default ("" too); Weights make it weighted
	BalanceLeastLatency = "least_latency" // peak EWMA × in flight, best of two random
)

// Defaults of the routing settings.
const (
	DefaultFailureRate = 0.5
	DefaultMinRequests = 20
	DefaultTripWindow  = 30 * time.Second
	MinTripWindow      = time.Second

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

func (o *OutlierDetection) normalize() {
	fill(&o.Interval, DefaultOutlierInterval)
	fill(&o.MinRequests, DefaultOutlierMinRequests)
}

func (h *Hedge) normalize() {
	if h.After == 0 {
		fill(&h.AfterPercentile, DefaultHedgePercentile)
	}
	fill(&h.MaxExtra, DefaultHedgeMaxExtra)
	fill(&h.Window, DefaultHedgeWindow)
}

// normalizeRouting fills p's routing settings (normalize.go).
func (p *Provider) normalizeRouting() {
	if p.OutlierDetection != nil {
		p.OutlierDetection.normalize()
	}
	if p.Hedge != nil {
		p.Hedge.normalize()
	}
}

// normalizeTrip fills h's trip rule settings.
func (h *Health) normalizeTrip() {
	if h.TripRule == TripRate {
		fill(&h.FailureRate, DefaultFailureRate)
		fill(&h.MinRequests, DefaultMinRequests)
		fill(&h.Window, DefaultTripWindow)
	}
}
