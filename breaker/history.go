package breaker

import (
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/api"
)

// History resolution: HistoryBuckets buckets of HistoryInterval each, so
// diagnostics can show when something started failing.
const (
	HistoryInterval = 10 * time.Second
	HistoryBuckets  = 60
)

// history is a ring of per-interval buckets, written lock-free on the
// request path. A bucket is claimed for a new interval by swapping its
// epoch; a call landing between the swap and the zeroing of the counters
// may be lost or double counted, which a sparkline can live with.
type history [HistoryBuckets]bucket

type bucket struct {
	epoch     atomic.Int64 // unix ns / HistoryInterval of the interval it holds
	requests  atomic.Int64
	errors    atomic.Int64
	latencyUs atomic.Int64 // sum of latencies, microseconds
}

func (h *history) add(nowNs int64, failed bool, latency time.Duration) {
	epoch := nowNs / int64(HistoryInterval)
	b := &h[epoch%HistoryBuckets]
	if old := b.epoch.Load(); old != epoch && b.epoch.CompareAndSwap(old, epoch) {
		b.requests.Store(0)
		b.errors.Store(0)
		b.latencyUs.Store(0)
	}
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
	}
	b.latencyUs.Add(latency.Microseconds())
}

// Point is one interval of an entry's history, as the history document
// shows it.
type Point = api.Point

// History returns the last HistoryBuckets intervals, oldest first, the
// current (partial) one last; intervals without calls are zero.
func (e *Entry) History() []Point {
	now := time.Now().UnixNano() / int64(HistoryInterval)
	pts := make([]Point, HistoryBuckets)
	for i := range pts {
		epoch := now - int64(HistoryBuckets-1-i)
		pts[i].Start = time.Unix(0, epoch*int64(HistoryInterval)).UTC()
		b := &e.hist[epoch%HistoryBuckets]
		if b.epoch.Load() != epoch {
			continue
		}
		pts[i].Requests = b.requests.Load()
		pts[i].Errors = b.errors.Load()
		if pts[i].Requests > 0 {
			pts[i].LatencyMS = float64(b.latencyUs.Load()) / float64(pts[i].Requests) / 1000
		}
	}
	return pts
}
