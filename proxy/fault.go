package proxy

// Fault injection (admin), after Envoy's fault filter: an operator, or
// `healproxy chaos`, makes one upstream fail on purpose to rehearse an
// outage. The fault sits where an attempt is sent (Upstream.send), inside
// the upstream's breaker call, so the breaker, retries, failover,
// metrics and logs see it exactly as they would see the real failure.
//
//	POST   /api/admin/fault?provider=ID[&upstream=URL|INDEX]  {"kind": "error", "status": 503, "percent": 100, "ttl": "30s"}
//	DELETE /api/admin/fault?provider=ID[&upstream=URL|INDEX]  clear
//	GET    /api/admin/fault[?provider=ID]                     list the faults in force
//
// Every fault has a TTL (default 30s, at most 10m), so a rehearsal that
// crashes cannot leave one behind. Faults live in memory only: a restart
// clears them; a reload keeps them on the upstreams it keeps.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/healproxy/healproxy/api"
)

// Fault kinds.
const (
	// FaultError answers the attempt with an HTTP status (503 unless
	// told), without contacting the upstream.
	FaultError = "error"
	// FaultAbort fails the attempt as a dropped connection would: no
	// answer at all.
	FaultAbort = "abort"
	// FaultDelay holds the attempt for a while, then sends it; a delay
	// past the provider's timeout is a timeout.
	FaultDelay = "delay"
)

// Fault TTL bounds.
const (
	DefaultFaultTTL = 30 * time.Second
	MaxFaultTTL     = 10 * time.Minute
)

// fault is one injected fault, immutable once stored on an upstream.
type fault struct {
	kind    string
	status  int           // FaultError
	delay   time.Duration // FaultDelay
	percent int           // 1–100: the share of attempts it hits
	reason  string
	by      string
	at      time.Time
	until   time.Time
}

// errFaultAbort is the error of an attempt a FaultAbort fault cuts.
var errFaultAbort = errors.New("connection aborted (fault injected by an operator)")

// send sends one attempt to u through base, unless an injected fault
// answers it. With no fault set it costs one atomic load.
func (u *Upstream) send(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if f := u.fault.Load(); f != nil {
		return u.faulted(f, base, req)
	}
	return base.RoundTrip(req)
}

// faulted applies f to one attempt; an expired f is cleared and the
// attempt sent as usual.
func (u *Upstream) faulted(f *fault, base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if !time.Now().Before(f.until) {
		u.fault.CompareAndSwap(f, nil)
		return base.RoundTrip(req)
	}
	if f.percent < 100 && rand.IntN(100) >= f.percent {
		return base.RoundTrip(req)
	}
	switch f.kind {
	case FaultAbort:
		return nil, errFaultAbort
	case FaultDelay:
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
		return base.RoundTrip(req)
	}
	body := `{"status":"error","error":"fault injected by an operator"}`
	if req.Body != nil {
		req.Body.Close() // a RoundTripper closes the request body, even on an answer it makes up
	}
	return &http.Response{
		Status:     strconv.Itoa(f.status) + " " + http.StatusText(f.status),
		StatusCode: f.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Healproxy-Fault": {f.kind}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}, nil
}

// activeFault is u's fault if one is in force now.
func (u *Upstream) activeFault(now time.Time) *fault {
	f := u.fault.Load()
	if f == nil || !now.Before(f.until) {
		return nil
	}
	return f
}

// faultDocument shows u's fault in force, or nil.
func (u *Upstream) faultDocument() *api.Fault {
	f := u.activeFault(time.Now())
	if f == nil {
		return nil
	}
	d := &api.Fault{Kind: f.kind, Percent: f.percent, Reason: f.reason, By: f.by, At: stamp(f.at), Until: stamp(f.until)}
	switch f.kind {
	case FaultError:
		d.Status = f.status
	case FaultDelay:
		d.DelayMS = f.delay.Milliseconds()
	}
	return d
}

var errBadFault = errors.New("bad fault request")

// decodeFault reads and checks a POST body, filling in the defaults.
func decodeFault(r *http.Request) (api.FaultRequest, *fault, error) {
	var req api.FaultRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return req, nil, fmt.Errorf("%w: cannot read body: %v", errBadFault, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, nil, fmt.Errorf(`%w: body must be {"kind": "error"|"abort"|"delay", "status": 503, "delay_ms": 2000, "percent": 100, "ttl": "30s", "reason": "..."}: %v`, errBadFault, err)
	}
	f := &fault{kind: req.Kind, percent: 100, reason: strings.TrimSpace(req.Reason)}
	switch req.Kind {
	case FaultError:
		f.status = http.StatusServiceUnavailable
		if req.Status != 0 {
			if req.Status < 400 || req.Status > 599 {
				return req, nil, fmt.Errorf("%w: status %d: want 400–599 (only 5xx and 429 count as failures)", errBadFault, req.Status)
			}
			f.status = req.Status
		}
	case FaultAbort:
	case FaultDelay:
		// Compared in milliseconds: converted first, a huge delay_ms
		// overflows time.Duration and wraps to a negative delay that
		// passes the bound.
		if maxMS := MaxFaultTTL.Milliseconds(); req.DelayMS <= 0 || req.DelayMS > maxMS {
			return req, nil, fmt.Errorf("%w: delay_ms %d: must be > 0 and at most %d (the max TTL, %s)",
				errBadFault, req.DelayMS, maxMS, MaxFaultTTL)
		}
		f.delay = time.Duration(req.DelayMS) * time.Millisecond
	default:
		return req, nil, fmt.Errorf("%w: kind %q: want error, abort or delay", errBadFault, req.Kind)
	}
	if req.Percent != nil {
		if *req.Percent < 1 || *req.Percent > 100 {
			return req, nil, fmt.Errorf("%w: percent %d: want 1–100", errBadFault, *req.Percent)
		}
		f.percent = *req.Percent
	}
	ttl := DefaultFaultTTL
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 || ttl > MaxFaultTTL {
			return req, nil, fmt.Errorf("%w: ttl %q: want a duration up to %s, like 30s", errBadFault, req.TTL, MaxFaultTTL)
		}
	}
	req.TTL = ttl.String()
	f.at = time.Now()
	f.until = f.at.Add(ttl)
	return req, f, nil
}

