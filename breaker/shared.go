package breaker

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Health shared with other replicas. The entry stays the only decider on
// the request path; SharedHooks let a caller (the cluster package) hear of
// the entry's own trips and recoveries, apply other replicas' (ApplyTrip,
// ApplyClose) and gate recovery trials cluster-wide (TrialGate). None of
// this touches the closed state's success path.

// SharedHooks connect an entry to health shared with other replicas. Any
// hook may be nil.
type SharedHooks struct {
	// Tripped is called when the entry trips on its own: error_count
	// reached the threshold, a recovery trial failed, a health check
	// failed. Not for ApplyTrip, ForceOpen or Restore. It runs under
	// gobreaker's mutex on the request path: it must not block (queue the
	// trip and return) and must not call the entry.
	Tripped func(e *Entry, t Trip)
	// Closed is called when the entry recovers on its own (R consecutive
	// trial successes) or is Reset. Same rules as Tripped.
	Closed func(e *Entry, at time.Time)
	// TrialGate is asked before a call is admitted while the entry is not
	// closed and its cooldown is over, that is before every recovery
	// trial. gen names the cooldown that ended (its end, unix ns): the
	// same on every replica that applied the same trip. false refuses the
	// call with ErrTrialsBusy. It runs on the request path: it must be
	// quick after its first call per gen.
	TrialGate func(e *Entry, gen int64) bool
}

// Trip is a trip as SharedHooks.Tripped reports it.
type Trip struct {
	At         time.Time
	Until      time.Time // the end of the cooldown
	Reason     string    // in words, for other replicas' diagnostics
	ErrorCount int64
}

// reasonRemote: the entry applied another replica's trip (ApplyTrip).
const reasonRemote int32 = 64

type sharedState struct {
	hooks     atomic.Pointer[SharedHooks]
	from      atomic.Pointer[string] // the replica whose trip was applied
	trippedAt atomic.Int64           // unix ns of the latest trip, own or applied
}

// SetShared installs hooks (nil removes them). Safe at any time.
func (e *Entry) SetShared(h *SharedHooks) { e.shared.hooks.Store(h) }

// trialGated says whether the trial gate refuses a call now. Only called
// while the entry is not closed.
func (e *Entry) trialGated() bool {
	h := e.shared.hooks.Load()
	return h != nil && h.TrialGate != nil && !h.TrialGate(e, e.cooldownUntil.Load())
}

// sharedChanged reports the entry's own trips and recoveries. It runs in
// gobreaker's OnStateChange, under its mutex: atomics and the hooks only.
func (e *Entry) sharedChanged(from, to gobreaker.State) {
	if e.forceTrip.Load() { // forced: an operator, a restore or ApplyTrip
		return
	}
	now := time.Now()
	if to == gobreaker.StateOpen {
		e.shared.trippedAt.Store(now.UnixNano())
	}
	h := e.shared.hooks.Load()
	if h == nil {
		return
	}
	switch {
	case to == gobreaker.StateOpen && h.Tripped != nil:
		e.shared.from.Store(nil)
		h.Tripped(e, Trip{At: now, Until: time.Unix(0, e.cooldownUntil.Load()), Reason: e.tripWords(), ErrorCount: e.errorCount.Load()})
	case to == gobreaker.StateClosed && from != gobreaker.StateClosed && h.Closed != nil:
		h.Closed(e, now)
	}
}

// sharedReset reports a Reset (self-heal) as a recovery.
func (e *Entry) sharedReset() {
	e.shared.from.Store(nil)
	if h := e.shared.hooks.Load(); h != nil && h.Closed != nil {
		h.Closed(e, time.Now())
	}
}

// ApplyTrip applies another replica's trip, made at at: the entry cools
// down until until (which may be past: then recovery trials decide), and
// its reason names replica. It changes nothing and returns false when the
// entry already cools down at least as long, recovered after at, or is
// forced open by an operator (whose decision stands). It is not reported
// to SharedHooks.Tripped.
func (e *Entry) ApplyTrip(until, at time.Time, replica string) bool {
	if e.forceReason.Load() != nil {
		return false
	}
	u := until.UnixNano()
	switch gobreaker.State(e.state.Load()) {
	case gobreaker.StateClosed:
		if e.closedAt.Load() > at.UnixNano() {
			return false // recovered since
		}
	default:
		if e.cooldownUntil.Load() >= u {
			return false
		}
	}
	e.shared.from.Store(&replica)
	e.trip(u, reasonRemote)
	e.shared.trippedAt.Store(at.UnixNano())
	e.publish()
	return true
}

// ApplyClose applies another replica's recovery, made at at: the entry is
// closed (healthy), error_count 0, cooldown cleared; its cooldown backoff
// is kept. It changes nothing and returns false when the entry is closed
// already, tripped after at, or is forced open by an operator. It is not
// reported to SharedHooks.Closed.
func (e *Entry) ApplyClose(at time.Time) bool {
	if gobreaker.State(e.state.Load()) == gobreaker.StateClosed || e.forceReason.Load() != nil {
		return false
	}
	if e.shared.trippedAt.Load() > at.UnixNano() {
		return false // tripped again since
	}
	s := e.settings.Load()
	e.cb.Store(e.newBreaker(*s)) // calls in flight on the old one are not counted
	e.state.Store(int32(gobreaker.StateClosed))
	e.cooldownUntil.Store(0)
	e.tripReason.Store(reasonNone)
	e.errorCount.Store(0)
	e.clearRate()
	e.closedAt.Store(time.Now().UnixNano())
	e.called.Store(true) // healthy, not unknown: it was shown unavailable
	e.shared.from.Store(nil)
	e.publish()
	return true
}

// SharedView is what of an entry other replicas are told.
type SharedView struct {
	Open       bool      // cooling down, or waiting for recovery trials
	Until      time.Time // the end of the cooldown, when Open and not Indefinite
	Indefinite bool      // forced open without an end
	Forced     bool      // forced open by an operator: local, never shared
	TrippedAt  time.Time // the latest trip, own or applied; zero when unknown
	ClosedAt   time.Time // the latest recovery; zero when none
	Remote     string    // the replica whose trip this is; "" for the entry's own
	Reason     string
	ErrorCount int64
}

// SharedView reads the entry for other replicas. No side effects.
func (e *Entry) SharedView() SharedView {
	v := SharedView{
		TrippedAt:  unixTime(e.shared.trippedAt.Load()),
		ClosedAt:   unixTime(e.closedAt.Load()),
		ErrorCount: e.errorCount.Load(),
		Forced:     e.forceReason.Load() != nil,
	}
	if r := e.shared.from.Load(); r != nil {
		v.Remote = *r
	}
	if gobreaker.State(e.state.Load()) != gobreaker.StateClosed {
		v.Open = true
		if until := e.cooldownUntil.Load(); until == math.MaxInt64 {
			v.Indefinite = true
		} else {
			v.Until = time.Unix(0, until)
		}
		if e.tripReason.Load() == reasonRemote {
			v.Reason = "tripped on replica " + v.Remote
		} else {
			v.Reason = e.tripWords()
		}
	}
	return v
}

// remoteReason is the Snapshot reason of an entry cooling down because of
// another replica's trip.
func (e *Entry) remoteReason(s Snapshot) string {
	from := "another replica"
	if r := e.shared.from.Load(); r != nil && *r != "" {
		from = "replica " + *r
	}
	return fmt.Sprintf("tripped on %s; cooling down until %s", from, s.CooldownUntil.UTC().Format(time.RFC3339))
}

// UnmarshalText reads a Status written by MarshalText (another replica's
// view of an entry).
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if string(b) == n {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown status %q", b)
}
