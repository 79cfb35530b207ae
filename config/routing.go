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

// Defaults of the trip rule (the other routing blocks' are in
// config/routecfg).
const (
	DefaultFailureRate = 0.5
	DefaultMinRequests = 20
	DefaultTripWindow  = 30 * time.Second
	MinTripWindow      = time.Second
)

// normalizeRouting fills p's routing settings (normalize.go).
func (p *Provider) normalizeRouting() {
	if p.OutlierDetection != nil {
		p.OutlierDetection.Normalize()
	}
	if p.Hedge != nil {
		p.Hedge.Normalize()
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
