// Package lathist is the layout of healproxy's latency histograms
// (outlier detection's p90 per upstream, the hedge delay's percentile):
// buckets of microseconds, exact below 8µs, then eight per power of two
// (at most 12.5 % wide), up to 2^41µs (25 days); longer latencies go to
// the last bucket. A histogram is an array of Buckets counters indexed by
// Bucket; its users keep the counters (atomic, lock-free) themselves.
package lathist

import (
	"math/bits"
	"time"
)

const (
	subBits = 3
	sub     = 1 << subBits
	maxExp  = 40 // the last power of two: latencies of 2^40µs and more share the last eight buckets

	// Buckets is the number of buckets.
	Buckets = (maxExp-subBits+1)*sub + sub
)

// Bucket is the bucket of latency d (a negative d is in bucket 0).
func Bucket(d time.Duration) int {
	us := uint64(max(d/time.Microsecond, 0))
	if us < sub {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	if e > maxExp {
		return Buckets - 1
	}
	m := (us >> (e - subBits)) & (sub - 1)
	return (e-subBits+1)*sub + int(m)
}

// bounds are bucket b's range [lower, lower+width), in microseconds.
func bounds(b int) (lower, width uint64) {
	if b < sub {
		return uint64(b), 1
	}
	e := b/sub + subBits - 1
	width = uint64(1) << (e - subBits)
	return (sub + uint64(b%sub)) * width, width
}

// Upper is the end of bucket b's range (exclusive).
func Upper(b int) time.Duration {
	lo, w := bounds(b)
	return time.Duration(lo+w) * time.Microsecond
}

// Mid is the middle of bucket b's range (its latency, below 8µs): within
// 1/8 of every latency the bucket holds.
func Mid(b int) time.Duration {
	lo, w := bounds(b)
	return time.Duration(lo+w/2) * time.Microsecond
}
