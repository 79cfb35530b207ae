package breaker

import (
	"fmt"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Snapshot is a consistent-enough copy of an entry for diagnostics: each
// field is read atomically, the whole is not (a call may land in between).
type Snapshot struct {
	Status       Status
	Reason       string // which rule put the entry in Status, in words
	ErrorCount   int64
	SuccessCount int64
	FailureTotal int64 // failures ever recorded (error_count decrements, this does not)
	LastSuccess  time.Time
	LastError    time.Time
	// LastErrorMessage is the newest failure's message, "" when none.
	LastErrorMessage string
	CooldownUntil    time.Time // zero when not cooling down
	InCooldown       bool
	// NextTrialAt is when calls are admitted again (the end of the
	// cooldown); zero when they are admitted now.
	NextTrialAt time.Time
	// HalfOpen: trials are being admitted; TrialSuccesses of TrialsNeeded
	// have succeeded so far.
	HalfOpen       bool
	TrialSuccesses int
	TrialsNeeded   int
	// Forced is the operator's reason while the entry is forced open.
	Forced string
	// PausedUntil is the end of a rate-limit pause in force (zero: none),
	// PauseReason what asked for it.
	PausedUntil time.Time
	PauseReason string
	// LastProbe is the latest active health check, nil when none ran.
	LastProbe *Probe
	// RecentFailures are the last failures, newest first.
	RecentFailures []Failure
	Settings       Settings
}

// Snapshot reads the entry. It has no side effects.
func (e *Entry) Snapshot() Snapshot {
	now := time.Now()
	s := *e.settings.Load()
	snap := Snapshot{
		Status:       e.statusAt(now),
		ErrorCount:   e.errorCount.Load(),
		SuccessCount: e.successCount.Load(),
		FailureTotal: e.totalFailures.Load(),
		LastSuccess:  unixTime(e.lastSuccess.Load()),
		LastError:    unixTime(e.lastError.Load()),
		TrialsNeeded: s.RecoveryCount,
		Settings:     s,
	}
	state := gobreaker.State(e.state.Load())
	if until := e.cooldownUntil.Load(); state != gobreaker.StateClosed && now.UnixNano() <= until { // half-open too: statusAt
		snap.InCooldown = true
		if until != math.MaxInt64 { // forced open without an end: no time to show
			snap.CooldownUntil = time.Unix(0, until)
			snap.NextTrialAt = snap.CooldownUntil
		}
	}
	snap.Forced, _ = e.Forced()
	snap.PausedUntil, snap.PauseReason, _ = e.PausedUntil()
	snap.LastProbe = e.LastProbe()
	if !snap.PausedUntil.IsZero() && snap.PausedUntil.After(snap.NextTrialAt) {
		snap.NextTrialAt = snap.PausedUntil
	}
	if state != gobreaker.StateClosed && !snap.InCooldown {
		snap.HalfOpen = true
		if state == gobreaker.StateHalfOpen {
			snap.TrialSuccesses = int(e.cb.Load().Counts().ConsecutiveSuccesses)
		}
	}

	e.mu.Lock()
	n := min(e.nFail, maxFailures)
	snap.RecentFailures = make([]Failure, 0, n)
	for i := 1; i <= n; i++ {
		snap.RecentFailures = append(snap.RecentFailures, e.failures[(e.nFail-i)%maxFailures])
	}
	e.mu.Unlock()
	if n > 0 {
		snap.LastErrorMessage = snap.RecentFailures[0].Message
	}
	if s.rateRule() && state == gobreaker.StateClosed && (snap.Status == Healthy || snap.Status == Degraded) {
		// the window now, not as the last call or Poll left it
		calls, fails := e.rate.counts(now.UnixNano(), s.bucketWidth())
		snap.Status = Healthy
		if s.rateDegrades(calls, fails) {
			snap.Status = Degraded
		}
	}
	snap.Reason = e.reason(snap, now)
	return snap
}

func (e *Entry) reason(s Snapshot, now time.Time) string {
	if h := e.held.Load(); h != nil {
		return *h
	}
	t := s.Settings.ErrorThreshold
	if !s.PausedUntil.IsZero() {
		return fmt.Sprintf("rate_limited: %s; paused until %s", s.PauseReason, s.PausedUntil.UTC().Format(time.RFC3339))
	}
	switch {
	case s.InCooldown && s.Forced != "" && s.CooldownUntil.IsZero():
		return "forced open by an operator until resumed: " + s.Forced
	case s.InCooldown && s.Forced != "":
		return fmt.Sprintf("forced open by an operator until %s: %s", s.CooldownUntil.UTC().Format(time.RFC3339), s.Forced)
	case s.HalfOpen && e.tripReason.Load() == reasonProbePassed:
		return fmt.Sprintf("a health check passed during the cooldown: recovering, %d of %d consecutive trial successes",
			s.TrialSuccesses, s.TrialsNeeded)
	case s.HalfOpen && e.tripReason.Load() == reasonResumed:
		return fmt.Sprintf("resumed by an operator: recovering, %d of %d consecutive trial successes",
			s.TrialSuccesses, s.TrialsNeeded)
	case s.InCooldown && e.tripReason.Load() == reasonRemote:
		return e.remoteReason(s)
	case s.InCooldown && (e.tripReason.Load() == reasonRate || e.tripReason.Load() == reasonEjected):
		return fmt.Sprintf("%s; cooling down until %s%s", e.tripWords(), s.CooldownUntil.UTC().Format(time.RFC3339), e.grownWords(s))
	case s.InCooldown && e.tripReason.Load() == reasonTrialFailed:
		return fmt.Sprintf("a recovery trial failed; cooling down until %s (trip %d since it was last stable)",
			s.CooldownUntil.UTC().Format(time.RFC3339), e.trips.Load())
	case s.InCooldown:
		return fmt.Sprintf("error_count reached error_threshold %d; cooling down until %s%s",
			t, s.CooldownUntil.UTC().Format(time.RFC3339), e.grownWords(s))
	case s.HalfOpen:
		return fmt.Sprintf("cooldown over: recovering, %d of %d consecutive trial successes (at most %d trials at once)",
			s.TrialSuccesses, s.TrialsNeeded, s.TrialsNeeded)
	}
	if s.Status != Unknown && s.Settings.rateRule() {
		return e.rateReason(s, now)
	}
	switch s.Status {
	case Unknown:
		return "no call yet"
	case Degraded:
		return fmt.Sprintf("error_count %d >= %d (half of error_threshold %d); unavailable at %d",
			s.ErrorCount, s.Settings.DegradedAt(), t, t)
	case Healthy:
		if s.ErrorCount > 0 {
			return fmt.Sprintf("answering; error_count %d below the degraded mark %d", s.ErrorCount, s.Settings.DegradedAt())
		}
		return "answering; no recent errors"
	}
	return ""
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// grownWords says how the cooldown backoff grew this cooldown, "" when it
// did not.
func (e *Entry) grownWords(s Snapshot) string {
	if n := e.trips.Load(); n > 1 && s.Settings.CooldownMultiplier > 1 {
		return fmt.Sprintf(" (trip %d since it was last stable: cooldown grown ×%g per trip)", n, s.Settings.CooldownMultiplier)
	}
	return ""
}

// tripWords says why the entry tripped last, in words, for other
// replicas and for the reason of a rate trip or an ejection.
func (e *Entry) tripWords() string {
	switch e.tripReason.Load() {
	case reasonTrialFailed:
		return "a recovery trial failed"
	case reasonRate, reasonEjected:
		if d := e.tripDetail.Load(); d != nil {
			return *d
		}
		if e.tripReason.Load() == reasonEjected {
			return "ejected by outlier detection"
		}
		s := e.settings.Load()
		return fmt.Sprintf("failure rate reached failure_rate %s over at least %d calls in %s", percent(s.FailureRate), s.MinRequests, s.Window)
	}
	return fmt.Sprintf("error_count reached error_threshold %d", e.settings.Load().ErrorThreshold)
}
