package api

import "time"

// Mark is one thing that happened to a health entry, as GET
// /api/diagnostics/history?kind=&key= lists them for the entry's
// timeline: a status change of the entry (Type "status"), or a fault
// injected into, cleared from or expired on one of its upstreams (Type
// "fault", "fault-clear", "fault-expired").
type Mark struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// Upstream is the upstream (or endpoint) it happened to; empty for a
	// plugin model.
	Upstream string `json:"upstream,omitempty"`
	// From and To are the entry's status before and after: for a
	// provider or endpoint model, its upstreams summed up. UpstreamFrom
	// and UpstreamTo are the upstream's own, which changed.
	From         string `json:"from,omitempty"`
	To           string `json:"to,omitempty"`
	UpstreamFrom string `json:"upstream_from,omitempty"`
	UpstreamTo   string `json:"upstream_to,omitempty"`
	// Reason is why: the upstream's reason after a status change, a
	// fault's kind and reason.
	Reason string `json:"reason,omitempty"`
	// By is who injected or cleared a fault.
	By string `json:"by,omitempty"`
	// Fault is the injected fault (Type "fault").
	Fault *Fault `json:"fault,omitempty"`
}

// FaultEvent is the data of one "fault" event of GET
// /api/diagnostics/events: a fault injected into a provider's upstream,
// cleared, or expired, and the provider's entry after it.
type FaultEvent struct {
	Kind  string   `json:"kind"` // "provider"
	Key   string   `json:"key"`  // the provider's id
	Mark  Mark     `json:"mark"`
	Entry Provider `json:"entry"`
}
