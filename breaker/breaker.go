// Package breaker is healproxy's health state machine for one provider
// upstream or one model, built on github.com/sony/gobreaker/v2. It knows
// nothing of HTTP: callers classify their own results.
//
// With threshold T, cooldown C and recovery count R (docs/behaviour.md):
//
//	unknown ──call──▶ healthy ◀─────────── R consecutive trial successes
//	                    │ ▲ success: error_count −1           ▲
//	          failure:  ▼ │                                    │
//	        error_count+1 degraded (error_count ≥ max(1, T/2)) │
//	                    │                                      │
//	   error_count ≥ T  ▼                                      │
//	              unavailable (cooldown C) ──C over──▶ half-open, shown degraded:
//	                    ▲                              at most R trials at once
//	                    └────────── a trial failure ───────────┘
//
// The open/half-open/closed part is a gobreaker.CircuitBreaker with
// MaxRequests = R: gobreaker trips, admits at most R trial requests in
// half-open and closes after R consecutive successes. error_count, which
// gobreaker has no notion of (it never decrements), is kept here and drives
// gobreaker's ReadyToTrip. How long a cooldown lasts is kept here too:
// gobreaker's own open timeout is a nanosecond and the entry refuses calls
// until its cooldown_until, which lets a cooldown be restored after a
// restart, set by an operator (ForceOpen) or ended early (Resume), none of
// which gobreaker can do. A Reset (self-heal) swaps in a fresh gobreaker,
// since gobreaker has no reset of its own.
//
// Every read (Status, Snapshot) is side-effect free: it never calls
// gobreaker's State, which can change state and run callbacks.
package breaker

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
)

// Status is the health of one entry as users see it.
type Status int32

// The statuses, in order of severity.
const (
	Unknown Status = iota
	Healthy
	Degraded
	Unavailable
)

var statusNames = [...]string{"unknown", "healthy", "degraded", "unavailable"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("Status(%d)", int32(s))
	}
	return statusNames[s]
}

// MarshalText makes a Status a JSON string.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Sentinel errors returned by Call when it refuses a call.
var (
	// ErrPaused: the backend asked for a pause (rate limited), see Pause.
	ErrPaused = errors.New("paused: rate limited")
	// ErrCooldown: the entry is unavailable and cooling down.
	ErrCooldown = errors.New("in cooldown")
	// ErrTrialsBusy: the entry is half-open and all R trial slots are taken.
	ErrTrialsBusy = errors.New("recovery trials in progress")
	// ErrHeld: the entry is held unavailable from outside (e.g. its plugin
	// process is dead), see Hold.
	ErrHeld = errors.New("held unavailable")
)

// Settings are the knobs of one entry.
type Settings struct {
	// ErrorThreshold is T: error_count at which the entry becomes
	// unavailable. Values below 1 mean 1.
	ErrorThreshold int
	// Cooldown is C, how long an unavailable entry refuses calls; it must
	// be > 0 (New and SetSettings panic otherwise: its default is config's,
	// see config.Normalize).
	Cooldown time.Duration
	// RecoveryCount is R, the consecutive trial successes that end
	// recovery, and the number of trials admitted at once. Below 1 means 1.
	RecoveryCount int
	// CooldownMultiplier grows the cooldown of an entry that trips again
	// before it has been closed for StablePeriod: the n-th such trip cools
	// down for Cooldown × CooldownMultiplier^n, capped at MaxCooldown.
	// Below or at 1 (the zero value) means no growth.
	CooldownMultiplier float64
	MaxCooldown        time.Duration // 0: no cap beyond the growth
	StablePeriod       time.Duration // 0: never resets (with a multiplier)
	// Observe never refuses a call: the entry tracks health (and trips,
	// for diagnostics and alerts) but every call runs. Shadow mode.
	Observe bool

	// TripRule is config.TripCount ("" too: ErrorThreshold trips) or
	// config.TripRate: the entry trips when at least MinRequests calls
	// within the sliding Window were recorded and at least FailureRate of
	// them failed (rate.go). Zero values of the rate rule's settings take
	// config's defaults.
	TripRule    string
	FailureRate float64       // in (0, 1]
	MinRequests int           // >= 1
	Window      time.Duration // the sliding window, in tenths
}

