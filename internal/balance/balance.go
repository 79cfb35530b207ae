// Package balance chooses one upstream among equally healthy candidates
// (README, "Balancing"). It knows nothing of HTTP or health: the caller
// ranks its upstreams (healthy before degraded) and hands over the set of
// the best rank as a bit mask, bit i standing for upstream i (at most 64).
//
// Two policies:
//
//   - PeakEWMA: Linkerd's and Finagle's latency-aware balancer. Each
//     upstream's cost is a peak-sensitive moving average of its latency
//     times its requests in flight plus one; the better of two random
//     candidates wins ("power of two choices"). A latency above the
//     average replaces it at once; below, it is blended in with a weight
//     that decays with a time constant (Decay), and between observations
//     the average decays toward zero, so that an upstream that was slow
//     is tried again once its past is old enough.
//   - SmoothWeighted: nginx's smooth weighted round robin: with weights
//     3:1:1 the order is a, a, b, a, c (spread out, never a, a, a, b, c),
//     over the candidates only.
//
// Both are safe for concurrent use and do not allocate per pick; time is
// a parameter, so tests run on a fake clock.
package balance

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Decay is the time constant of PeakEWMA's average (Finagle's and
// Linkerd's default): an observation's weight falls to 1/e after it.
const Decay = 10 * time.Second

// DefaultRTT is the latency assumed for an upstream not yet measured
// (Linkerd's default), so that a new upstream is neither shunned nor
// flooded.
const DefaultRTT = 30 * time.Millisecond

// EWMA is one upstream's peak-sensitive latency average and its requests
// in flight. The zero value is not ready: use NewEWMA. An EWMA must not be
// copied after first use.
type EWMA struct {
	inflight atomic.Int64
	mu       sync.Mutex
	cost     float64 // the average, in nanoseconds
	stamp    int64   // when cost was last brought up to date, Unix nanoseconds
	decay    float64 // the time constant, in nanoseconds
}

// NewEWMA is an estimate starting at DefaultRTT at now, decaying with
// time constant decay (Decay when 0 or less).
func NewEWMA(decay time.Duration, now time.Time) *EWMA {
	if decay <= 0 {
		decay = Decay
	}
	return &EWMA{cost: float64(DefaultRTT), stamp: now.UnixNano(), decay: float64(decay)}
}

// Begin counts a request sent to the upstream; Observe ends it.
func (e *EWMA) Begin() { e.inflight.Add(1) }

// Observe ends a request begun with Begin that took rtt, seen at now.
func (e *EWMA) Observe(rtt time.Duration, now time.Time) {
	e.inflight.Add(-1)
	e.mu.Lock()
	e.update(float64(max(rtt, 0)), now.UnixNano())
	e.mu.Unlock()
}

// End ends a request begun with Begin without a latency to learn from
// (the client left, or the proxy failed before the upstream answered).
func (e *EWMA) End() { e.inflight.Add(-1) }

// update blends rtt into the average at now (e.mu held). A peak replaces
// the average; otherwise the old average keeps the weight exp(-elapsed/decay).
func (e *EWMA) update(rtt float64, now int64) {
	elapsed := max(now-e.stamp, 0)
	e.stamp = max(now, e.stamp)
	if rtt > e.cost {
		e.cost = rtt
		return
	}
	w := math.Exp(-float64(elapsed) / e.decay)
	e.cost = e.cost*w + rtt*(1-w)
}

// Latency is the average latency at now (decayed since the last update).
func (e *EWMA) Latency(now time.Time) time.Duration {
	e.mu.Lock()
	e.update(0, now.UnixNano())
	c := e.cost
	e.mu.Unlock()
	return time.Duration(c)
}

// InFlight is the number of requests begun and not yet ended.
func (e *EWMA) InFlight() int64 { return e.inflight.Load() }

// Cost is what sending one more request to the upstream is expected to
// cost at now: the average latency times (requests in flight + 1).
func (e *EWMA) Cost(now time.Time) float64 {
	return float64(e.Latency(now)) * float64(max(e.InFlight(), 0)+1)
}

// PeakEWMA chooses between upstreams by their EWMA cost, the better of
// two random candidates. Its EWMAs are the caller's, one per upstream
// (index i for bit i), so that an upstream kept across a reload keeps
// its estimate.
type PeakEWMA struct {
	upstreams []*EWMA
}

// NewPeakEWMA balances over the upstreams whose estimates are given; none
// may be nil.
func NewPeakEWMA(upstreams []*EWMA) *PeakEWMA {
	return &PeakEWMA{upstreams: upstreams}
}

// Pick chooses among the candidates (bit i: upstream i) at now: the one
// of lower cost of two distinct random candidates, the single one if
// there is one, and -1 for none. Bits beyond the upstreams are ignored.
func (b *PeakEWMA) Pick(candidates uint64, now time.Time) int {
	if n := len(b.upstreams); n < 64 {
		candidates &= 1<<n - 1
	}
	c := bits.OnesCount64(candidates)
	switch c {
	case 0:
		return -1
	case 1:
		return bits.TrailingZeros64(candidates)
	}
	r := rand.Uint64()
	x := int(r % uint64(c))
	y := int((r >> 32) % uint64(c-1))
	if y >= x {
		y++ // two distinct candidates
	}
	i, j := nthBit(candidates, x), nthBit(candidates, y)
	if b.upstreams[j].Cost(now) < b.upstreams[i].Cost(now) {
		return j
	}
	return i
}

// nthBit is the index of the n-th (from 0) set bit of m; m has more than n.
func nthBit(m uint64, n int) int {
	for range n {
		m &= m - 1 // drop the lowest set bit
	}
	return bits.TrailingZeros64(m)
}

// SmoothWeighted is nginx's smooth weighted round robin over upstreams
// with fixed weights. Each pick adds every candidate's weight to its
// current value, chooses the highest, and takes the candidates' total off
// the chosen one; over the sum of the weights each candidate is chosen as
// often as its weight says, spread out.
type SmoothWeighted struct {
	mu      sync.Mutex
	weights []int
	current []int
}

// NewSmoothWeighted balances over len(weights) upstreams. A weight below 1
// counts as 1.
func NewSmoothWeighted(weights []int) *SmoothWeighted {
	w := &SmoothWeighted{weights: make([]int, len(weights)), current: make([]int, len(weights))}
	for i, v := range weights {
		w.weights[i] = max(v, 1)
	}
	return w
}

// Pick chooses among the candidates (bit i: upstream i); -1 for none.
// Bits beyond the upstreams are ignored. Upstreams that are not
// candidates keep their current value, as in nginx (a peer that is down
// neither gains nor loses its turn).
func (w *SmoothWeighted) Pick(candidates uint64) int {
	best, total := -1, 0
	w.mu.Lock()
	for m := candidates; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		if i >= len(w.weights) {
			break
		}
		w.current[i] += w.weights[i]
		total += w.weights[i]
		if best < 0 || w.current[i] > w.current[best] {
			best = i
		}
	}
	if best >= 0 {
		w.current[best] -= total
	}
	w.mu.Unlock()
	return best
}
