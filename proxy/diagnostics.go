package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/cluster"
	"github.com/healproxy/healproxy/provider"
)

// The health document (docs/behaviour.md, "The health document and
// self-heal"); its types are package api's.

// addTo counts an entry of status st (a breaker.Status's name) in a
// summary.
func addTo(s *api.Summary, st string, inCooldown bool) {
	s.Total++
	switch st {
	case breaker.Healthy.String():
		s.Healthy++
	case breaker.Degraded.String():
		s.Degraded++
	case breaker.Unavailable.String():
		s.Unavailable++
	default:
		s.Unknown++
	}
	if inCooldown {
		s.InCooldown++
	}
}

func entryOf(snap breaker.Snapshot) api.Entry {
	d := api.Entry{
		Status:           snap.Status.String(),
		ErrorCount:       snap.ErrorCount,
		SuccessCount:     snap.SuccessCount,
		LastSuccess:      api.Stamp(snap.LastSuccess),
		LastError:        api.Stamp(snap.LastError),
		LastErrorMessage: api.StrOrNil(snap.LastErrorMessage),
		InCooldown:       snap.InCooldown,
	}
	if snap.InCooldown {
		d.CooldownUntil = api.Stamp(snap.CooldownUntil)
	}
	return d
}

func explainOf(snap breaker.Snapshot) api.Explain {
	d := api.Explain{
		Reason:         snap.Reason,
		NextTrialAt:    api.Stamp(snap.NextTrialAt),
		PausedUntil:    api.Stamp(snap.PausedUntil),
		LastProbe:      probeOf(snap.LastProbe),
		RecentFailures: failuresOf(snap.RecentFailures),
		Settings: api.Settings{
			ErrorThreshold:  snap.Settings.ErrorThreshold,
			DegradedAt:      int(snap.Settings.DegradedAt()),
			CooldownSeconds: snap.Settings.Cooldown.Seconds(),
			RecoveryCount:   snap.Settings.RecoveryCount,
		},
	}
	if snap.HalfOpen {
		d.Recovery = &api.Recovery{TrialSuccesses: snap.TrialSuccesses, TrialsNeeded: snap.TrialsNeeded}
	}
	return d
}

func failureOf(f breaker.Failure) api.Failure {
	return api.Failure{Time: f.Time, Kind: string(f.Kind), StatusCode: f.StatusCode, LatencyMS: f.LatencyMS, Message: f.Message}
}

// failuresOf keeps nil (null) apart from empty ([]).
func failuresOf(fs []breaker.Failure) []api.Failure {
	if fs == nil {
		return nil
	}
	out := make([]api.Failure, len(fs))
	for i, f := range fs {
		out[i] = failureOf(f)
	}
	return out
}

func probeOf(p *breaker.Probe) *api.Probe {
	if p == nil {
		return nil
	}
	d := &api.Probe{Time: p.Time, OK: p.OK}
	if p.Failure != nil {
		f := failureOf(*p.Failure)
		d.Failure = &f
	}
	return d
}

// providerEntry aggregates a provider's upstreams as docs/behaviour.md
// says: upstreams never called are left out unless all are.
func providerEntry(p *provider.Provider) api.Provider {
	d := api.Provider{ProviderID: p.ID, Name: p.Name, Upstreams: make([]api.Upstream, 0, len(p.Upstreams))}
	snaps := make([]breaker.Snapshot, len(p.Upstreams))
	for i, u := range p.Upstreams {
		snaps[i] = u.Health.Snapshot()
		d.Upstreams = append(d.Upstreams, api.Upstream{URL: u.Display, Entry: entryOf(snaps[i]), Operator: u.Operator(),
			Fault: u.FaultDocument(), Explain: explainOf(snaps[i]), Quota: quotaOf(u), Balance: balanceOf(u)})
	}
	d.Entry, d.Reason, d.NextTrialAt = aggregate(d.Upstreams, snaps)
	return d
}