func (s Settings) normalized() Settings {
	if s.ErrorThreshold < 1 {
		s.ErrorThreshold = 1
	}
	if s.Cooldown <= 0 {
		panic(fmt.Sprintf("breaker: Settings.Cooldown is %s; it must be > 0", s.Cooldown))
	}
	if s.RecoveryCount < 1 {
		s.RecoveryCount = 1
	}
	if s.TripRule == config.TripRate {
		if s.FailureRate <= 0 || s.FailureRate > 1 {
			s.FailureRate = config.DefaultFailureRate
		}
		if s.MinRequests < 1 {
			s.MinRequests = config.DefaultMinRequests
		}
		if s.Window <= 0 {
			s.Window = config.DefaultTripWindow
		}
	}
	return s
}

// DegradedAt is the error_count at which an entry shows degraded:
// max(1, T/2).
func (s Settings) DegradedAt() int64 { return int64(max(1, s.ErrorThreshold/2)) }

// Kind says what sort of failure a call had.
type Kind = api.Kind

// Failure kinds. Callers may use others.
const (
	KindConnect = api.KindConnect // could not reach the backend
	KindTimeout = api.KindTimeout // no answer in time
	KindStatus  = api.KindStatus  // answered with a failure status (5xx, 429)
	KindCrash   = api.KindCrash   // the backend process died
	KindError   = api.KindError   // any other failure
	KindStalled = api.KindStalled // an answer's body went silent beyond its idle timeout
	KindCut     = api.KindCut     // an answer's body broke off before its end
)

// Failure is a failed call: what the caller's function returns to Call
// (as *Failure, an error) and what the entry remembers of it.
type Failure struct {
	Time       time.Time     `json:"time"`
	Kind       Kind          `json:"kind"`
	StatusCode int           `json:"status_code,omitempty"` // e.g. the HTTP status, when there is one
	Latency    time.Duration `json:"-"`
	LatencyMS  float64       `json:"latency_ms"`
	Message    string        `json:"message"` // must already be free of secrets
}

func (f *Failure) Error() string { return f.Message }

// Reason codes: which rule put an entry in its status.
const (
	reasonNone int32 = iota
	reasonThreshold
	reasonTrialFailed
	reasonHeld
	reasonForced
	reasonResumed
	reasonProbePassed
)

// Entry is the health of one provider upstream or model. Its methods are
// safe for concurrent use; the request path (Call) takes no lock of its
// own and allocates nothing on success.
type Entry struct {
	name     string
	settings atomic.Pointer[Settings]
	cb       atomic.Pointer[gobreaker.CircuitBreaker[struct{}]]

	state         atomic.Int32 // mirror of the gobreaker state
	cooldownUntil atomic.Int64 // unix ns; 0 when none
	tripReason    atomic.Int32
	called        atomic.Bool
	errorCount    atomic.Int64
	successCount  atomic.Int64
	totalFailures atomic.Int64
	lastSuccess   atomic.Int64 // unix ns
	lastError     atomic.Int64 // unix ns
	published     atomic.Int32 // last Status reported to onChange

	held        atomic.Pointer[string] // reason, when held unavailable
	forceTrip   atomic.Bool            // ReadyToTrip says yes: ForceOpen, Restore, ApplyTrip
	forceUntil  atomic.Int64           // while forceTrip: the end of the cooldown it opens
	forceWhy    atomic.Int32           // while forceTrip: its tripReason
	forceReason atomic.Pointer[string] // set while forced open by an operator
	hist        history
	hour        hourStats
	unavail     unavailLog

	trips       atomic.Int32 // trips since the entry was last stable, for the cooldown backoff
	closedAt    atomic.Int64 // unix ns of the last recovery (closed after a trip)
	pausedUntil atomic.Int64 // unix ns; a rate-limit pause, see Pause
	pauseReason atomic.Pointer[string]
	lastProbe   atomic.Pointer[Probe]

	rate         rateWindow             // calls in the sliding window (rate rule): rate.go
	rateDegraded atomic.Bool            // the rate rule's degraded mark, refreshed by calls and Poll
	tripDetail   atomic.Pointer[string] // a rate trip's or an ejection's numbers, in words

	mu       sync.Mutex // guards the failure ring
	failures [maxFailures]Failure
	nFail    int // total failures written to the ring

	onChange func(e *Entry, from, to Status)
	stamp    func() int64 // unix ns for last_success/last_error

	shared sharedState // health shared with other replicas: shared.go
}

