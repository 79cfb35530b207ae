package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// Pause stops calls until until because the backend said so (a 429 or 503
// with Retry-After or X-RateLimit-Reset): rate limited is not unhealthy, so
// it neither counts as a failure nor grows the cooldown backoff. A later
// pause extends the current one, never shortens it. While paused the
// entry is unavailable with reason "rate_limited".
func (e *Entry) Pause(until time.Time, reason string) {
	u := until.UnixNano()
	for {
		old := e.pausedUntil.Load()
		if u <= old {
			return // never shorten
		}
		if e.pausedUntil.CompareAndSwap(old, u) {
			break
		}
	}
	e.pauseReason.Store(&reason)
	e.publish()
}

// PausedUntil is the end of a rate-limit pause in force now.
func (e *Entry) PausedUntil() (time.Time, string, bool) {
	p := e.pausedUntil.Load()
	if p == 0 || time.Now().UnixNano() > p {
		return time.Time{}, "", false
	}
	reason := ""
	if r := e.pauseReason.Load(); r != nil {
		reason = *r
	}
	return time.Unix(0, p), reason, true
}

// Probe is the result of an active health check.
type Probe struct {
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	Failure *Failure  `json:"failure,omitempty"`
}

// Probe records an active health check's result. ok during a cooldown
// ends it early (recovery trials then decide), unless an operator forced
// the entry open; ok while closed with errors takes one off error_count; a
// failure while closed counts like a failed call (it can trip the entry); a
// failure while cooling down or half-open changes nothing. Probes never
// touch success_count or the history, but an entry that was never called
// is no longer unknown once probed. The latest is kept (LastProbe).
func (e *Entry) Probe(ok bool, f *Failure) {
	now := time.Now()
	pr := &Probe{Time: now, OK: ok}
	if !ok && f != nil {
		c := *f
		c.Time = now
		pr.Failure = &c
	}
	e.lastProbe.Store(pr)
	if !e.called.Load() {
		e.called.Store(true) // checked: no longer unknown
	}
	state := gobreaker.State(e.state.Load())
	switch {
	case ok && state == gobreaker.StateOpen:
		if _, forced := e.Forced(); !forced && now.UnixNano() <= e.cooldownUntil.Load() {
			e.cooldownUntil.Store(now.UnixNano() - 1)
			e.tripReason.Store(reasonProbePassed)
		}
	case ok && state == gobreaker.StateClosed:
		decrementFloor0(&e.errorCount)
	case !ok && state == gobreaker.StateClosed && e.held.Load() == nil:
		if f == nil {
			f = &Failure{Kind: KindError, Message: "health check failed"}
		}
		s := e.settings.Load()
		if s.rateRule() { // a failed probe counts as a failed call in the window
			e.recordRate(s, now.UnixNano(), true)
		}
		e.errorCount.Add(1)
		e.totalFailures.Add(1)
		e.lastError.Store(now.UnixNano())
		rec := *f
		rec.Time = now
		e.mu.Lock()
		e.failures[e.nFail%maxFailures] = rec
		e.nFail++
		e.mu.Unlock()
		if s.rateRule() || e.errorCount.Load() >= int64(s.ErrorThreshold) { // ReadyToTrip decides by the rate
			e.cb.Load().Execute(func() (struct{}, error) { return struct{}{}, errProbeFailed })
		}
	}
	e.publish()
}

// LastProbe is the latest active health check, nil when none ran.
func (e *Entry) LastProbe() *Probe { return e.lastProbe.Load() }
