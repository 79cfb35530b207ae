package breaker

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/config"
)

// The failure-rate rule (Settings.TripRule == config.TripRate, README
// "Routing", docs/behaviour.md "Failure-rate tripping"): the entry trips
// when at least MinRequests calls were recorded within the sliding Window
// and at least FailureRate of them failed. It shows degraded while it is
// closed and at least MinRequests calls within the Window failed at half
// FailureRate or more.
//
// The window is the entry's own ring of rateBuckets buckets of Window /
// rateBuckets each, not gobreaker's rolling window (Settings.BucketPeriod):
// gobreaker's counts are reset on every state change and are not read
// without side effects (its State rolls them), while the entry must count
// calls gobreaker never sees (shadow mode), survive a swapped gobreaker
// (Reset, a new recovery count), change its window on a reload and be read
// by Status and Snapshot, which have none. A call leaves the window
// between 0.9 and 1 Window after it was made.

// rateBuckets is the number of buckets of a rate window.
const rateBuckets = 10

// rateWindow counts calls and failures in a ring of buckets, written
// lock-free on the request path, like history: a bucket is claimed for a
// new period by swapping its epoch, and a call landing between the swap
// and the zeroing of the counters may be lost, one call at a bucket's turn.
type rateWindow [rateBuckets]rateBucket

type rateBucket struct {
	epoch atomic.Int64 // unix ns / bucket width of the period it holds; 0: none
	calls atomic.Int64
	fails atomic.Int64
}

// bucketWidth is the width of one bucket of s's window, in ns (>= 1).
func (s *Settings) bucketWidth() int64 { return max(1, int64(s.Window)/rateBuckets) }

func (w *rateWindow) add(nowNs, width int64, failed bool) {
	epoch := nowNs / width
	b := &w[epoch%rateBuckets]
	if old := b.epoch.Load(); old != epoch && b.epoch.CompareAndSwap(old, epoch) {
		b.calls.Store(0)
		b.fails.Store(0)
	}
	b.calls.Add(1)
	if failed {
		b.fails.Add(1)
	}
}

// counts are the calls and failures within the window ending at nowNs.
func (w *rateWindow) counts(nowNs, width int64) (calls, fails int64) {
	cur := nowNs / width
	for i := range w {
		b := &w[i]
		if e := b.epoch.Load(); e > cur-rateBuckets && e <= cur {
			calls += b.calls.Load()
			fails += b.fails.Load()
		}
	}
	return calls, fails
}

// reset empties the window (the entry recovered, was reset, or its window
// changed).
func (w *rateWindow) reset() {
	for i := range w {
		w[i].epoch.Store(0)
		w[i].calls.Store(0)
		w[i].fails.Store(0)
	}
}

// rateRule says whether s trips on the failure rate.
func (s *Settings) rateRule() bool { return s.TripRule == config.TripRate }

// rateTrips says whether calls and fails trip the rate rule of s.
func (s *Settings) rateTrips(calls, fails int64) bool {
	return calls >= int64(s.MinRequests) && float64(fails) >= s.FailureRate*float64(calls)
}

// rateDegrades says whether calls and fails make an entry under the rate
// rule of s degraded: at least MinRequests calls failing at half
// FailureRate or more.
func (s *Settings) rateDegrades(calls, fails int64) bool {
	return calls >= int64(s.MinRequests) && float64(fails) >= s.FailureRate/2*float64(calls)
}

// recordRate counts a call in the rate window and refreshes the degraded
// mark. Only under the rate rule.
func (e *Entry) recordRate(s *Settings, nowNs int64, failed bool) {
	w := s.bucketWidth()
	e.rate.add(nowNs, w, failed)
	calls, fails := e.rate.counts(nowNs, w)
	if d := s.rateDegrades(calls, fails); d != e.rateDegraded.Load() {
		e.rateDegraded.Store(d)
	}
}

// refreshRate re-reads the window at now, for a degraded mark that time
// alone ends (its failures left the window). Only under the rate rule.
func (e *Entry) refreshRate(s *Settings, nowNs int64) {
	calls, fails := e.rate.counts(nowNs, s.bucketWidth())
	if d := s.rateDegrades(calls, fails); d != e.rateDegraded.Load() {
		e.rateDegraded.Store(d)
	}
}

// rateReadyToTrip is gobreaker's ReadyToTrip under the rate rule: it
// reads the window and, when it trips, keeps the numbers for the reason.
// It runs under gobreaker's mutex.
func (e *Entry) rateReadyToTrip(s *Settings) bool {
	calls, fails := e.rate.counts(e.stamp(), s.bucketWidth())
	if !s.rateTrips(calls, fails) {
		return false
	}
	why := rateWords(s, calls, fails, s.FailureRate)
	e.tripDetail.Store(&why)
	return true
}

// rateWords says a failure rate at or above mark in words: "failure rate
// 62% of 21 calls in 30s ≥ 50%".
func rateWords(s *Settings, calls, fails int64, mark float64) string {
	return fmt.Sprintf("failure rate %s of %d calls in %s ≥ %s",
		percent(float64(fails)/float64(max(calls, 1))), calls, s.Window, percent(mark))
}

// percent writes a share as a percentage, without decimals when it has
// none worth showing.
func percent(f float64) string {
	p := f * 100
	if p == float64(int64(p)) || p >= 10 {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

// RateCounts are the calls and failures in the entry's failure-rate
// window now; zero under the count rule.
func (e *Entry) RateCounts() (calls, fails int64) {
	s := e.settings.Load()
	if !s.rateRule() {
		return 0, 0
	}
	return e.rate.counts(time.Now().UnixNano(), s.bucketWidth())
}

// rateReason is the Snapshot reason of a closed entry under the rate rule.
func (e *Entry) rateReason(s Snapshot, now time.Time) string {
	st := &s.Settings
	calls, fails := e.rate.counts(now.UnixNano(), st.bucketWidth())
	switch {
	case s.Status == Degraded:
		return fmt.Sprintf("%s (half of failure_rate %s); unavailable at %s",
			rateWords(st, calls, fails, st.FailureRate/2), percent(st.FailureRate), percent(st.FailureRate))
	case calls < int64(st.MinRequests):
		return fmt.Sprintf("answering; %d calls in %s, below min_requests %d", calls, st.Window, st.MinRequests)
	case fails == 0:
		return "answering; no recent errors"
	}
	return fmt.Sprintf("answering; failure rate %s of %d calls in %s, below the degraded mark %s",
		percent(float64(fails)/float64(calls)), calls, st.Window, percent(st.FailureRate/2))
}

// clearRate empties the rate window and its degraded mark.
func (e *Entry) clearRate() {
	e.rate.reset()
	e.rateDegraded.Store(false)
}
