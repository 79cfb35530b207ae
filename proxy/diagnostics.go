package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/cluster"
)

// The health document (docs/behaviour.md, "The health document and
// self-heal"). Field order follows the contract clients rely on; the fields after it explain each entry (reason, recent
// failures, next trial), which the contract leaves to us.

type healthDoc struct {
	Status    string       `json:"status"`
	Timestamp string       `json:"timestamp"`
	Providers providersDoc `json:"providers"`
	Models    modelsDoc    `json:"models"`
	Overall   overallDoc   `json:"overall_health"`
	// Replica is the replica that answered; SharedState its link to the
	// other replicas (absent without state.redis). See cluster.go.
	Replica     string          `json:"replica"`
	SharedState *cluster.Status `json:"shared_state,omitempty"`
}

type alertDoc struct {
	Name         string `json:"name"`
	Webhook      string `json:"webhook"` // scheme://host only
	Sent         uint64 `json:"sent"`
	Failed       uint64 `json:"failed_attempts"`
	GivenUp      uint64 `json:"given_up"`
	Dropped      uint64 `json:"dropped"`
	Deduplicated uint64 `json:"deduplicated"`
	Queued       int    `json:"queued"`
}

type summaryDoc struct {
	Total       int `json:"total"`
	Healthy     int `json:"healthy"`
	Degraded    int `json:"degraded"`
	Unavailable int `json:"unavailable"`
	Unknown     int `json:"unknown"`
	InCooldown  int `json:"in_cooldown"`
}

func (s *summaryDoc) add(st breaker.Status, inCooldown bool) {
	s.Total++
	switch st {
	case breaker.Healthy:
		s.Healthy++
	case breaker.Degraded:
		s.Degraded++
	case breaker.Unavailable:
		s.Unavailable++
	default:
		s.Unknown++
	}
	if inCooldown {
		s.InCooldown++
	}
}

type providersDoc struct {
	Summary summaryDoc    `json:"summary"`
	Entries []providerDoc `json:"entries"`
}

type modelsDoc struct {
	Summary summaryDoc `json:"summary"`
	Entries []modelDoc `json:"entries"`
}

type overallDoc struct {
	ProvidersOK bool `json:"providers_ok"`
	ModelsOK    bool `json:"models_ok"`
}

// entryDoc is what every entry, provider, upstream or model, shows.
type entryDoc struct {
	Status           breaker.Status `json:"status"`
	ErrorCount       int64          `json:"error_count"`
	SuccessCount     int64          `json:"success_count"`
	LastSuccess      *string        `json:"last_success"`
	LastError        *string        `json:"last_error"`
	LastErrorMessage *string        `json:"last_error_message"`
	CooldownUntil    *string        `json:"cooldown_until"`
	InCooldown       bool           `json:"in_cooldown"`
}

// explainDoc says why an entry is in its status.
type explainDoc struct {
	Reason      string  `json:"reason"`
	NextTrialAt *string `json:"next_trial_at"`
	// PausedUntil: the backend rate limited us (Retry-After or
	// X-RateLimit-Reset) until then; reason starts with "rate_limited".
	PausedUntil    *string           `json:"paused_until"`
	LastProbe      *breaker.Probe    `json:"last_probe,omitempty"`
	Recovery       *recoveryDoc      `json:"recovery,omitempty"`
	RecentFailures []breaker.Failure `json:"recent_failures"`
	Settings       settingsDoc       `json:"settings"`
}

type recoveryDoc struct {
	TrialSuccesses int `json:"trial_successes"`
	TrialsNeeded   int `json:"trials_needed"`
}

type settingsDoc struct {
	ErrorThreshold  int     `json:"error_threshold"`
	DegradedAt      int     `json:"degraded_at"`
	CooldownSeconds float64 `json:"cooldown_seconds"`
	RecoveryCount   int     `json:"success_recovery_count"`
}

type providerDoc struct {
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	entryDoc
	// Reason sums up the upstreams and names the worst one's reason;
	// NextTrialAt is when the first upstream admits requests again, while
	// none does.
	Reason      string        `json:"reason"`
	NextTrialAt *string       `json:"next_trial_at"`
	Upstreams   []upstreamDoc `json:"upstreams"`
}

type upstreamDoc struct {
	URL string `json:"url"`
	entryDoc
	// Operator is an operator's drain or forced open in force, or null.
	Operator *operatorDoc `json:"operator"`
	// Fault is an injected fault in force (fault.go), or null.
	Fault *faultDoc `json:"fault"`
	explainDoc
}