const maxFailures = 8

// Options for New.
type Options struct {
	// OnChange, when set, is called after a call or an operation changes
	// the entry's Status. It runs on the caller's goroutine (the request
	// path), so it must be quick and must not block.
	OnChange func(e *Entry, from, to Status)
	// PreciseStamps makes last_success and last_error exact (time.Now)
	// instead of up to 5 ms old. Tests in a synctest bubble need it, since
	// the coarse clock's goroutine must not start inside a bubble.
	PreciseStamps bool
}

// New returns an entry in the unknown state. It panics when s.Cooldown is
// not > 0, a programmer's error: settings come from a normalized config.
func New(name string, s Settings, opts Options) *Entry {
	e := &Entry{name: name, onChange: opts.OnChange, stamp: coarseNow}
	if opts.PreciseStamps {
		e.stamp = preciseNow
	}
	s = s.normalized()
	e.settings.Store(&s)
	e.cb.Store(e.newBreaker(s))
	return e
}

func (e *Entry) newBreaker(s Settings) *gobreaker.CircuitBreaker[struct{}] {
	var cb *gobreaker.CircuitBreaker[struct{}]
	cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        e.name,
		MaxRequests: uint32(s.RecoveryCount),
		Timeout:     time.Nanosecond, // the cooldown is ours: see Call
		ReadyToTrip: func(gobreaker.Counts) bool {
			if e.forceTrip.Load() {
				return true
			}
			if s := e.settings.Load(); s.rateRule() {
				return e.rateReadyToTrip(s)
			}
			return e.errorCount.Load() >= int64(e.settings.Load().ErrorThreshold)
		},
		// A call the client gave up on says nothing of the backend.
		IsExcluded: func(err error) bool { return errors.Is(err, errExcluded) },
		// Runs under gobreaker's mutex: atomic stores only.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if e.cb.Load() != cb { // a replaced breaker finishing old calls
				return
			}
			if to == gobreaker.StateOpen && from == gobreaker.StateHalfOpen && time.Now().UnixNano() <= e.cooldownUntil.Load() &&
				!(e.forceTrip.Load() && e.forceUntil.Load() != 0) {
				// A call that passed refusal just before a trip reached
				// gobreaker after it, past its nanosecond timeout, and was
				// admitted as a trial while the cooldown is in force: its
				// failure is no failed recovery trial. The trip, its
				// cooldown and its reason stand, and the backoff does not
				// count it again.
				e.state.Store(int32(to))
				return
			}
			if to == gobreaker.StateOpen {
				// The end and the reason first, the state last: a reader
				// that sees the entry open sees this trip's cooldown,
				// never the one before or one it is not going to have.
				reason := reasonThreshold
				if from == gobreaker.StateHalfOpen {
					reason = reasonTrialFailed
				} else if e.settings.Load().rateRule() {
					reason = reasonRate
				}
				// nextCooldown also counts the trip for the backoff, forced or not.
				now := time.Now()
				until := now.Add(e.nextCooldown(now)).UnixNano()
				if e.forceTrip.Load() { // trip: an operator, a restore, another replica's trip, an ejection
					if fu := e.forceUntil.Load(); fu != 0 { // 0: the backoff's cooldown (Eject)
						until = fu
					}
					reason = e.forceWhy.Load()
				}
				e.tripReason.Store(reason)
				e.cooldownUntil.Store(until)
			}
			e.state.Store(int32(to))
			if to != gobreaker.StateOpen && !e.forceTrip.Load() {
				e.forceReason.Store(nil) // a forced cooldown that ran out is over
			}
			if to == gobreaker.StateClosed {
				e.errorCount.Store(0)
				e.clearRate()
				e.cooldownUntil.Store(0)
				e.tripReason.Store(reasonNone)
				e.closedAt.Store(time.Now().UnixNano())
			}
			e.sharedChanged(from, to)
		},
	})
	return cb
}

