package api

import "time"

// Operator is an operator's action in force on an upstream: a drain or a
// forced open.
type Operator struct {
	Action string  `json:"action"` // "drain" or "force_open"
	Reason string  `json:"reason"`
	By     string  `json:"by,omitempty"`
	At     *string `json:"at,omitempty"`
	Until  *string `json:"until"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Reason string    `json:"reason,omitempty"`
	TTL    string    `json:"ttl,omitempty"`
	Result string    `json:"result"`
}

// FaultRequest is the body of POST /api/admin/fault.
type FaultRequest struct {
	Kind    string `json:"kind"`
	Status  int    `json:"status"`   // kind error: 400–599, default 503
	DelayMS int64  `json:"delay_ms"` // kind delay: > 0, at most the max TTL
	Percent *int   `json:"percent"`  // 1–100, default 100
	TTL     string `json:"ttl"`      // Go duration, default 30s, at most 10m
	Reason  string `json:"reason"`   // for the audit log; optional
}

// Fault is an injected fault in force, in diagnostics and in the fault
// endpoint's answers.
type Fault struct {
	Kind    string  `json:"kind"`
	Status  int     `json:"status,omitempty"`
	DelayMS int64   `json:"delay_ms,omitempty"`
	Percent int     `json:"percent"`
	Reason  string  `json:"reason,omitempty"`
	By      string  `json:"by"`
	At      *string `json:"at"`
	Until   *string `json:"until"`
}

// ReloadResult says what a config reload changed.
type ReloadResult struct {
	Added     []string `json:"added"`     // "provider ID" / "model KEY"
	Removed   []string `json:"removed"`   // idem
	Changed   []string `json:"changed"`   // rebuilt; upstreams with an unchanged URL kept their health
	Updated   []string `json:"updated"`   // settings applied in place (health settings, model timeout, …)
	Unchanged int      `json:"unchanged"` // entries that kept everything
	Warnings  []string `json:"warnings,omitempty"`
}
