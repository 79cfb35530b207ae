package provider

import (
	"time"

	"github.com/healproxy/healproxy/api"
)

// Operator controls (admin): drain an upstream (no new requests; those in
// flight finish), force it open (unavailable whatever its health says), or
// resume it (end a drain, a forced or an ordinary cooldown: recovery trials
// then decide).

// DrainInfo is an operator's drain of one upstream.
type DrainInfo struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"` // zero: until resumed
}

// Drained is the upstream's drain, if one is in force now.
func (u *Upstream) Drained(now time.Time) *DrainInfo {
	d := u.drain.Load()
	if d == nil || (!d.Until.IsZero() && now.After(d.Until)) {
		return nil
	}
	return d
}

// Operator shows an operator's action in force on u, or nil.
func (u *Upstream) Operator() *api.Operator {
	if d := u.Drained(time.Now()); d != nil {
		return &api.Operator{Action: "drain", Reason: d.Reason, By: d.By, At: api.Stamp(d.At), Until: api.Stamp(d.Until)}
	}
	until, cooling := u.Health.CooldownUntil() // a forced cooldown whose TTL ended is over
	if reason, ok := u.Health.Forced(); ok && cooling {
		doc := &api.Operator{Action: "force_open", Reason: reason}
		if until.Year() < 2200 {
			doc.Until = api.Stamp(until)
		}
		return doc
	}
	return nil
}

// Drain stops new requests to u from now until until (zero: until
// Resume); requests in flight finish.
func (u *Upstream) Drain(reason, by string, now, until time.Time) {
	u.drain.Store(&DrainInfo{Reason: reason, By: by, At: now, Until: until})
}

// Resume ends a drain, a forced or an ordinary cooldown of u: recovery
// trials then decide.
func (u *Upstream) Resume() {
	u.drain.Store(nil)
	u.Health.Resume()
}

// RestoreDrain gives u a drain kept in the state file, unless it has
// ended.
func (u *Upstream) RestoreDrain(d *DrainInfo, now time.Time) {
	if d != nil && (d.Until.IsZero() || now.Before(d.Until)) {
		u.drain.Store(d)
	}
}