type modelDoc struct {
	ModelKey string `json:"model_key"`
	Name     string `json:"name"`
	entryDoc
	Loaded     bool    `json:"loaded"`
	Pid        *int    `json:"pid"`
	Restarts   int     `json:"restarts"`
	LastReinit *string `json:"last_reinit"`
	Fallback   *string `json:"fallback"`
	explainDoc
}

func stamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func entryOf(snap breaker.Snapshot) entryDoc {
	d := entryDoc{
		Status:           snap.Status,
		ErrorCount:       snap.ErrorCount,
		SuccessCount:     snap.SuccessCount,
		LastSuccess:      stamp(snap.LastSuccess),
		LastError:        stamp(snap.LastError),
		LastErrorMessage: strOrNil(snap.LastErrorMessage),
		InCooldown:       snap.InCooldown,
	}
	if snap.InCooldown {
		d.CooldownUntil = stamp(snap.CooldownUntil)
	}
	return d
}

func explainOf(snap breaker.Snapshot) explainDoc {
	d := explainDoc{
		Reason:         snap.Reason,
		NextTrialAt:    stamp(snap.NextTrialAt),
		PausedUntil:    stamp(snap.PausedUntil),
		LastProbe:      snap.LastProbe,
		RecentFailures: snap.RecentFailures,
		Settings: settingsDoc{
			ErrorThreshold:  snap.Settings.ErrorThreshold,
			DegradedAt:      int(snap.Settings.DegradedAt()),
			CooldownSeconds: snap.Settings.Cooldown.Seconds(),
			RecoveryCount:   snap.Settings.RecoveryCount,
		},
	}
	if snap.HalfOpen {
		d.Recovery = &recoveryDoc{TrialSuccesses: snap.TrialSuccesses, TrialsNeeded: snap.TrialsNeeded}
	}
	return d
}

// providerEntry aggregates a provider's upstreams as docs/behaviour.md
// says: upstreams never called are left out unless all are.
func providerEntry(p *Provider) providerDoc {
	d := providerDoc{ProviderID: p.ID, Name: p.Name, Upstreams: make([]upstreamDoc, 0, len(p.Upstreams))}
	var called, healthy, unavailable, cooling int
	var lastSuccess, lastError, cooldownUntil, nextTrial time.Time
	var lastErrMsg string
	for _, u := range p.Upstreams {
		snap := u.Health.Snapshot()
		d.Upstreams = append(d.Upstreams, upstreamDoc{URL: u.Display, entryDoc: entryOf(snap), Operator: u.operator(), Fault: u.faultDocument(), explainDoc: explainOf(snap)})
		d.ErrorCount += snap.ErrorCount
		d.SuccessCount += snap.SuccessCount
		if snap.LastSuccess.After(lastSuccess) {
			lastSuccess = snap.LastSuccess
		}
		if snap.LastError.After(lastError) {
			lastError, lastErrMsg = snap.LastError, snap.LastErrorMessage
		}
		if !snap.NextTrialAt.IsZero() && (nextTrial.IsZero() || snap.NextTrialAt.Before(nextTrial)) {
			nextTrial = snap.NextTrialAt
		}
		if snap.InCooldown {
			cooling++
			if cooldownUntil.IsZero() || snap.CooldownUntil.Before(cooldownUntil) {
				cooldownUntil = snap.CooldownUntil
			}
		}
		switch snap.Status {
		case breaker.Unknown:
			continue
		case breaker.Healthy:
			healthy++
		case breaker.Unavailable:
			unavailable++
		}
		called++
	}
	switch {
	case called == 0:
		d.Status = breaker.Unknown
	case healthy == called:
		d.Status = breaker.Healthy
	case unavailable == called:
		d.Status = breaker.Unavailable
	default:
		d.Status = breaker.Degraded
	}
	d.LastSuccess, d.LastError, d.LastErrorMessage = stamp(lastSuccess), stamp(lastError), strOrNil(lastErrMsg)
	d.Reason = fmt.Sprintf("%d of %d upstreams healthy", healthy, len(p.Upstreams))
	worst := -1
	for i, u := range d.Upstreams {
		if u.Status > breaker.Healthy && (worst < 0 || u.Status > d.Upstreams[worst].Status) {
			worst = i
		}
	}
	if worst >= 0 {
		d.Reason += "; " + d.Upstreams[worst].URL + " is " + d.Upstreams[worst].Status.String() + ": " + d.Upstreams[worst].Reason
	}
	if d.Status == breaker.Unavailable {
		d.NextTrialAt = stamp(nextTrial)
	}
	if cooling == len(p.Upstreams) {
		d.InCooldown = true
		d.CooldownUntil = stamp(cooldownUntil)
	}
	return d
}

