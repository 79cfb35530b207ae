package proxy

import (
	"context"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/alert"
	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/provider"
)

// ConfigSource re-reads the configuration for a reload (SIGHUP, POST
// /api/admin/reload). It returns diagnostics with errors for an invalid
// file.
type ConfigSource func() (*config.Config, hcl.Diagnostics)

// Reload swaps in cfg, which must be valid and normalized (see New), in
// one step: requests in flight finish on what they started with, new ones
// see the new config. Entries
// whose definition did not change keep their health and their plugin
// process; changed health settings apply at once; removed models' plugins
// stop once their calls in flight have finished.
func (s *Server) Reload(cfg *config.Config) api.ReloadResult {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.state.Load()
	res := api.ReloadResult{Added: []string{}, Removed: []string{}, Changed: []string{}, Updated: []string{}}
	if cfg.Listen != old.cfg.Listen {
		res.Warnings = append(res.Warnings, "listen changed: it takes effect at the next restart")
	}
	if cfg.StatePath != old.cfg.StatePath {
		res.Warnings = append(res.Warnings, "state.path changed: it takes effect at the next restart")
	}
	if sharedSetting(cfg) != sharedSetting(old.cfg) {
		res.Warnings = append(res.Warnings, "state.redis, key_prefix, quorum or replica changed: it takes effect at the next restart")
	}
	st := &state{cfg: cfg, providers: map[string]*provider.Provider{}, models: map[string]*Model{}}

	for _, pc := range cfg.Providers {
		op := old.providers[pc.ID]
		var p *provider.Provider
		switch {
		case op == nil:
			p = provider.New(pc, s.transport, s.providerHooks(), s.metrics.providers, s.log, nil)
			s.attachLean(p)
			res.Added = append(res.Added, "provider "+pc.ID)
		case sameProvider(op.Config(), pc):
			p = op
			if op.Config().Health != pc.Health {
				op.UpdateHealth(pc) // under reloadMu
				res.Updated = append(res.Updated, "provider "+pc.ID)
			} else {
				res.Unchanged++
			}
		default:
			keep := map[string]*provider.Upstream{}
			for _, u := range op.Upstreams {
				keep[u.Target()] = u
			}
			p = provider.New(pc, s.transport, s.providerHooks(), s.metrics.providers, s.log, keep)
			s.attachLean(p)
			res.Changed = append(res.Changed, "provider "+pc.ID)
			for _, u := range op.Upstreams {
				if !slices.ContainsFunc(p.Upstreams, func(n *provider.Upstream) bool { return n.Health == u.Health }) {
					s.metrics.forget(op.ID, u.Display)
				}
			}
		}
		st.providers[p.ID] = p
		st.providerList = append(st.providerList, p)
	}
	for _, op := range old.providerList {
		if st.providers[op.ID] == nil {
			res.Removed = append(res.Removed, "provider "+op.ID)
			s.metrics.forget(op.ID, "")
		}
	}

	var start, stop []*Model
	for _, mc := range pluginModels(cfg.Models) {
		om := old.models[mc.Key]
		var m *Model
		switch {
		case om == nil:
			m = newModel(mc, s)
			start = append(start, m)
			res.Added = append(res.Added, "model "+mc.Key)
		case sameProcess(*om.Config(), mc):
			m = om
			if oc := *om.Config(); !sameModel(oc, mc) {
				om.SetConfig(mc)
				om.Health.SetSettings(breaker.SettingsOf(mc.Health))
				res.Updated = append(res.Updated, "model "+mc.Key)
			} else {
				res.Unchanged++
			}
		default: // a new command or plugin: a new process
			m = newModel(mc, s)
			start = append(start, m)
			stop = append(stop, om)
			res.Changed = append(res.Changed, "model "+mc.Key)
		}
		st.models[m.Key] = m
		st.modelList = append(st.modelList, m)
	}
	for _, om := range old.modelList {
		if st.models[om.Key] == nil {
			stop = append(stop, om)
			res.Removed = append(res.Removed, "model "+om.Key)
			s.metrics.transitions.DeletePartialMatch(prometheus.Labels{"kind": KindModel, "key": om.Key})
		}
	}

	if !sameAlerts(old.cfg.Alerts, cfg.Alerts) {
		// A new notifier starts with no de-duplication memory; only
		// rebuild it when the alerts changed.
		oldN := s.alerts.Swap(alert.New(cfg.Alerts, alert.Options{Logger: s.log}))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			oldN.Close(ctx)
		}()
		res.Updated = append(res.Updated, "alerts")
	}
	s.reinits.SetLimit(cfg.Health.MaxConcurrentReinit)
	s.state.Store(st)
	llmChanges := s.llm.Reconfigure(endpointModels(cfg.Models))
	for _, k := range llmChanges.Added {
		res.Added = append(res.Added, "model "+k)
	}
	for _, k := range llmChanges.Removed {
		res.Removed = append(res.Removed, "model "+k)
		s.metrics.transitions.DeletePartialMatch(prometheus.Labels{"kind": KindModel, "key": k})
	}
	for _, k := range llmChanges.Changed {
		res.Changed = append(res.Changed, "model "+k)
	}
	res.Unchanged += llmChanges.Unchanged
	for _, op := range old.providerList {
		if st.providers[op.ID] != op {
			op.StopChecks() // replaced or removed
		}
	}
	for _, p := range st.providerList {
		if old.providers[p.ID] != p {
			p.StartChecks()
		}
	}
	for _, m := range start {
		m.Start()
	}
	for _, m := range stop {
		s.retiring.Store(m, struct{}{})
		go func() {
			m.CloseWhenIdle()
			s.retiring.Delete(m)
		}()
	}
	s.log.Info("config reloaded", "config", cfg.Path, "added", res.Added, "removed", res.Removed,
		"changed", res.Changed, "updated", res.Updated, "unchanged", res.Unchanged)
	for _, w := range res.Warnings {
		s.log.Warn("config reload: " + w)
	}
	return res
}

