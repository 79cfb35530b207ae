package api

import "time"

// Health is GET /api/diagnostics/health: every provider and model entry,
// their summaries and the replica that answered.
type Health struct {
	Status    string    `json:"status"`
	Timestamp string    `json:"timestamp"`
	Providers Providers `json:"providers"`
	Models    Models    `json:"models"`
	Overall   Overall   `json:"overall_health"`
	// Replica is the replica that answered; SharedState its link to the
	// other replicas (absent without state.redis).
	Replica     string       `json:"replica"`
	SharedState *SharedState `json:"shared_state,omitempty"`
	// Page is the query a page of the document was asked for with and
	// its counts (see HealthQuery); absent from the whole document.
	Page *HealthPage `json:"page,omitempty"`
}

// SharedState is the replica's link to the Redis holding the shared
// health state.
type SharedState struct {
	Backend   string     `json:"backend"` // "redis"
	URL       string     `json:"url"`     // redacted
	KeyPrefix string     `json:"key_prefix"`
	Connected bool       `json:"connected"`
	Since     time.Time  `json:"since"` // when Connected last changed
	LastError string     `json:"last_error,omitempty"`
	ErrorAt   *time.Time `json:"last_error_at,omitempty"`
	Published uint64     `json:"published"` // own changes written and published
	Applied   uint64     `json:"applied"`   // other replicas' changes applied here
	Dropped   uint64     `json:"dropped"`   // own changes dropped: queue full (pushed later by a resync)
	Errors    uint64     `json:"sync_errors"`
	Queued    int        `json:"queued"`
	// Mode is how Redis is reached: "single", "sentinel" or "cluster".
	Mode string `json:"mode,omitempty"`
	// Quorum is state.quorum: replicas that must trip an upstream within
	// its cooldown before the others apply the trip.
	Quorum    int    `json:"quorum,omitempty"`
	Votes     uint64 `json:"votes,omitempty"`     // own trips counted as votes
	Confirmed uint64 `json:"confirmed,omitempty"` // own votes that reached the quorum
	// UnconfirmedTrips are the upstreams this replica tripped that fewer
	// than Quorum replicas did: this replica may be the outlier.
	UnconfirmedTrips []UnconfirmedTrip `json:"unconfirmed_trips,omitempty"`
}

// UnconfirmedTrip is an upstream a replica tripped on its own, without
// the fleet's quorum: it cools down on that replica only.
type UnconfirmedTrip struct {
	Key           string    `json:"key"`      // the upstream's shared key (provider/<id>/<hash>)
	Upstream      string    `json:"upstream"` // its display URL
	Votes         int       `json:"votes"`    // replicas that tripped it within its cooldown, as last counted
	Quorum        int       `json:"quorum"`
	TrippedAt     time.Time `json:"tripped_at"`
	CooldownUntil time.Time `json:"cooldown_until"`
	// Message is "tripped locally, not confirmed by the fleet (1 of 2)".
	Message string `json:"message"`
}

// Providers is the health document's provider entries and their summary.
type Providers struct {
	Summary Summary    `json:"summary"`
	Entries []Provider `json:"entries"`
}

// Models is the health document's model entries and their summary.
type Models struct {
	Summary Summary `json:"summary"`
	Entries []Model `json:"entries"`
}

// Summary counts entries by status.
type Summary struct {
	Total       int `json:"total"`
	Healthy     int `json:"healthy"`
	Degraded    int `json:"degraded"`
	Unavailable int `json:"unavailable"`
	Unknown     int `json:"unknown"`
	InCooldown  int `json:"in_cooldown"`
}

// Overall is true for a kind while none of its entries is unavailable.
type Overall struct {
	ProvidersOK bool `json:"providers_ok"`
	ModelsOK    bool `json:"models_ok"`
}

// Entry is what every entry, provider, upstream or model, shows. Status
// is "unknown", "healthy", "degraded" or "unavailable".
type Entry struct {
	Status           string  `json:"status"`
	ErrorCount       int64   `json:"error_count"`
	SuccessCount     int64   `json:"success_count"`
	LastSuccess      *string `json:"last_success"`
	LastError        *string `json:"last_error"`
	LastErrorMessage *string `json:"last_error_message"`
	CooldownUntil    *string `json:"cooldown_until"`
	InCooldown       bool    `json:"in_cooldown"`
}

// Explain says why an upstream or model entry is in its status.
type Explain struct {
	Reason      string  `json:"reason"`
	NextTrialAt *string `json:"next_trial_at"`
	// PausedUntil: the backend rate limited us (Retry-After or
	// X-RateLimit-Reset) until then; reason starts with "rate_limited".
	PausedUntil    *string   `json:"paused_until"`
	LastProbe      *Probe    `json:"last_probe,omitempty"`
	Recovery       *Recovery `json:"recovery,omitempty"`
	RecentFailures []Failure `json:"recent_failures"` // newest first
	Settings       Settings  `json:"settings"`
}

// Probe is the latest active health check of an entry.
type Probe struct {
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	Failure *Failure  `json:"failure,omitempty"`
}

// Failure is one failed call (or probe) of an entry.
type Failure struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	StatusCode int       `json:"status_code,omitempty"` // e.g. the HTTP status, when there is one
	LatencyMS  float64   `json:"latency_ms"`
	Message    string    `json:"message"`
}