// quotaOf is the quota u announced last, nil before any or without a
// quota block.
func quotaOf(u *provider.Upstream) *api.Quota {
	q, ok := u.Quota()
	if !ok {
		return nil
	}
	return &api.Quota{Remaining: q.Remaining, Limit: q.Limit, Reset: q.Reset, Header: q.Header, Seen: q.Seen, Steering: q.Steering}
}

// balanceOf is u's weight under least_latency, nil under other balancing.
func balanceOf(u *provider.Upstream) *api.Balance {
	ewma, inFlight, ok := u.Latency()
	if !ok {
		return nil
	}
	return &api.Balance{EWMAMs: float64(ewma) / float64(time.Millisecond), InFlight: inFlight}
}

// aggregate sums up the entries of a pool of equivalent backends (a
// provider's upstreams, an endpoint model's endpoints), docs[i] showing
// snaps[i]: its status (unknown while none was called, healthy when every
// called one is, unavailable when every called one is, degraded
// otherwise), counts, times, a reason naming the worst one, and when the
// first admits requests again while none does.
func aggregate(docs []api.Upstream, snaps []breaker.Snapshot) (e api.Entry, reason string, nextTrialAt *string) {
	var cooling int
	worst, worstStatus := -1, breaker.Unknown
	var lastSuccess, lastError, cooldownUntil, nextTrial time.Time
	var lastErrMsg string
	for i, snap := range snaps {
		if snap.Status > breaker.Healthy && (worst < 0 || snap.Status > worstStatus) {
			worst, worstStatus = i, snap.Status
		}
		e.ErrorCount += snap.ErrorCount
		e.SuccessCount += snap.SuccessCount
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
	}
	status, healthy := breaker.Sum(len(snaps), func(i int) breaker.Status { return snaps[i].Status })
	e.Status = status.String()
	e.LastSuccess, e.LastError, e.LastErrorMessage = api.Stamp(lastSuccess), api.Stamp(lastError), api.StrOrNil(lastErrMsg)
	reason = fmt.Sprintf("%d of %d upstreams healthy", healthy, len(snaps))
	if worst >= 0 {
		reason += "; " + docs[worst].URL + " is " + worstStatus.String() + ": " + docs[worst].Reason
	}
	if status == breaker.Unavailable {
		nextTrialAt = api.Stamp(nextTrial)
	}
	if cooling == len(snaps) && len(snaps) > 0 {
		e.InCooldown = true
		e.CooldownUntil = api.Stamp(cooldownUntil)
	}
	return e, reason, nextTrialAt
}

func (s *Server) healthDocument() api.Health {
	st := s.state.Load()
	doc := api.Health{
		Status:    "success",
		Timestamp: time.Now().UTC().Format(time.RFC3339),
		Providers: api.Providers{Entries: make([]api.Provider, 0, len(st.providerList))},
		Models:    api.Models{Entries: make([]api.Model, 0, len(st.modelList))},
	}
	for _, p := range st.providerList {
		e := providerEntry(p)
		s.noteUnconfirmed(st, p, &e)
		addTo(&doc.Providers.Summary, e.Status, e.InCooldown)
		doc.Providers.Entries = append(doc.Providers.Entries, e)
	}
	for _, m := range st.modelList {
		e := m.document()
		addTo(&doc.Models.Summary, e.Status, e.InCooldown)
		doc.Models.Entries = append(doc.Models.Entries, e)
	}
	for _, m := range s.llm.Models() {
		e := endpointModelDoc(m)
		addTo(&doc.Models.Summary, e.Status, e.InCooldown)
		doc.Models.Entries = append(doc.Models.Entries, e)
	}
	doc.Overall.ProvidersOK = doc.Providers.Summary.Unavailable == 0
	doc.Overall.ModelsOK = doc.Models.Summary.Unavailable == 0
	doc.Replica, doc.SharedState = s.replica, s.sharedStateDoc()
	return doc
}