func sameAlerts(a, b []config.Alert) bool {
	return slices.EqualFunc(a, b, func(x, y config.Alert) bool {
		return x.Name == y.Name && x.Webhook.String() == y.Webhook.String() &&
			slices.Equal(x.On, y.On) && x.MinInterval == y.MinInterval
	})
}

// sameProvider: nothing but the health settings differ.
func sameProvider(a, b config.Provider) bool {
	a.Health, b.Health = config.Health{}, config.Health{}
	return reflect.DeepEqual(a, b)
}

// sharedSetting is what of cfg the shared-state session was made from.
func sharedSetting(cfg *config.Config) string {
	if cfg.Shared == nil {
		return "\x00" + cfg.Replica
	}
	return cfg.Shared.RedisURL + "\x00" + cfg.Shared.KeyPrefix + "\x00" + cfg.Replica + "\x00" + strconv.Itoa(cfg.Shared.Quorum)
}

// sameProcess: the plugin process can be kept.
func sameProcess(a, b config.Model) bool {
	return a.Plugin == b.Plugin && slices.Equal(a.Command, b.Command) &&
		maps.Equal(a.Env, b.Env) && slices.Equal(a.InheritEnv, b.InheritEnv)
}

func sameModel(a, b config.Model) bool {
	return sameProcess(a, b) && a.Name == b.Name && a.Timeout == b.Timeout && a.Fallback == b.Fallback && a.Health == b.Health &&
		a.MaxMemory == b.MaxMemory && a.MaxRequests == b.MaxRequests && a.LatencyRecycle == b.LatencyRecycle &&
		slices.Equal(a.Warmup, b.Warmup)
}

// ReloadConfig re-reads the configuration from Options.ConfigSource and
// applies it; an invalid file is refused with its diagnostics and the
// running configuration stays. who says what asked (for logs and audit).
func (s *Server) ReloadConfig(who string) (api.ReloadResult, hcl.Diagnostics) {
	if s.opts.ConfigSource == nil {
		return api.ReloadResult{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "reload is not available: no config source"}}
	}
	cfg, diags := s.opts.ConfigSource()
	if cfg == nil && !diags.HasErrors() { // never apply (or answer 200 for) nothing
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "the config source returned no configuration"})
	}
	if cfg == nil || diags.HasErrors() {
		s.log.Error("config reload refused; the running config stays", "by", who, "diagnostics", config.FormatDiagnostics(diags))
		s.audit.Add(api.AuditEntry{Time: time.Now(), Who: who, Action: "reload", Target: "config", Result: "refused: invalid config"})
		return api.ReloadResult{}, diags
	}
	res := s.Reload(cfg)
	s.audit.Add(api.AuditEntry{Time: time.Now(), Who: who, Action: "reload", Target: "config " + cfg.Path, Result: "applied"})
	return res, diags
}

// serveReload is POST /api/admin/reload (admin).
func (s *Server) serveReload(w http.ResponseWriter, r *http.Request) error {
	res, diags := s.ReloadConfig(s.who(r))
	if diags.HasErrors() {
		lines := strings.FieldsFunc(config.FormatDiagnostics(diags), func(r rune) bool { return r == '\n' })
		return &api.Error{Status: http.StatusUnprocessableEntity, Msg: "invalid config; the running config stays", Diagnostics: lines}
	}
	api.WriteJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		api.ReloadResult
	}{"success", res})
	return nil
}

// forget drops a removed provider's (or upstream's) request metrics.
func (m *metrics) forget(provider, upstream string) {
	l := prometheus.Labels{"provider": provider}
	if upstream != "" {
		l["upstream"] = upstream
	}
	m.providers.Forget(provider, upstream)
	delete(l, "provider") // the status-change counter labels it kind/key/upstream
	l["kind"], l["key"] = KindProvider, provider
	m.transitions.DeletePartialMatch(l)
}
