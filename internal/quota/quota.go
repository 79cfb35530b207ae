package quota

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
)

// DefaultWindow is how long a low quota steers when the upstream did not
// say when it resets: a minute, the most common window.
const DefaultWindow = time.Minute

// Tracker is one upstream's announced quota and whether it steers traffic
// away now. It is safe for concurrent use; Steering is one atomic load
// while nothing steers.
type Tracker struct {
	reserve     float64
	weightLimit int
	steerUntil  atomic.Int64 // Unix nanoseconds; 0: not steering

	mu   sync.Mutex
	last Reading
	seen time.Time // zero: nothing read yet
}

// NewTracker tracks a quota with c's settings: c.Reserve is the share
// of the limit left at or below which peers are preferred (0: only when
// none is left), c.WeightLimit the limit of X-MBX-USED-WEIGHT-1M (0: not
// read).
func NewTracker(c routecfg.Quota) *Tracker {
	return &Tracker{reserve: c.Reserve, weightLimit: c.WeightLimit}
}

// Decision is what an answer's quota means for its upstream.
type Decision struct {
	// Steer: prefer the upstream's peers until Until. Started says this
	// reading began it (it was not steering before).
	Steer, Started bool
	// Pause: none is left; send the upstream nothing until Until.
	Pause  bool
	Until  time.Time
	Reason string // what was read, e.g. "X-RateLimit-Remaining: 3 of 100, resets in 12s"
}

// Observe reads the quota announced in h at now and records it. ok is
// false when h announces none (nothing changes then). A quota above the
// reserve ends a steering in force: the window was reset early.
func (t *Tracker) Observe(h http.Header, now time.Time) (d Decision, ok bool) {
	r, ok := Parse(h, now, t.weightLimit)
	if !ok {
		return Decision{}, false
	}
	t.mu.Lock()
	t.last, t.seen = r, now
	t.mu.Unlock()
	low := r.Remaining == 0 || (r.Limit > 0 && float64(r.Remaining) <= t.reserve*float64(r.Limit))
	until := r.Reset
	if until.IsZero() {
		until = now.Add(DefaultWindow)
	}
	if !low || !until.After(now) {
		t.steerUntil.Store(0)
		return Decision{}, true
	}
	old := t.steerUntil.Swap(until.UnixNano())
	return Decision{Steer: true, Started: old == 0 || old <= now.UnixNano(), Pause: r.Remaining == 0,
		Until: until, Reason: reason(r, now)}, true
}

// reason says what r announced, for a pause's reason and logs.
func reason(r Reading, now time.Time) string {
	s := r.Header + ": " + strconv.FormatInt(r.Remaining, 10)
	if r.Limit > 0 {
		s += " of " + strconv.FormatInt(r.Limit, 10)
	}
	s += " left"
	if !r.Reset.IsZero() {
		s += ", resets in " + r.Reset.Sub(now).Round(time.Second).String()
	}
	return s
}

// Steering says whether peers are preferred at clock(); clock is read only
// while a steering is recorded.
func (t *Tracker) Steering(clock func() time.Time) bool {
	u := t.steerUntil.Load()
	return u != 0 && clock().UnixNano() < u
}

// Snapshot is the last quota an upstream announced, as diagnostics show it.
type Snapshot struct {
	Remaining int64     `json:"remaining"`
	Limit     int64     `json:"limit,omitempty"` // 0: not announced
	Reset     time.Time `json:"reset,omitzero"`  // zero: not announced
	Header    string    `json:"header"`          // the header it came from
	Seen      time.Time `json:"seen"`            // when it was read
	Steering  bool      `json:"steering"`        // peers are preferred now
}

// Snapshot is the last reading at now; ok is false before any.
func (t *Tracker) Snapshot(now time.Time) (Snapshot, bool) {
	t.mu.Lock()
	r, seen := t.last, t.seen
	t.mu.Unlock()
	if seen.IsZero() {
		return Snapshot{}, false
	}
	return Snapshot{Remaining: r.Remaining, Limit: r.Limit, Reset: r.Reset, Header: r.Header, Seen: seen,
		Steering: t.Steering(func() time.Time { return now })}, true
}
