package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/feed"
	"github.com/healproxy/healproxy/internal/redact"
	"github.com/healproxy/healproxy/provider"
)

// Operator controls (admin): drain an upstream (no new requests; those in
// flight finish), force it open (unavailable whatever its health says), or
// resume it (end a drain, a forced or an ordinary cooldown: recovery trials
// then decide). Each takes a reason and an optional TTL, is logged and is
// kept in the audit log.

// controlRequest is the body of POST /api/admin/providers/{id}/{action}.
type controlRequest struct {
	Upstream string `json:"upstream"` // display URL; empty: every upstream of the provider
	Reason   string `json:"reason"`
	TTL      string `json:"ttl"` // Go duration; empty: until resumed
}

// who names the admin caller for the audit log: the token (never its value)
// or the loopback address.
func (s *Server) who(r *http.Request) string {
	if s.state.Load().cfg.AdminToken != "" {
		return "token from " + r.RemoteAddr
	}
	return "loopback " + r.RemoteAddr
}

var errBadControl = errors.New("bad control request")

func decodeControl(r *http.Request) (controlRequest, time.Duration, error) {
	var req controlRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return req, 0, fmt.Errorf("%w: cannot read body: %v", errBadControl, err)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, 0, fmt.Errorf(`%w: body must be {"upstream": "...", "reason": "...", "ttl": "30m"}: %v`, errBadControl, err)
		}
	}
	// query parameters work too, for curl one-liners
	q := r.URL.Query()
	if v := q.Get("upstream"); v != "" {
		req.Upstream = v
	}
	if v := q.Get("reason"); v != "" {
		req.Reason = v
	}
	if v := q.Get("ttl"); v != "" {
		req.TTL = v
	}
	var ttl time.Duration
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 {
			return req, 0, fmt.Errorf("%w: ttl %q is not a positive duration like 30m", errBadControl, req.TTL)
		}
	}
	return req, ttl, nil
}

// serveControl is POST /api/admin/providers/{id}/{drain|force-open|resume}.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) error {
	id, action := chi.URLParam(r, "id"), chi.URLParam(r, "action")
	p := s.state.Load().providers[id]
	if p == nil {
		return &api.Error{Status: http.StatusNotFound, ProviderID: id, Msg: "unknown provider " + strconv.Quote(id)}
	}
	if action != "drain" && action != "force-open" && action != "resume" { // before the body's checks
		return &api.Error{Status: http.StatusNotFound, Msg: "unknown action " + strconv.Quote(action) + ": want drain, force-open or resume"}
	}
	req, ttl, err := decodeControl(r)
	if err != nil {
		return &api.Error{Status: http.StatusBadRequest, ProviderID: id, Msg: err.Error()}
	}
	if action != "resume" && strings.TrimSpace(req.Reason) == "" {
		return &api.Error{Status: http.StatusBadRequest, ProviderID: id, Msg: "a reason is required"}
	}
	var targets []*provider.Upstream
	for _, u := range p.Upstreams {
		if req.Upstream == "" || strings.TrimRight(req.Upstream, "/") == strings.TrimRight(u.Display, "/") {
			targets = append(targets, u)
		}
	}
	if len(targets) == 0 {
		// Not echoed as sent: a caller naming the upstream by its full URL
		// would get its API key back in the answer (and in any log of it).
		return &api.Error{Status: http.StatusNotFound, ProviderID: id, Msg: "provider " + strconv.Quote(id) +
			" has no upstream " + strconv.Quote(redact.Input(req.Upstream)) + "; name it as diagnostics show it, without query string"}
	}
	now := time.Now()
	var until time.Time
	if ttl > 0 {
		until = now.Add(ttl)
	}
	who := s.who(r)
	for _, u := range targets {
		switch action {
		case "drain":
			u.Drain(req.Reason, who, now, until)
		case "force-open":
			u.Health.ForceOpen(until, req.Reason)
		case "resume":
			u.Resume()
		default:
			return &api.Error{Status: http.StatusNotFound, Msg: "unknown action " + strconv.Quote(action) + ": want drain, force-open or resume"}
		}
		s.audit.Add(api.AuditEntry{Time: now, Who: who, Action: action, Target: "provider " + id + " upstream " + u.Display,
			Reason: req.Reason, TTL: req.TTL, Result: "done"})
		s.log.Warn("operator control", "action", action, "provider", id, "upstream", u.Display,
			"reason", req.Reason, "ttl", req.TTL, "by", who)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "provider_id": id, "action": action,
		"upstreams": len(targets), "entry": providerEntry(p)})
	return nil
}

// serveAudit is GET /api/admin/audit (admin): the newest records, oldest
// first; ?limit=N (default 100).
func (s *Server) serveAudit(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return &api.Error{Status: http.StatusBadRequest, Msg: "limit must be a positive whole number"}
		}
		limit = min(n, feed.MaxAudit)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "records": s.audit.Last(limit)})
	return nil
}
