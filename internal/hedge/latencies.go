// Package hedge estimates when a provider request is late enough to be
// hedged: Latencies keeps the latencies of recent attempts in a ring of
// small histograms over a sliding window and answers a percentile of
// them. It is cheap on every attempt (two atomic additions), bounded in
// memory (a fixed array), and gives no answer before it has seen enough
// attempts for the percentile to mean something. Sending the hedge, the
// budget of extra attempts and the choice of the answer are the
// provider's (provider/hedge.go; README, "Hedging").
package hedge

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/internal/lathist"
)

// Slots of the window: each holds one tenth of it.
const numSlots = 10

// Latencies estimates a percentile of the latencies observed over a
// sliding window. The zero value is not usable; use NewLatencies. It is
// safe for concurrent use and never locks: an observation racing with
// the reuse of its slot may be lost, which an estimate tolerates.
type Latencies struct {
	q          float64
	minSamples int64
	slotNanos  int64
	slots      [numSlots]latencySlot

	// The last estimate, recomputed at most once per slot, or, while
	// there were too few samples, once per new observation.
	cachedSlot atomic.Int64 // the slot number it was computed in; -1 for none
	cached     atomic.Int64 // nanoseconds; 0: not enough samples
	cachedSeen atomic.Int64 // seen when it was computed
	seen       atomic.Int64 // observations ever
}

type latencySlot struct {
	id      atomic.Int64 // the slot's number (time / slot length) it counts for
	n       atomic.Int64
	buckets [lathist.Buckets]atomic.Uint32
}

// NewLatencies estimates the q-quantile (0 < q < 1; 0.95 for p95) of the
// latencies observed within the last window (at least a second). It
// answers only once the window holds enough observations for q: at
// least 20, and at least 2/(1-q) (40 for p95, 200 for p99), so that the
// percentile is not a single outlier.
func NewLatencies(q float64, window time.Duration) *Latencies {
	q = min(max(q, 0.01), 0.999)
	window = max(window, time.Second)
	l := &Latencies{q: q, slotNanos: int64(window) / numSlots,
		minSamples: max(20, int64(math.Ceil(2/(1-q))))}
	l.cachedSlot.Store(-1)
	return l
}

// MinSamples is how many observations the window must hold before
// Quantile answers.
func (l *Latencies) MinSamples() int { return int(l.minSamples) }

// Observe records one latency observed at now.
func (l *Latencies) Observe(d time.Duration, now time.Time) {
	s := l.slot(now.UnixNano() / l.slotNanos)
	s.buckets[lathist.Bucket(d)].Add(1)
	s.n.Add(1)
	l.seen.Add(1)
}

// slot is the slot for number id, emptied first when it last counted
// for an earlier one.
func (l *Latencies) slot(id int64) *latencySlot {
	s := &l.slots[id%numSlots]
	if old := s.id.Load(); old != id && s.id.CompareAndSwap(old, id) {
		s.n.Store(0)
		for i := range s.buckets {
			s.buckets[i].Store(0)
		}
	}
	return s
}

// Quantile is the estimated q-quantile of the latencies of the window
// ending at now, rounded up to its bucket's upper bound; ok is false
// while the window holds fewer than MinSamples observations.
func (l *Latencies) Quantile(now time.Time) (d time.Duration, ok bool) {
	cur := now.UnixNano() / l.slotNanos
	seen := l.seen.Load()
	if l.cachedSlot.Load() == cur {
		if c := l.cached.Load(); c > 0 || l.cachedSeen.Load() == seen {
			return time.Duration(c), c > 0
		}
	}
	var counts [lathist.Buckets]uint32
	var n int64
	for i := range l.slots {
		s := &l.slots[i]
		if id := s.id.Load(); id > cur-numSlots && id <= cur {
			for b := range counts {
				counts[b] += s.buckets[b].Load()
			}
			n += s.n.Load()
		}
	}
	var est int64
	if n >= l.minSamples {
		rank := uint64(math.Ceil(l.q * float64(n)))
		var sum uint64
		for b, c := range counts {
			sum += uint64(c)
			if sum >= rank {
				est = int64(lathist.Upper(b))
				break
			}
		}
	}
	l.cached.Store(est)
	l.cachedSeen.Store(seen)
	l.cachedSlot.Store(cur)
	return time.Duration(est), est > 0
}
