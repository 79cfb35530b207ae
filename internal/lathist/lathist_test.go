package lathist

import (
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	for _, d := range []time.Duration{0, time.Microsecond, 7 * time.Microsecond, 8 * time.Microsecond, 9 * time.Microsecond,
		15 * time.Microsecond, 100 * time.Microsecond, 999 * time.Microsecond, time.Millisecond, 12 * time.Millisecond,
		37 * time.Millisecond, 310 * time.Millisecond, time.Second, 3 * time.Second, time.Hour} {
		b := Bucket(d)
		up := Upper(b)
		lo := time.Duration(0)
		if b > 0 {
			lo = Upper(b - 1)
		}
		if d.Truncate(time.Microsecond) < lo || d >= up || float64(up-lo) > 0.125*float64(max(lo, 8*time.Microsecond))+float64(time.Microsecond) {
			t.Errorf("%v: bucket %d is [%v, %v); want d inside, at most 12.5%% wide", d, b, lo, up)
		}
		if mid := Mid(b); mid-d < -d/8 || mid-d > d/8 {
			t.Errorf("latency %v: bucket middle %v; want within 1/8", d, mid)
		}
	}
	if b := Bucket(time.Duration(1 << 62)); b != Buckets-1 {
		t.Errorf("a huge latency is in bucket %d; want the last, %d", b, Buckets-1)
	}
	if b := Bucket(-time.Second); b != 0 {
		t.Errorf("a negative latency is in bucket %d; want 0", b)
	}
}
