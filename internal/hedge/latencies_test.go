package hedge

import (
	"testing"
	"time"
)

// TestQuantile: no answer before MinSamples; then the percentile of the
// window, within a bucket's width; observations older than the window
// are forgotten.
func TestQuantile(t *testing.T) {
	l := NewLatencies(0.95, 10*time.Second)
	now := time.Unix(1_000_000, 0)
	if l.MinSamples() != 40 {
		t.Fatalf("MinSamples %d; want 40 for p95", l.MinSamples())
	}
	for i := range 39 {
		l.Observe(time.Duration(i+1)*time.Millisecond, now)
	}
	if d, ok := l.Quantile(now); ok {
		t.Fatalf("Quantile with 39 samples = %v; want none", d)
	}
	for i := range 61 {
		l.Observe(time.Duration(40+i)*time.Millisecond, now) // 1ms..100ms in all
	}
	d, ok := l.Quantile(now)
	if !ok || d < 95*time.Millisecond || d > 95*time.Millisecond*9/8 {
		t.Fatalf("p95 of 1..100ms = %v, %v; want about 95ms", d, ok)
	}
	// the same slot: the cached estimate
	if d2, _ := l.Quantile(now.Add(time.Millisecond)); d2 != d {
		t.Errorf("a second read in the same slot = %v; want the cached %v", d2, d)
	}
	// 11s later every slot is out of the window
	if d, ok := l.Quantile(now.Add(11 * time.Second)); ok {
		t.Errorf("Quantile after the window passed = %v; want none", d)
	}
	for range 50 {
		l.Observe(3*time.Millisecond, now.Add(11*time.Second))
	}
	if d, ok := l.Quantile(now.Add(11 * time.Second)); !ok || d > 4*time.Millisecond {
		t.Errorf("p95 of new 3ms samples = %v, %v; want about 3ms, the old ones forgotten", d, ok)
	}
}

// BenchmarkObserve is the cost hedging adds to each attempt.
func BenchmarkObserve(b *testing.B) {
	l := NewLatencies(0.95, 10*time.Second)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.Observe(12*time.Millisecond, now)
		l.Quantile(now)
	}
}
