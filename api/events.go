package api

import "time"

// StatusEvent is the data of one "status" event of GET
// /api/diagnostics/events.
type StatusEvent struct {
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Upstream string `json:"upstream,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
	Time     string `json:"time"`
	// Entry is the entry's new state: the provider entry (with all its
	// upstreams), a *Provider, or the model entry, a *Model, as in the
	// health document.
	Entry any `json:"entry"`
}

// History is GET /api/diagnostics/history.
type History struct {
	IntervalSeconds float64        `json:"interval_seconds"`
	Buckets         int            `json:"buckets"`
	Entries         []HistoryEntry `json:"entries"`
	// Marks are, with ?kind=&key=, that entry's recent status changes
	// and fault injections, oldest first (see Mark); absent otherwise.
	Marks []Mark `json:"marks,omitzero"`
}

// HistoryEntry is one entry's recent intervals, oldest first.
type HistoryEntry struct {
	Kind     string  `json:"kind"`
	Key      string  `json:"key"`
	Upstream string  `json:"upstream,omitempty"` // empty: the provider as a whole
	Points   []Point `json:"points"`
}

// Point is one interval of an entry's history.
type Point struct {
	Start     time.Time `json:"t"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	LatencyMS float64   `json:"latency_ms"` // mean over the interval's calls
}
