package proxy

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/llm"
)

// Models served over HTTP (endpoints = [...]: OpenAI-compatible model
// servers) are package llm's; this file shows them as models in the
// health document, events, history, report, metrics, self-heal and the
// state file, each endpoint a sub-entry as a provider's upstreams are.

// endpointModels are the models of ms served over HTTP, pluginModels the
// others, each in the file's order.
func endpointModels(ms []config.Model) []config.Model { return modelsWhere(ms, true) }

func pluginModels(ms []config.Model) []config.Model { return modelsWhere(ms, false) }

func modelsWhere(ms []config.Model, endpoint bool) []config.Model {
	var out []config.Model
	for _, m := range ms {
		if m.IsEndpoint() == endpoint {
			out = append(out, m)
		}
	}
	return out
}

// newGateway is the gateway of cfg's endpoint models, reporting to s.
func (s *Server) newGateway(cfg *config.Config) *llm.Gateway {
	return llm.New(endpointModels(cfg.Models), llm.Options{
		Registerer: s.metrics.reg,
		Logger:     s.log,
		Hooks: llm.Hooks{
			OnChange: func(c llm.Change) {
				s.changed(Change{Kind: KindModel, Key: c.Model, Upstream: c.Endpoint, From: c.From, To: c.To, entry: c.Entry})
			},
			OnFallback: func(f llm.Fallback) {
				s.log.Warn("model fallback", "model", f.From, "to", f.To, "reason", f.Reason, "error", f.Error)
				s.publishModelEvent("fallback", f)
			},
			OnRecovery: func(r llm.Recovery) {
				s.log.Warn("streamed answer broke", "model", r.Model, "recovered_by", r.To, "way", r.Way,
					"delivered_bytes", r.Delivered, "cause", r.Cause)
				s.publishModelEvent("recovery", r)
			},
		},
	})
}

// publishModelEvent sends an event of the given type to the event stream
// (GET /api/diagnostics/events), with v as its JSON data.
func (s *Server) publishModelEvent(event string, v any) {
	if !s.events.Active() {
		return
	}
	data, err := json.Marshal(struct {
		Time string `json:"time"`
		Kind string `json:"kind"`
		any
	}{time.Now().UTC().Format(time.RFC3339Nano), KindModel, v})
	if err != nil {
		return
	}
	s.publishEvent(event, data)
}

// endpointModelDoc is the health document's entry of an endpoint model:
// its endpoints summed up as a provider's upstreams are.
func endpointModelDoc(m *llm.Model) api.Model {
	mc := m.Config()
	eps := m.Endpoints()
	d := api.Model{ModelKey: m.Key, Name: m.Name, Loaded: true, Fallback: api.StrOrNil(mc.Fallback),
		Upstreams: make([]api.Upstream, 0, len(eps))}
	snaps := make([]breaker.Snapshot, len(eps))
	for i, ep := range eps {
		snaps[i] = ep.Health.Snapshot()
		d.Upstreams = append(d.Upstreams, api.Upstream{URL: ep.URL, Entry: entryOf(snaps[i]), Explain: explainOf(snaps[i])})
	}
	d.Entry, d.Reason, d.NextTrialAt = aggregate(d.Upstreams, snaps)
	if len(eps) > 0 {
		d.Settings = d.Upstreams[0].Settings
	}
	return d
}

// healEndpointModel clears the cooldowns and counters of m's endpoints.
func (s *Server) healEndpointModel(_ context.Context, m *llm.Model, remote string) api.HealResult {
	m.SelfHeal()
	s.log.Info("self-heal: endpoint model reset", "model", m.Key, "remote", remote)
	return api.HealResult{ModelKey: m.Key, Status: "success",
		Message: "cooldowns and counters of " + strconv.Itoa(len(m.Endpoints())) + " endpoint(s) cleared"}
}

// endpointKey names an endpoint in the state file without its URL (whose
// query may hold a secret).
func endpointKey(m *llm.Model, ep *llm.Endpoint) string { return modelKey(m.Key) + "/" + ep.ID() }
