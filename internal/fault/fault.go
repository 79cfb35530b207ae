// Package fault is the fault model of the admin fault injection, after
// Envoy's fault filter: an operator, or `healproxy chaos`, makes one
// upstream fail on purpose to rehearse an outage (README, "Fault
// injection"; docs/behaviour.md).
//
//	POST   /api/admin/fault?provider=ID[&upstream=URL|INDEX]  {"kind": "error", "status": 503, "percent": 100, "ttl": "30s"}
//	DELETE /api/admin/fault?provider=ID[&upstream=URL|INDEX]  clear
//	GET    /api/admin/fault[?provider=ID]                     list the faults in force
//
// Parse reads and checks a request; a Fault applies itself to one attempt
// (RoundTrip) and shows itself (Document). Where a fault is kept and when
// it applies is the provider's: it sits where an attempt is sent, inside
// the upstream's breaker call, so the breaker, retries, failover, metrics
// and logs see it exactly as they would see the real failure.
//
// Every fault has a TTL (DefaultTTL unless told, at most MaxTTL), so a
// rehearsal that crashes cannot leave one behind.
package fault

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
	// KindError answers the attempt with an HTTP status (503 unless
	// told), without contacting the upstream.
	KindError = "error"
	// KindAbort fails the attempt as a dropped connection would: no
	// answer at all.
	KindAbort = "abort"
	// KindDelay holds the attempt for a while, then sends it; a delay
	// past the provider's timeout is a timeout.
	KindDelay = "delay"
)

// TTL bounds.
const (
	DefaultTTL = 30 * time.Second
	MaxTTL     = 10 * time.Minute
)

// Fault is one injected fault, immutable once stored on an upstream.
type Fault struct {
	Kind    string
	Status  int           // KindError
	Delay   time.Duration // KindDelay
	Percent int           // 1–100: the share of attempts it hits
	Reason  string
	By      string
	At      time.Time
	Until   time.Time
}

// ErrAbort is the error of an attempt a KindAbort fault cuts.
var ErrAbort = errors.New("connection aborted (fault injected by an operator)")

// Expired says whether f's TTL has ended at now.
func (f *Fault) Expired(now time.Time) bool { return !now.Before(f.Until) }

// RoundTrip applies f to one attempt, whatever its TTL (the caller checks
// Expired): Percent of the attempts get the fault, the others are sent
// through base as usual. Like any http.RoundTripper it closes req's body
// when it answers without sending.
func (f *Fault) RoundTrip(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if f.Percent < 100 && rand.IntN(100) >= f.Percent {
		return base.RoundTrip(req)
	}
	switch f.Kind {
	case KindAbort:
		return nil, ErrAbort
	case KindDelay:
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

// Document is f as the diagnostics and admin endpoints show it.
func (f *Fault) Document() *api.Fault {
	d := &api.Fault{Kind: f.Kind, Percent: f.Percent, Reason: f.Reason, By: f.By, At: api.Stamp(f.At), Until: api.Stamp(f.Until)}
	switch f.Kind {
	case KindError:
		d.Status = f.Status
	case KindDelay:
		d.DelayMS = f.Delay.Milliseconds()
	}
	return d
}

// ErrBadRequest is wrapped by every error of Parse.
var ErrBadRequest = errors.New("bad fault request")

// Parse reads and checks a POST body of /api/admin/fault, filling in the
// defaults; the fault starts now. It reads at most 64 KiB of body.
func Parse(body io.Reader) (api.FaultRequest, *Fault, error) {
	var req api.FaultRequest
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return req, nil, fmt.Errorf("%w: cannot read body: %v", ErrBadRequest, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, nil, fmt.Errorf(`%w: body must be {"kind": "error"|"abort"|"delay", "status": 503, "delay_ms": 2000, "percent": 100, "ttl": "30s", "reason": "..."}: %v`, ErrBadRequest, err)
	}
	f := &Fault{Kind: req.Kind, Percent: 100, Reason: strings.TrimSpace(req.Reason)}
	switch req.Kind {
	case KindError:
		f.Status = http.StatusServiceUnavailable
		if req.Status != 0 {
			if req.Status < 400 || req.Status > 599 {
				return req, nil, fmt.Errorf("%w: status %d: want 400–599 (only 5xx and 429 count as failures)", ErrBadRequest, req.Status)
			}
			f.Status = req.Status
		}
	case KindAbort:
	case KindDelay:
		// Compared in milliseconds: converted first, a huge delay_ms
		// overflows time.Duration and wraps to a negative delay that
		// passes the bound.
		if maxMS := MaxTTL.Milliseconds(); req.DelayMS <= 0 || req.DelayMS > maxMS {
			return req, nil, fmt.Errorf("%w: delay_ms %d: must be > 0 and at most %d (the max TTL, %s)",
				ErrBadRequest, req.DelayMS, maxMS, MaxTTL)
		}
		f.Delay = time.Duration(req.DelayMS) * time.Millisecond
	default:
		return req, nil, fmt.Errorf("%w: kind %q: want error, abort or delay", ErrBadRequest, req.Kind)
	}
	if req.Percent != nil {
		if *req.Percent < 1 || *req.Percent > 100 {
			return req, nil, fmt.Errorf("%w: percent %d: want 1–100", ErrBadRequest, *req.Percent)
		}
		f.Percent = *req.Percent
	}
	ttl := DefaultTTL
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 || ttl > MaxTTL {
			return req, nil, fmt.Errorf("%w: ttl %q: want a duration up to %s, like 30s", ErrBadRequest, req.TTL, MaxTTL)
		}
	}
	req.TTL = ttl.String()
	f.At = time.Now()
	f.Until = f.At.Add(ttl)
	return req, f, nil
}
