package breaker

import (
	"errors"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
)

// errForced is the result that trips the breaker on ForceOpen and Restore;
// it is never recorded as a failure.
var errForced = errors.New("forced open")

// trip opens the gobreaker whatever its counts say, without touching the
// entry's counters, and sets the end of the cooldown to until (math.MaxInt64
// for none, 0 for the one the backoff gives a trip now) and the trip's reason. The gobreaker transition stores them
// itself, before the state: no reader sees the entry open with the
// cooldown or the reason of a local trip in between.
func (e *Entry) trip(until int64, reason int32) {
	e.forceUntil.Store(until)
	e.forceWhy.Store(reason)
	e.forceTrip.Store(true)
	cb := e.cb.Load()
	// From half-open or closed one failure opens it; from open the expired
	// nanosecond timeout moves it to half-open first.
	for range 3 {
		if gobreaker.State(e.state.Load()) == gobreaker.StateOpen {
			break
		}
		cb.Execute(func() (struct{}, error) { return struct{}{}, errForced })
	}
	e.forceTrip.Store(false)
	if until != 0 {
		e.cooldownUntil.Store(until)
	}
	e.tripReason.Store(reason)
}

// ForceOpen makes the entry unavailable until until (zero: until Resume or
// Reset) whatever its counters say: an operator's decision, with the reason
// shown in Snapshot. When it ends by itself, recovery trials decide as after
// any cooldown.
func (e *Entry) ForceOpen(until time.Time, reason string) {
	end := int64(math.MaxInt64)
	if !until.IsZero() {
		end = until.UnixNano()
	}
	e.forceReason.Store(&reason)
	e.trip(end, reasonForced)
	e.publish()
}

// Resume ends a cooldown now, forced or not: the next calls are recovery
// trials (half-open), which decide whether the entry is healthy. An entry
// that is not cooling down is left alone.
func (e *Entry) Resume() {
	e.forceReason.Store(nil)
	if gobreaker.State(e.state.Load()) == gobreaker.StateOpen {
		e.cooldownUntil.Store(time.Now().UnixNano() - 1)
		e.tripReason.Store(reasonResumed)
	}
	e.publish()
}

// Forced returns the operator's reason while the entry is forced open.
func (e *Entry) Forced() (string, bool) {
	if r := e.forceReason.Load(); r != nil {
		return *r, true
	}
	return "", false
}

// State is what of an entry survives a restart (see Export, Restore).
type State struct {
	Called         bool      `json:"called,omitempty"`
	ErrorCount     int64     `json:"error_count"`
	SuccessCount   int64     `json:"success_count"`
	FailureTotal   int64     `json:"failure_total,omitempty"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastError      time.Time `json:"last_error,omitzero"`
	Open           bool      `json:"open,omitempty"` // cooling down, or cooled down and waiting for trials
	CooldownUntil  time.Time `json:"cooldown_until,omitzero"`
	Indefinite     bool      `json:"indefinite,omitempty"` // forced open without an end
	TripReason     int32     `json:"trip_reason,omitempty"`
	ForceReason    string    `json:"force_reason,omitempty"`
	PausedUntil    time.Time `json:"paused_until,omitzero"`
	PauseReason    string    `json:"pause_reason,omitempty"`
	Trips          int32     `json:"trips,omitempty"`           // for the cooldown backoff
	ClosedAt       time.Time `json:"closed_at,omitzero"`        // last recovery
	RecentFailures []Failure `json:"recent_failures,omitempty"` // newest first
	// TripDetail is the numbers of a rate trip or an ejection, in words.
	TripDetail string `json:"trip_detail,omitempty"`
}

// Export reads the entry's durable state. Holds (a dead plugin) are not
// part of it: they describe a process, not the backend's health.
func (e *Entry) Export() State {
	st := State{
		Called:       e.called.Load(),
		ErrorCount:   e.errorCount.Load(),
		SuccessCount: e.successCount.Load(),
		FailureTotal: e.totalFailures.Load(),
		LastSuccess:  unixTime(e.lastSuccess.Load()),
		LastError:    unixTime(e.lastError.Load()),
		TripReason:   e.tripReason.Load(),
	}
	if gobreaker.State(e.state.Load()) != gobreaker.StateClosed {
		st.Open = true
		if until := e.cooldownUntil.Load(); until == math.MaxInt64 {
			st.Indefinite = true
		} else {
			st.CooldownUntil = time.Unix(0, until)
		}
	}
	if r := e.forceReason.Load(); r != nil {
		st.ForceReason = *r
	}
	st.PausedUntil, st.PauseReason, _ = e.PausedUntil()
	st.Trips = e.trips.Load()
	st.ClosedAt = unixTime(e.closedAt.Load())
	if d := e.tripDetail.Load(); d != nil && st.Open {
		st.TripDetail = *d
	}
	e.mu.Lock()
	n := min(e.nFail, maxFailures)
	for i := 1; i <= n; i++ {
		st.RecentFailures = append(st.RecentFailures, e.failures[(e.nFail-i)%maxFailures])
	}
	e.mu.Unlock()
	return st
}

// Restore sets the entry to a state Export returned, typically before any
// call: an entry that was cooling down cools down until the same
// cooldown_until; one whose cooldown had ended gets recovery trials.
func (e *Entry) Restore(st State) {
	e.called.Store(st.Called)
	e.errorCount.Store(st.ErrorCount)
	e.successCount.Store(st.SuccessCount)
	e.totalFailures.Store(st.FailureTotal)
	e.lastSuccess.Store(nanos(st.LastSuccess))
	e.lastError.Store(nanos(st.LastError))
	e.mu.Lock()
	e.nFail = 0
	for i := len(st.RecentFailures) - 1; i >= 0 && i >= len(st.RecentFailures)-maxFailures; i-- {
		e.failures[e.nFail%maxFailures] = st.RecentFailures[i]
		e.nFail++
	}
	e.mu.Unlock()
	if st.ForceReason != "" {
		r := st.ForceReason
		e.forceReason.Store(&r)
	}
	e.trips.Store(st.Trips)
	e.closedAt.Store(nanos(st.ClosedAt))
	if !st.PausedUntil.IsZero() {
		r := st.PauseReason
		e.pauseReason.Store(&r)
		e.pausedUntil.Store(st.PausedUntil.UnixNano())
	}
	if st.Open {
		until := int64(math.MaxInt64)
		if !st.Indefinite {
			until = st.CooldownUntil.UnixNano()
		}
		reason := st.TripReason
		if reason == reasonNone {
			reason = reasonThreshold
		}
		if st.TripDetail != "" {
			d := st.TripDetail
			e.tripDetail.Store(&d)
		}
		e.trip(until, reason)
	}
	e.publish()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
