package api

// ReportRow is one entry of GET /api/diagnostics/report: its state now
// and its last hour.
type ReportRow struct {
	Kind          string     `json:"kind"`
	Key           string     `json:"key"`
	Upstream      string     `json:"upstream,omitempty"`
	Status        string     `json:"status"`
	Reason        string     `json:"reason"`
	ErrorCount    int64      `json:"error_count"`
	SuccessCount  int64      `json:"success_count"`
	LastSuccess   *string    `json:"last_success"`
	LastError     *string    `json:"last_error"`
	LastErrorMsg  *string    `json:"last_error_message"`
	CooldownUntil *string    `json:"cooldown_until"`
	LastHour      HourReport `json:"last_hour"`
}

// HourReport is an entry's last hour.
type HourReport struct {
	Requests        int64   `json:"requests"`
	Errors          int64   `json:"errors"`
	SuccessRate     float64 `json:"success_rate"` // 1 when there were no calls
	P50MS           float64 `json:"p50_latency_ms"`
	P95MS           float64 `json:"p95_latency_ms"`
	UnavailableSecs float64 `json:"unavailable_seconds"`
}