// faultTargets are the upstreams of provider p the query's upstream
// names: a display URL, a 0-based index in diagnostics order, or, when
// empty, all of them.
func faultTargets(p *Provider, which string) []*Upstream {
	if which == "" {
		return p.Upstreams
	}
	if i, err := strconv.Atoi(which); err == nil {
		if i < 0 || i >= len(p.Upstreams) {
			return nil
		}
		return p.Upstreams[i : i+1]
	}
	for _, u := range p.Upstreams {
		if strings.TrimRight(which, "/") == strings.TrimRight(u.Display, "/") {
			return []*Upstream{u}
		}
	}
	return nil
}

// serveFault is /api/admin/fault (admin): POST sets a fault, DELETE
// clears, GET lists.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request) {
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
				if d := u.faultDocument(); d != nil {
					list = append(list, map[string]any{"provider_id": p.ID, "upstream": u.Display, "index": i, "fault": d})
				}
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "faults": list})
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+": want GET, POST or DELETE")
		return
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "the provider query parameter is required: ?provider=ID[&upstream=URL or 0-based index]")
		return
	}
	p := st.providers[id]
	if p == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ProviderID: id, Error: "unknown provider " + strconv.Quote(id)})
		return
	}
	targets := faultTargets(p, q.Get("upstream"))
	if len(targets) == 0 {
		// Not echoed as sent: a caller naming the upstream by its full URL
		// would get its API key back in the answer (and in any log of it).
		writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ProviderID: id,
			Error: "provider " + strconv.Quote(id) + " has no upstream " + strconv.Quote(redactInput(q.Get("upstream"))) +
				"; name it as diagnostics show it, without query string, or by its 0-based index"})
		return
	}
	who := s.who(r)
	now := time.Now()
	if r.Method == http.MethodDelete {
		cleared := 0
		for _, u := range targets {
			if old := u.fault.Swap(nil); old != nil && now.Before(old.until) {
				cleared++
				s.audit.add(api.AuditEntry{Time: now, Who: who, Action: "fault-clear", Target: "provider " + id + " upstream " + u.Display, Result: "done"})
				s.log.Warn("fault cleared", "provider", id, "upstream", u.Display, "kind", old.kind, "by", who)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "provider_id": id, "cleared": cleared})
		return
	}
	req, proto, err := decodeFault(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Status: "error", ProviderID: id, Error: err.Error()})
		return
	}
	ttl := proto.until.Sub(proto.at)
	for _, u := range targets {
		f := *proto
		f.by = who
		u.fault.Store(&f)
		time.AfterFunc(ttl, func() { s.faultExpired(id, u, &f) })
		target := "provider " + id + " upstream " + u.Display
		s.audit.add(api.AuditEntry{Time: now, Who: who, Action: "fault-" + f.kind, Target: target, Reason: f.reason, TTL: req.TTL, Result: "done"})
		s.log.Warn("fault injected", "provider", id, "upstream", u.Display, "kind", f.kind, "status", f.status,
			"delay", f.delay, "percent", f.percent, "ttl", req.TTL, "reason", f.reason, "by", who)
	}
	docs := make([]*api.Fault, 0, len(targets))
	for _, u := range targets {
		docs = append(docs, u.faultDocument())
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "provider_id": id, "upstreams": len(targets), "faults": docs})
}

// faultExpired clears f from u when its TTL ends, unless it was cleared
// or replaced before.
func (s *Server) faultExpired(id string, u *Upstream, f *fault) {
	if !u.fault.CompareAndSwap(f, nil) {
		return
	}
	s.audit.add(api.AuditEntry{Time: time.Now(), Who: "ttl", Action: "fault-expired", Target: "provider " + id + " upstream " + u.Display, Result: "done"})
	s.log.Warn("fault expired", "provider", id, "upstream", u.Display, "kind", f.kind)
}