// Recovery is the progress of a half-open entry's recovery trials.
type Recovery struct {
	TrialSuccesses int `json:"trial_successes"`
	TrialsNeeded   int `json:"trials_needed"`
}

// Settings are an entry's health settings.
type Settings struct {
	ErrorThreshold  int     `json:"error_threshold"`
	DegradedAt      int     `json:"degraded_at"`
	CooldownSeconds float64 `json:"cooldown_seconds"`
	RecoveryCount   int     `json:"success_recovery_count"`
}

// Provider is a provider's entry: its upstreams aggregated, then each of
// them.
type Provider struct {
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	Entry
	// Reason sums up the upstreams and names the worst one's reason;
	// NextTrialAt is when the first upstream admits requests again, while
	// none does.
	Reason      string     `json:"reason"`
	NextTrialAt *string    `json:"next_trial_at"`
	Upstreams   []Upstream `json:"upstreams"`
}

// Upstream is one upstream of a provider.
type Upstream struct {
	URL string `json:"url"`
	Entry
	// Operator is an operator's drain or forced open in force, or null.
	Operator *Operator `json:"operator"`
	// Fault is an injected fault in force, or null.
	Fault *Fault `json:"fault"`
	Explain
	// Quota is the rate-limit quota the upstream announced last (a
	// provider with a quota block); absent before any.
	Quota *Quota `json:"quota,omitempty"`
	// Balance is what least_latency weighs the upstream by; absent with
	// other balancing.
	Balance *Balance `json:"balance,omitempty"`
}

// Quota is an upstream's announced rate-limit quota.
type Quota struct {
	Remaining int64     `json:"remaining"`
	Limit     int64     `json:"limit,omitempty"` // absent: not announced
	Reset     time.Time `json:"reset,omitzero"`  // absent: not announced
	Header    string    `json:"header"`          // the header it was read from
	Seen      time.Time `json:"seen"`            // when it was read
	// Steering: the upstream's peers are preferred (or it is paused)
	// until Reset.
	Steering bool `json:"steering"`
}

// Balance is an upstream's latency as least_latency sees it.
type Balance struct {
	EWMAMs   float64 `json:"ewma_ms"`   // peak-sensitive moving average of its latency
	InFlight int64   `json:"in_flight"` // requests being answered now
}

// Model is a model's entry with its plugin process.
type Model struct {
	ModelKey string `json:"model_key"`
	Name     string `json:"name"`
	Entry
	Loaded     bool    `json:"loaded"`
	Pid        *int    `json:"pid"`
	Restarts   int     `json:"restarts"`
	LastReinit *string `json:"last_reinit"`
	Fallback   *string `json:"fallback"`
	// Calls is how many calls the running process has served
	// (max_requests counts them); LastReinitMode, LastReinitWhy and
	// LastReinitSwitchSeconds tell how the latest reinit went (see
	// HealResult).
	Calls                   int64    `json:"calls,omitempty"`
	LastReinitMode          string   `json:"last_reinit_mode,omitempty"`
	LastReinitWhy           string   `json:"last_reinit_why,omitempty"`
	LastReinitSwitchSeconds *float64 `json:"last_reinit_switch_seconds,omitempty"`
	Explain
	// Upstreams are the endpoints of a model served over HTTP
	// (endpoints = [...]), each with its own health, as a provider's
	// upstreams; absent for a plugin model.
	Upstreams []Upstream `json:"upstreams,omitempty"`
}

// Alert is one webhook alert's delivery counters in GET
// /api/diagnostics/alerts.
type Alert struct {
	Name         string `json:"name"`
	Webhook      string `json:"webhook"` // scheme://host only
	Sent         uint64 `json:"sent"`
	Failed       uint64 `json:"failed_attempts"`
	GivenUp      uint64 `json:"given_up"`
	Dropped      uint64 `json:"dropped"`
	Deduplicated uint64 `json:"deduplicated"`
	Queued       int    `json:"queued"`
}

// Heal is the answer of POST /api/diagnostics/self-heal.
type Heal struct {
	Status    string       `json:"status"`
	Timestamp string       `json:"timestamp"`
	Results   []HealResult `json:"results"`
	Summary   HealSummary  `json:"summary"`
}

// HealResult is one line of a self-heal answer.
type HealResult struct {
	ModelKey          string   `json:"model_key,omitempty"`
	ProviderID        string   `json:"provider_id,omitempty"`
	Status            string   `json:"status"` // success, failed, cooldown
	Message           string   `json:"message"`
	CooldownRemaining *float64 `json:"cooldown_remaining,omitempty"`
	Pid               *int     `json:"pid,omitempty"`
	// How a model's reinit went: "warm" (the new process took over from
	// the old one, which finished its calls) or "cold" (the process was
	// dead or hung, or there was no room for two); what asked for it, a
	// recycle's limit, and the time until new calls went to the new
	// process and the wait for the old one's calls.
	Mode          string   `json:"mode,omitempty"`
	Why           string   `json:"why,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	SwitchSeconds *float64 `json:"switch_seconds,omitempty"`
	DrainSeconds  *float64 `json:"drain_seconds,omitempty"`
}

// HealSummary counts a self-heal's attempts ("cooldown" results are none).
type HealSummary struct {
	TotalAttempts int `json:"total_attempts"`
	Successful    int `json:"successful"`
	Failed        int `json:"failed"`
}