// nextCooldown is the length of the cooldown a trip starts now: the
// configured one, grown by the multiplier for each trip since the entry was
// last stable (closed for StablePeriod), capped at MaxCooldown.
func (e *Entry) nextCooldown(now time.Time) time.Duration {
	s := e.settings.Load()
	if s.CooldownMultiplier <= 1 {
		return s.Cooldown
	}
	if closed := e.closedAt.Load(); closed != 0 && s.StablePeriod > 0 &&
		now.UnixNano()-closed >= int64(s.StablePeriod) && e.trips.Load() > 0 {
		e.trips.Store(0)
	}
	n := e.trips.Add(1) - 1
	d := float64(s.Cooldown)
	for range n {
		d *= s.CooldownMultiplier
		if s.MaxCooldown > 0 && d >= float64(s.MaxCooldown) {
			return s.MaxCooldown
		}
	}
	if d > float64(math.MaxInt64/2) {
		d = float64(math.MaxInt64 / 2)
	}
	return time.Duration(d)
}

// Name is the entry's name, as given to New.
func (e *Entry) Name() string { return e.name }

// Settings returns the entry's current settings.
func (e *Entry) Settings() Settings { return *e.settings.Load() }

// errExcluded marks a result that must not count either way.
var errExcluded = errors.New("excluded")

// errProbeFailed trips the breaker from a failed probe; the probe itself
// is recorded by Probe, not by the trip.
var errProbeFailed = errors.New("health check failed")

// Excluded is what a call function returns when its result must count
// neither as a success nor as a failure (the client went away).
func Excluded() error { return errExcluded }

// Call runs fn if the entry admits a call now and records its result: nil
// is a success, a *Failure is a failure, Excluded() counts for nothing, any
// other error is a failure of KindError. fn also returns the call's
// latency, for the history. Call returns ErrCooldown, ErrTrialsBusy or
// ErrHeld without running fn when the entry refuses, else what fn returned.
func (e *Entry) Call(fn func() (time.Duration, error)) error {
	if refused := e.refusal(); refused != nil {
		if !e.settings.Load().Observe {
			return refused
		}
		return e.observe(fn)
	}
	cb := e.cb.Load()
	_, err := cb.Execute(func() (struct{}, error) {
		latency, err := fn()
		e.record(err, latency)
		return struct{}{}, err
	})
	switch err {
	case gobreaker.ErrOpenState:
		err = ErrCooldown
	case gobreaker.ErrTooManyRequests:
		err = ErrTrialsBusy
	default:
		e.publish()
		return err
	}
	if e.settings.Load().Observe {
		return e.observe(fn)
	}
	return err
}

// refusal is why the entry refuses a call now, before gobreaker is asked.
func (e *Entry) refusal() error {
	if e.held.Load() != nil {
		return ErrHeld
	}
	if p := e.pausedUntil.Load(); p != 0 && time.Now().UnixNano() <= p {
		return ErrPaused
	}
	// While cooling down, refuse here: gobreaker's own open timeout has
	// long passed and would admit a trial.
	// Half-open too: a trip from half-open stores its new end a moment
	// before the state, and that moment must not admit a trial.
	state := gobreaker.State(e.state.Load())
	if state != gobreaker.StateClosed && time.Now().UnixNano() <= e.cooldownUntil.Load() {
		return ErrCooldown
	}
	if state != gobreaker.StateClosed && e.trialGated() { // trials coordinated with other replicas
		return ErrTrialsBusy
	}
	return nil
}

// observe runs a call the entry would refuse (shadow mode): its result is
// counted, but not fed to gobreaker, which is not admitting calls.
func (e *Entry) observe(fn func() (time.Duration, error)) error {
	latency, err := fn()
	e.record(err, latency)
	e.publish()
	return err
}