// serveAlerts is GET /api/diagnostics/alerts: the webhook alerts' delivery
// counters.
func (s *Server) serveAlerts(w http.ResponseWriter, r *http.Request) error {
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "alerts": s.alertDocs()})
	return nil
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("scope") == "cluster" {
		return s.serveClusterHealth(w, r)
	}
	// ?status=&q=&sort=&offset=&limit=: one page of the entries
	// (api.HealthQuery); without them, the whole document.
	q, paged, err := api.ParseHealthQuery(r.URL.Query())
	if err != nil {
		return err
	}
	doc := s.healthDocument()
	if paged {
		q.Apply(&doc)
	}
	api.WriteJSON(w, http.StatusOK, doc)
	return nil
}

func newHealDoc(results []api.HealResult) api.Heal {
	d := api.Heal{Status: "completed", Timestamp: time.Now().UTC().Format(time.RFC3339), Results: results}
	if d.Results == nil {
		d.Results = []api.HealResult{}
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
func (s *Server) serveSelfHeal(w http.ResponseWriter, r *http.Request) error {
	st := s.state.Load()
	q := r.URL.Query()
	switch {
	case q.Has("provider_id"):
		id := q.Get("provider_id")
		p := st.providers[id]
		if p == nil {
			return &api.Error{Status: http.StatusNotFound, ProviderID: id, Msg: "unknown provider " + strconv.Quote(id)}
		}
		for _, u := range p.Upstreams {
			u.Health.Reset()
		}
		s.log.Info("self-heal: provider reset", "provider", id, "remote", r.RemoteAddr)
		api.WriteJSON(w, http.StatusOK, newHealDoc([]api.HealResult{{ProviderID: id, Status: "success",
			Message: "cooldowns and counters of " + strconv.Itoa(len(p.Upstreams)) + " upstream(s) cleared"}}))
	case q.Has("model_key"):
		key := q.Get("model_key")
		if em := s.llm.Model(key); em != nil {
			api.WriteJSON(w, http.StatusOK, newHealDoc([]api.HealResult{s.healEndpointModel(r.Context(), em, r.RemoteAddr)}))
			return nil
		}
		m := st.models[key]
		if m == nil {
			return &api.Error{Status: http.StatusNotFound, ModelKey: key, Msg: "unknown model " + strconv.Quote(key)}
		}
		api.WriteJSON(w, http.StatusOK, newHealDoc([]api.HealResult{s.reinit(r.Context(), m, "self-heal")}))
	default:
		results := s.healAll(r.Context(), st)
		for _, em := range s.llm.Models() {
			if em.Status() == breaker.Unavailable { // as healAll: what is down
				results = append(results, s.healEndpointModel(r.Context(), em, r.RemoteAddr))
			}
		}
		api.WriteJSON(w, http.StatusOK, newHealDoc(results))
	}
	return nil
}

// noteUnconfirmed adds to the reason of each upstream of p that this
// replica tripped but the fleet has not confirmed (state.quorum) that it
// is so, which makes a replica with a broken route of its own visible as
// the outlier it is.
func (s *Server) noteUnconfirmed(st *state, p *provider.Provider, e *api.Provider) {
	if s.cluster == nil || st.cfg.Shared == nil || st.cfg.Shared.Quorum <= 1 {
		return
	}
	for i, u := range p.Upstreams {
		if votes, ok := s.cluster.Unconfirmed(upstreamKey(p.ID, u)); ok {
			e.Upstreams[i].Reason += "; " + cluster.UnconfirmedMessage(votes, st.cfg.Shared.Quorum)
		}
	}
}

// alertDocs are the webhook alerts' delivery counters.
func (s *Server) alertDocs() []api.Alert {
	docs := []api.Alert{}
	for _, a := range s.alerts.Load().Stats().Alerts {
		docs = append(docs, api.Alert{Name: a.Name, Webhook: a.Webhook, Sent: a.Sent, Failed: a.Failed,
			GivenUp: a.GivenUp, Dropped: a.Dropped, Deduplicated: a.Deduplicated, Queued: a.Queued})
	}
	return docs
}
