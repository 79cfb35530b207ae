package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/feed"
	"github.com/healproxy/healproxy/provider"
	"github.com/healproxy/healproxy/store"
)

// Health state survives restarts (docs/behaviour.md, "Reload and
// state"): with state.path,
// every provider upstream's and model's breaker.State (and a model's
// restarts and last reinit) is written to an embedded store once a second
// when something changed, off the request path, and once more at Close.
// At start, entries still in the config get their state back; the others
// are dropped at the first save.

// persisted is one stored entry.
type persisted struct {
	Health     breaker.State       `json:"health"`
	Drain      *provider.DrainInfo `json:"drain,omitempty"` // an operator's drain in force
	Restarts   int                 `json:"restarts,omitempty"`
	LastReinit time.Time           `json:"last_reinit,omitzero"`
}

// upstreamKey names an upstream in the store without its URL, whose query
// string may hold a secret: a hash of the whole URL keeps upstreams that
// differ only in their query apart.
func upstreamKey(providerID string, u *provider.Upstream) string {
	sum := sha256.Sum256([]byte(u.Target()))
	return "provider/" + providerID + "/" + hex.EncodeToString(sum[:12])
}

func modelKey(key string) string { return "model/" + key }

// openStore opens the state store, if the config asks for one. A store
// that cannot be opened is logged, and healproxy runs without persistence.
func (s *Server) openStore(path string) {
	if path == "" {
		return
	}
	st, err := store.Open(path, s.log)
	if err != nil {
		s.log.Error("health state will not be persisted", "path", path, "error", err)
		return
	}
	s.store = st
	s.audit.Persist = func(b []byte) {
		if err := st.AppendAudit(b); err != nil {
			s.log.Warn("cannot store an audit record", "error", err)
		}
	}
	if recs, err := st.Audit(feed.MaxAudit); err == nil {
		var rs []api.AuditEntry
		for _, b := range recs {
			var r api.AuditEntry
			if json.Unmarshal(b, &r) == nil {
				rs = append(rs, r)
			}
		}
		s.audit.Restore(rs)
	}
}

// restore gives the entries of st their stored state.
func (s *Server) restore(st *state) {
	if s.store == nil {
		return
	}
	s.restoring.Store(true)
	defer s.restoring.Store(false)
	stored, err := s.store.Entries()
	if err != nil {
		s.log.Error("cannot read stored health state; starting fresh", "error", err)
		return
	}
	n := 0
	load := func(key string) (persisted, bool) {
		b, ok := stored[key]
		if !ok {
			return persisted{}, false
		}
		var p persisted
		if err := json.Unmarshal(b, &p); err != nil {
			s.log.Warn("ignoring an unreadable stored entry", "key", key, "error", err)
			return persisted{}, false
		}
		n++
		return p, true
	}
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			if ps, ok := load(upstreamKey(p.ID, u)); ok {
				u.Health.Restore(ps.Health)
				u.RestoreDrain(ps.Drain, time.Now())
			}
		}
	}
	for _, m := range st.modelList {
		if ps, ok := load(modelKey(m.Key)); ok {
			m.Health.Restore(ps.Health)
			m.Restore(ps.Restarts, ps.LastReinit)
		}
	}
	for _, m := range s.llm.Models() {
		for _, ep := range m.Endpoints() {
			if ps, ok := load(endpointKey(m, ep)); ok {
				ep.Health.Restore(ps.Health)
			}
		}
	}
	s.log.Info("health state restored", "path", s.store.Path(), "entries", n, "stored", len(stored))
}

// snapshotState encodes every current entry for the store.
func (s *Server) snapshotState() map[string][]byte {
	st := s.state.Load()
	out := make(map[string][]byte, len(st.providerList)+len(st.modelList))
	put := func(key string, p persisted) {
		if b, err := json.Marshal(p); err == nil {
			out[key] = b
		}
	}
	now := time.Now()
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			put(upstreamKey(p.ID, u), persisted{Health: u.Health.Export(), Drain: u.Drained(now)})
		}
	}
	for _, m := range st.modelList {
		sup := m.State()
		ps := persisted{Restarts: sup.Restarts, LastReinit: sup.LastReinit}
		ps.Health = m.Health.Export()
		put(modelKey(m.Key), ps)
	}
	for _, m := range s.llm.Models() {
		for _, ep := range m.Endpoints() {
			put(endpointKey(m, ep), persisted{Health: ep.Health.Export()})
		}
	}
	return out
}

// saveState writes the current state; the store skips unchanged writes.
func (s *Server) saveState() {
	if s.store == nil {
		return
	}
	if err := s.store.Replace(s.snapshotState()); err != nil {
		s.log.Warn("cannot save health state", "error", err)
	}
}
