package breaker

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/api"
)

// The last hour, in hourBuckets slots of hourSlot, each with a latency
// histogram: enough for a report's success rate and p50/p95 latency.
const (
	hourSlot    = 5 * time.Minute
	hourBuckets = 12
	// latency bucket i holds latencies in [2^(i-1), 2^i) µs (bucket 0: under
	// 1 µs); the last one everything from ~8.4 s up.
	latencyBuckets = 24
)

type hourStats [hourBuckets]hourSlotStats

type hourSlotStats struct {
	epoch  atomic.Int64
	errors atomic.Int64
	lat    [latencyBuckets]atomic.Int64 // their sum is the slot's requests
}

func (h *hourStats) add(nowNs int64, failed bool, latency time.Duration) {
	epoch := nowNs / int64(hourSlot)
	b := &h[epoch%hourBuckets]
	if old := b.epoch.Load(); old != epoch && b.epoch.CompareAndSwap(old, epoch) {
		b.errors.Store(0)
		for i := range b.lat {
			b.lat[i].Store(0)
		}
	}
	if failed {
		b.errors.Add(1)
	}
	us := max(0, latency.Microseconds())
	b.lat[min(bits.Len64(uint64(us)), latencyBuckets-1)].Add(1)
}

// unavailLog remembers when the entry was unavailable, for "time spent
// unavailable over the last hour". Written only on status changes.
type unavailLog struct {
	mu      sync.Mutex
	since   time.Time // start of the current unavailable period; zero when available
	periods [16]struct{ from, to time.Time }
	n       int
}

func (u *unavailLog) mark(now time.Time, unavailable bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case unavailable && u.since.IsZero():
		u.since = now
	case !unavailable && !u.since.IsZero():
		u.periods[u.n%len(u.periods)] = struct{ from, to time.Time }{u.since, now}
		u.n++
		u.since = time.Time{}
	}
}

// within is the time spent unavailable in [from, now].
func (u *unavailLog) within(from, now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	var total time.Duration
	overlap := func(a, b time.Time) {
		if a.Before(from) {
			a = from
		}
		if b.After(a) {
			total += b.Sub(a)
		}
	}
	for i := range min(u.n, len(u.periods)) {
		overlap(u.periods[i].from, u.periods[i].to)
	}
	if !u.since.IsZero() {
		overlap(u.since, now)
	}
	return total
}

// HourReport sums up an entry's last hour, as the report document shows
// it.
type HourReport = api.HourReport

// LastHour reports the last hour. Latency percentiles come from a log2
// histogram: each is the upper edge of the bucket holding it, so it
// overstates by at most a factor of two.
func (e *Entry) LastHour() HourReport {
	now := time.Now()
	cur := now.UnixNano() / int64(hourSlot)
	var r HourReport
	var lat [latencyBuckets]int64
	for i := range int64(hourBuckets) {
		epoch := cur - i
		b := &e.hour[epoch%hourBuckets]
		if b.epoch.Load() != epoch {
			continue
		}
		r.Errors += b.errors.Load()
		for j := range lat {
			c := b.lat[j].Load()
			lat[j] += c
			r.Requests += c
		}
	}
	r.SuccessRate = 1
	if r.Requests > 0 {
		r.SuccessRate = math.Round(float64(r.Requests-r.Errors)/float64(r.Requests)*1e4) / 1e4
	}
	r.P50MS = percentile(lat[:], 0.50)
	r.P95MS = percentile(lat[:], 0.95)
	r.UnavailableSecs = math.Round(e.unavail.within(now.Add(-time.Hour), now).Seconds()*1000) / 1000
	return r
}

func percentile(lat []int64, q float64) float64 {
	var n int64
	for _, c := range lat {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i, c := range lat {
		seen += c
		if seen >= rank {
			return float64(int64(1)<<i) / 1000 // upper edge, in ms
		}
	}
	return float64(int64(1)<<(len(lat)-1)) / 1000
}