// record updates the counters before gobreaker looks at the result, so
// that ReadyToTrip sees the new error_count.
func (e *Entry) record(err error, latency time.Duration) {
	if err == errExcluded {
		return
	}
	now := e.stamp()
	if !e.called.Load() {
		e.called.Store(true)
	}
	e.hist.add(now, err != nil, latency)
	e.hour.add(now, err != nil, latency)
	if s := e.settings.Load(); s.rateRule() {
		e.recordRate(s, now, err != nil)
	}
	if err == nil {
		e.successCount.Add(1)
		e.lastSuccess.Store(now)
		// "a success while not unavailable: error_count −1"
		// (docs/behaviour.md), trials included.
		if gobreaker.State(e.state.Load()) != gobreaker.StateOpen {
			decrementFloor0(&e.errorCount)
		}
		return
	}
	f, ok := err.(*Failure)
	if !ok {
		f = &Failure{Kind: KindError, Message: err.Error()}
	}
	e.errorCount.Add(1)
	e.totalFailures.Add(1)
	e.lastError.Store(now)
	rec := *f
	rec.Time = time.Unix(0, now)
	if rec.Latency == 0 {
		rec.Latency = latency
	}
	rec.LatencyMS = float64(rec.Latency.Microseconds()) / 1000
	e.mu.Lock()
	e.failures[e.nFail%maxFailures] = rec
	e.nFail++
	e.mu.Unlock()
}

func decrementFloor0(v *atomic.Int64) {
	for {
		old := v.Load()
		if old <= 0 || v.CompareAndSwap(old, old-1) {
			return
		}
	}
}

// Status is the entry's status now. It has no side effects.
func (e *Entry) Status() Status { return e.statusAt(time.Time{}) }

// statusAt is the status at now; a zero now means time.Now, read only when
// needed (a cooldown), which keeps it off the request path.
func (e *Entry) statusAt(now time.Time) Status {
	if e.held.Load() != nil {
		return Unavailable
	}
	if p := e.pausedUntil.Load(); p != 0 {
		if now.IsZero() {
			now = time.Now()
		}
		if now.UnixNano() <= p {
			return Unavailable
		}
	}
	switch gobreaker.State(e.state.Load()) {
	case gobreaker.StateOpen:
		if now.IsZero() {
			now = time.Now()
		}
		// gobreaker ends the cooldown strictly after its expiry; ours is
		// stored a moment after gobreaker's, so we never say "over" early.
		if now.UnixNano() <= e.cooldownUntil.Load() {
			return Unavailable
		}
		return Degraded // cooldown over: half-open on the next call
	case gobreaker.StateHalfOpen:
		// A call that passed refusal just before a trip reaches gobreaker
		// after it, past its nanosecond timeout, and makes it half-open:
		// the cooldown is still in force (refusal refuses), so is the status.
		if now.IsZero() {
			now = time.Now()
		}
		if now.UnixNano() <= e.cooldownUntil.Load() {
			return Unavailable
		}
		return Degraded
	}
	if !e.called.Load() {
		return Unknown
	}
	if s := e.settings.Load(); s.rateRule() {
		if e.rateDegraded.Load() {
			return Degraded
		}
		return Healthy
	}
	if e.errorCount.Load() >= e.settings.Load().DegradedAt() {
		return Degraded
	}
	return Healthy
}

// CooldownUntil is when the current cooldown ends, and whether the entry is
// cooling down now.
// BlockedUntil is when the entry admits calls again, whichever of a
// cooldown or a rate-limit pause ends later, and whether it is blocked now.
func (e *Entry) BlockedUntil() (time.Time, bool) {
	until, cooling := e.CooldownUntil()
	if p := e.pausedUntil.Load(); p != 0 && time.Now().UnixNano() <= p {
		if pu := time.Unix(0, p); !cooling || pu.After(until) {
			until = pu
		}
		return until, true
	}
	return until, cooling
}

func (e *Entry) CooldownUntil() (time.Time, bool) {
	if gobreaker.State(e.state.Load()) == gobreaker.StateClosed {
		return time.Time{}, false
	}
	until := e.cooldownUntil.Load()
	if time.Now().UnixNano() > until {
		return time.Time{}, false
	}
	return time.Unix(0, until), true
}

