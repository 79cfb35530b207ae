package provider

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

// Fault is one injected fault, immutable once stored on an upstream.
type Fault struct {
	Kind    string
	Status  int           // FaultError
	Delay   time.Duration // FaultDelay
	Percent int           // 1–100: the share of attempts it hits
	Reason  string
	By      string
	At      time.Time
	Until   time.Time
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
func (u *Upstream) faulted(f *Fault, base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if !time.Now().Before(f.Until) {
		u.fault.CompareAndSwap(f, nil)
		return base.RoundTrip(req)
	}
	if f.Percent < 100 && rand.IntN(100) >= f.Percent {
		return base.RoundTrip(req)
	}
	switch f.Kind {
	case FaultAbort:
		return nil, errFaultAbort
	case FaultDelay:
		t := time.NewTimer(f.Delay)
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
		Status:     strconv.Itoa(f.Status) + " " + http.StatusText(f.Status),
		StatusCode: f.Status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Healproxy-Fault": {f.Kind}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}, nil
}

// activeFault is u's fault if one is in force now.
func (u *Upstream) activeFault(now time.Time) *Fault {
	f := u.fault.Load()
	if f == nil || !now.Before(f.Until) {
		return nil
	}
	return f
}

// FaultDocument shows u's fault in force, or nil.
func (u *Upstream) FaultDocument() *api.Fault {
	f := u.activeFault(time.Now())
	if f == nil {
		return nil
	}
	d := &api.Fault{Kind: f.Kind, Percent: f.Percent, Reason: f.Reason, By: f.By, At: api.Stamp(f.At), Until: api.Stamp(f.Until)}
	switch f.Kind {
	case FaultError:
		d.Status = f.Status
	case FaultDelay:
		d.DelayMS = f.Delay.Milliseconds()
	}
	return d
}

var errBadFault = errors.New("bad fault request")

// ParseFault reads and checks a POST body of /api/admin/fault, filling in the defaults.
func ParseFault(body io.Reader) (api.FaultRequest, *Fault, error) {
	var req api.FaultRequest
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return req, nil, fmt.Errorf("%w: cannot read body: %v", errBadFault, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, nil, fmt.Errorf(`%w: body must be {"kind": "error"|"abort"|"delay", "status": 503, "delay_ms": 2000, "percent": 100, "ttl": "30s", "reason": "..."}: %v`, errBadFault, err)
	}
	f := &Fault{Kind: req.Kind, Percent: 100, Reason: strings.TrimSpace(req.Reason)}
	switch req.Kind {
	case FaultError:
		f.Status = http.StatusServiceUnavailable
		if req.Status != 0 {
			if req.Status < 400 || req.Status > 599 {
				return req, nil, fmt.Errorf("%w: status %d: want 400–599 (only 5xx and 429 count as failures)", errBadFault, req.Status)
			}
			f.Status = req.Status
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
		f.Delay = time.Duration(req.DelayMS) * time.Millisecond
	default:
		return req, nil, fmt.Errorf("%w: kind %q: want error, abort or delay", errBadFault, req.Kind)
	}
	if req.Percent != nil {
		if *req.Percent < 1 || *req.Percent > 100 {
			return req, nil, fmt.Errorf("%w: percent %d: want 1–100", errBadFault, *req.Percent)
		}
		f.Percent = *req.Percent
	}
	ttl := DefaultFaultTTL
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 || ttl > MaxFaultTTL {
			return req, nil, fmt.Errorf("%w: ttl %q: want a duration up to %s, like 30s", errBadFault, req.TTL, MaxFaultTTL)
		}
	}
	req.TTL = ttl.String()
	f.At = time.Now()
	f.Until = f.At.Add(ttl)
	return req, f, nil
}

// UpstreamsNamed are the upstreams of p an admin request's upstream
// names: a display URL, a 0-based index in diagnostics order, or, when
// empty, all of them.
func (p *Provider) UpstreamsNamed(which string) []*Upstream {
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

// InjectFault sets f on u (replacing any other) until f.Until; ExpireFault
// clears it then.
func (u *Upstream) InjectFault(f *Fault) { u.fault.Store(f) }

// ClearFault clears u's fault and returns it, if one was in force.
func (u *Upstream) ClearFault(now time.Time) *Fault {
	if old := u.fault.Swap(nil); old != nil && now.Before(old.Until) {
		return old
	}
	return nil
}

// ExpireFault clears f from u when its TTL ends, unless it was cleared
// or replaced before; it says whether it did.
func (u *Upstream) ExpireFault(f *Fault) bool { return u.fault.CompareAndSwap(f, nil) }
