package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/internal/redact"
	"github.com/healproxy/healproxy/provider"
)

// serveFault is /api/admin/fault (admin): POST sets a fault, DELETE
// clears, GET lists.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request) error {
	st := s.state.Load()
	q := r.URL.Query()
	id := q.Get("provider")
	if r.Method == http.MethodGet {
		list := []map[string]any{}
		for _, p := range st.providerList {
			if id != "" && p.ID != id {
				continue
			}
			for i, u := range p.Upstreams {
				if d := u.FaultDocument(); d != nil {
					list = append(list, map[string]any{"provider_id": p.ID, "upstream": u.Display, "index": i, "fault": d})
				}
			}
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "faults": list})
		return nil
	}
	if r.Method != http.MethodPost && r.Method != http.MethodDelete {
		return &api.Error{Status: http.StatusMethodNotAllowed, Allow: "GET, POST, DELETE", Msg: "method " + r.Method + " not allowed on " + r.URL.Path + ": want GET, POST or DELETE"}
	}
	if id == "" {
		return &api.Error{Status: http.StatusBadRequest, Msg: "the provider query parameter is required: ?provider=ID[&upstream=URL or 0-based index]"}
	}
	p := st.providers[id]
	if p == nil {
		return &api.Error{Status: http.StatusNotFound, ProviderID: id, Msg: "unknown provider " + strconv.Quote(id)}
	}
	targets := p.UpstreamsNamed(q.Get("upstream"))
	if len(targets) == 0 {
		// Not echoed as sent: a caller naming the upstream by its full URL
		// would get its API key back in the answer (and in any log of it).
		return &api.Error{Status: http.StatusNotFound, ProviderID: id,
			Msg: "provider " + strconv.Quote(id) + " has no upstream " + strconv.Quote(redact.Input(q.Get("upstream"))) +
				"; name it as diagnostics show it, without query string, or by its 0-based index"}
	}
	who := s.who(r)
	now := time.Now()
	if r.Method == http.MethodDelete {
		cleared := 0
		for _, u := range targets {
			if old := u.ClearFault(now); old != nil {
				cleared++
				s.audit.Add(api.AuditEntry{Time: now, Who: who, Action: "fault-clear", Target: "provider " + id + " upstream " + u.Display, Result: "done"})
				s.log.Warn("fault cleared", "provider", id, "upstream", u.Display, "kind", old.Kind, "by", who)
				s.noteFault(p, u, "fault-clear", old, who)
			}
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "provider_id": id, "cleared": cleared})
		return nil
	}
	req, proto, err := fault.Parse(r.Body)
	if err != nil {
		return &api.Error{Status: http.StatusBadRequest, ProviderID: id, Msg: err.Error()}
	}
	ttl := proto.Until.Sub(proto.At)
	for _, u := range targets {
		f := *proto
		f.By = who
		u.InjectFault(&f)
		time.AfterFunc(ttl, func() { s.faultExpired(id, u, &f) })
		target := "provider " + id + " upstream " + u.Display
		s.audit.Add(api.AuditEntry{Time: now, Who: who, Action: "fault-" + f.Kind, Target: target, Reason: f.Reason, TTL: req.TTL, Result: "done"})
		s.log.Warn("fault injected", "provider", id, "upstream", u.Display, "kind", f.Kind, "status", f.Status,
			"delay", f.Delay, "percent", f.Percent, "ttl", req.TTL, "reason", f.Reason, "by", who)
		s.noteFault(p, u, "fault", &f, who)
	}
	docs := make([]*api.Fault, 0, len(targets))
	for _, u := range targets {
		docs = append(docs, u.FaultDocument())
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "provider_id": id, "upstreams": len(targets), "faults": docs})
	return nil
}

// faultExpired clears f from u when its TTL ends, unless it was cleared
// or replaced before.
func (s *Server) faultExpired(id string, u *provider.Upstream, f *fault.Fault) {
	if !u.ExpireFault(f) {
		return
	}
	s.audit.Add(api.AuditEntry{Time: time.Now(), Who: "ttl", Action: "fault-expired", Target: "provider " + id + " upstream " + u.Display, Result: "done"})
	s.log.Warn("fault expired", "provider", id, "upstream", u.Display, "kind", f.Kind)
	if p := s.state.Load().providers[id]; p != nil {
		s.noteFault(p, u, "fault-expired", f, "ttl")
	}
}