// publish reports a status change to onChange, once per change.
func (e *Entry) publish() {
	now := e.Status()
	if Status(e.published.Load()) == now { // the common case: no write
		return
	}
	old := Status(e.published.Swap(int32(now)))
	if old == now {
		return
	}
	if now == Unavailable || old == Unavailable {
		e.unavail.mark(time.Now(), now == Unavailable)
	}
	if e.onChange != nil {
		e.onChange(e, old, now)
	}
}

// Poll re-reads the status and reports a change that time alone made (a
// cooldown that ended, failures that left the rate rule's window). Call it
// now and then from a background loop.
func (e *Entry) Poll() {
	if s := e.settings.Load(); s.rateRule() {
		e.refreshRate(s, time.Now().UnixNano())
	}
	e.publish()
}

// Reset clears counters and cooldown and makes the entry healthy: the
// self-heal of the state machine (docs/behaviour.md).
// Calls in flight on the old state are not counted.
func (e *Entry) Reset() {
	s := e.settings.Load()
	e.cb.Store(e.newBreaker(*s))
	e.state.Store(int32(gobreaker.StateClosed))
	e.cooldownUntil.Store(0)
	e.tripReason.Store(reasonNone)
	e.errorCount.Store(0)
	e.clearRate()
	e.called.Store(true) // healthy, not unknown (docs/behaviour.md)
	e.held.Store(nil)
	e.forceReason.Store(nil)
	e.pausedUntil.Store(0)
	e.trips.Store(0)
	e.sharedReset()
	e.publish()
}

// Hold makes the entry unavailable, refusing every call, until Release or
// Reset, whatever its counters say; reason says why (shown in Snapshot).
// A model whose plugin process died is held: there is nothing to send
// trials to.
func (e *Entry) Hold(reason string) {
	e.held.Store(&reason)
	e.publish()
}

// HoldFailed is Hold with the failure that caused it, recorded first, so
// that nobody sees the entry held without its last error.
func (e *Entry) HoldFailed(reason string, f *Failure) {
	e.record(f, f.Latency)
	e.held.Store(&reason)
	e.publish()
}

// Release ends a Hold. The counters are left as they were.
func (e *Entry) Release() {
	e.held.Store(nil)
	e.publish()
}

// SetSettings applies new settings (a config reload) without losing the
// entry's counters or its current cooldown. The new threshold and cooldown
// apply from the next call; a new recovery count from the next trip (a
// recovery in progress finishes under the old one). Like New, it panics
// when s.Cooldown is not > 0.
func (e *Entry) SetSettings(s Settings) {
	s = s.normalized()
	old := e.settings.Load()
	if *old == s {
		return
	}
	e.settings.Store(&s)
	if old.TripRule != s.TripRule || old.Window != s.Window {
		e.clearRate() // a window counted in other buckets, or none
	}
	if old.RecoveryCount != s.RecoveryCount && gobreaker.State(e.state.Load()) == gobreaker.StateClosed {
		e.cb.Store(e.newBreaker(s))
	}
	e.publish()
}

// Fail records a failure that did not come from Call (a plugin process
// that exited on its own), through the breaker so that it can trip it.
func (e *Entry) Fail(f *Failure) {
	if e.held.Load() != nil {
		e.record(f, f.Latency)
		return
	}
	_ = e.Call(func() (time.Duration, error) { return f.Latency, f })
}

// SettingsOf are the settings a health block of the configuration
// gives (every field normalized by config; Observe is the caller's).
func SettingsOf(h config.Health) Settings {
	s := Settings{ErrorThreshold: h.ErrorThreshold, Cooldown: h.Cooldown, RecoveryCount: h.RecoveryCount,
		CooldownMultiplier: h.CooldownMultiplier, MaxCooldown: h.MaxCooldown, StablePeriod: h.StablePeriod}
	if h.TripRule == config.TripRate {
		s.TripRule, s.FailureRate, s.MinRequests, s.Window = h.TripRule, h.FailureRate, h.MinRequests, h.Window
	}
	return s
}