func (s *Server) healthDocument() healthDoc {
	st := s.state.Load()
	doc := healthDoc{
		Status:    "success",
		Timestamp: time.Now().UTC().Format(time.RFC3339),
		Providers: providersDoc{Entries: make([]providerDoc, 0, len(st.providerList))},
		Models:    modelsDoc{Entries: make([]modelDoc, 0, len(st.modelList))},
	}
	for _, p := range st.providerList {
		e := providerEntry(p)
		doc.Providers.Summary.add(e.Status, e.InCooldown)
		doc.Providers.Entries = append(doc.Providers.Entries, e)
	}
	for _, m := range st.modelList {
		e := m.document()
		doc.Models.Summary.add(e.Status, e.InCooldown)
		doc.Models.Entries = append(doc.Models.Entries, e)
	}
	doc.Overall.ProvidersOK = doc.Providers.Summary.Unavailable == 0
	doc.Overall.ModelsOK = doc.Models.Summary.Unavailable == 0
	doc.Replica, doc.SharedState = s.replica, s.sharedStateDoc()
	return doc
}

// serveAlerts is GET /api/diagnostics/alerts: the webhook alerts' delivery
// counters.
func (s *Server) serveAlerts(w http.ResponseWriter, r *http.Request) {
	docs := []alertDoc{}
	for _, a := range s.alerts.Load().Stats().Alerts {
		docs = append(docs, alertDoc{Name: a.Name, Webhook: a.Webhook, Sent: a.Sent, Failed: a.Failed,
			GivenUp: a.GivenUp, Dropped: a.Dropped, Deduplicated: a.Deduplicated, Queued: a.Queued})
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "alerts": docs})
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("scope") == "cluster" {
		s.serveClusterHealth(w, r)
		return
	}
	writeJSON(w, http.StatusOK, s.healthDocument())
}

// healResult is one line of a self-heal answer.
type healResult struct {
	ModelKey          string   `json:"model_key,omitempty"`
	ProviderID        string   `json:"provider_id,omitempty"`
	Status            string   `json:"status"` // success, failed, cooldown
	Message           string   `json:"message"`
	CooldownRemaining *float64 `json:"cooldown_remaining,omitempty"`
	Pid               *int     `json:"pid,omitempty"`
}

type healDoc struct {
	Status    string       `json:"status"`
	Timestamp string       `json:"timestamp"`
	Results   []healResult `json:"results"`
	Summary   struct {
		TotalAttempts int `json:"total_attempts"`
		Successful    int `json:"successful"`
		Failed        int `json:"failed"`
	} `json:"summary"`
}

func newHealDoc(results []healResult) healDoc {
	d := healDoc{Status: "completed", Timestamp: time.Now().UTC().Format(time.RFC3339), Results: results}
	if d.Results == nil {
		d.Results = []healResult{}
	}
	for _, r := range results {
		switch r.Status {
		case "success":
			d.Summary.TotalAttempts++
			d.Summary.Successful++
		case "failed":
			d.Summary.TotalAttempts++
			d.Summary.Failed++
		}
	}
	return d
}

// serveSelfHeal is POST /api/diagnostics/self-heal (docs/behaviour.md,
// "The health document and self-heal").
func (s *Server) serveSelfHeal(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	q := r.URL.Query()
	switch {
	case q.Has("provider_id"):
		id := q.Get("provider_id")
		p := st.providers[id]
		if p == nil {
			writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ProviderID: id, Error: "unknown provider " + strconv.Quote(id)})
			return
		}
		for _, u := range p.Upstreams {
			u.Health.Reset()
		}
		s.log.Info("self-heal: provider reset", "provider", id, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, newHealDoc([]healResult{{ProviderID: id, Status: "success",
			Message: "cooldowns and counters of " + strconv.Itoa(len(p.Upstreams)) + " upstream(s) cleared"}}))
	case q.Has("model_key"):
		key := q.Get("model_key")
		m := st.models[key]
		if m == nil {
			writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ModelKey: key, Error: "unknown model " + strconv.Quote(key)})
			return
		}
		writeJSON(w, http.StatusOK, newHealDoc([]healResult{s.reinit(r.Context(), m, "self-heal")}))
	default:
		writeJSON(w, http.StatusOK, newHealDoc(s.healAll(r.Context(), st)))
	}
}
