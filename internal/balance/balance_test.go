package balance

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

// newPeak is a PeakEWMA over n new estimates at t0.
func newPeak(n int) *PeakEWMA {
	es := make([]*EWMA, n)
	for i := range es {
		es[i] = NewEWMA(0, t0)
	}
	return NewPeakEWMA(es)
}

// TestEWMAPeakThenDecay: a latency above the average replaces it at once;
// lower ones and idle time bring it down with the time constant.
func TestEWMAPeakThenDecay(t *testing.T) {
	e := NewEWMA(10*time.Second, t0)
	if got := e.Latency(t0); got != DefaultRTT {
		t.Fatalf("new EWMA latency = %v; want DefaultRTT %v", got, DefaultRTT)
	}
	e.Begin()
	e.Observe(300*time.Millisecond, t0)
	if got := e.Latency(t0); got != 300*time.Millisecond {
		t.Fatalf("after a 300ms peak: latency = %v; want 300ms at once", got)
	}
	// One time constant later, an observation of 0 leaves 1/e of it.
	e.Begin()
	e.Observe(0, t0.Add(10*time.Second))
	want := 300 * time.Millisecond.Seconds() / math.E
	if got := e.Latency(t0.Add(10 * time.Second)).Seconds(); math.Abs(got-want) > 1e-6 {
		t.Errorf("one decay later: latency = %.6fs; want %.6fs (1/e of the peak)", got, want)
	}
	// Idle time decays it too, toward zero.
	if got := e.Latency(t0.Add(60 * time.Second)); got > time.Millisecond {
		t.Errorf("after 50s idle: latency = %v; want under 1ms", got)
	}
	// A peak again replaces it.
	e.Begin()
	e.Observe(200*time.Millisecond, t0.Add(61*time.Second))
	if got := e.Latency(t0.Add(61 * time.Second)); got != 200*time.Millisecond {
		t.Errorf("a new peak: latency = %v; want 200ms", got)
	}
}

// TestEWMACostCountsInFlight: cost is latency × (in flight + 1).
func TestEWMACostCountsInFlight(t *testing.T) {
	e := NewEWMA(0, t0)
	e.Begin()
	e.Observe(10*time.Millisecond, t0)
	if got, want := e.Cost(t0), float64(30*time.Millisecond); got != want {
		t.Fatalf("cost with none in flight = %v; want %v (the default's peak)", got, want)
	}
	e2 := NewEWMA(0, t0)
	e2.Begin()
	e2.Begin()
	if got, want := e2.Cost(t0), float64(3*DefaultRTT); got != want {
		t.Errorf("cost with 2 in flight = %v; want %v", got, want)
	}
	e2.End()
	e2.End()
	if e2.InFlight() != 0 {
		t.Errorf("in flight after End = %d; want 0", e2.InFlight())
	}
}

// TestPeakEWMAPrefersTheFaster: with two candidates, the cheaper wins
// every time; with three, the slowest is never chosen.
func TestPeakEWMAPrefersTheFaster(t *testing.T) {
	b := newPeak(3)
	for i, rtt := range []time.Duration{40 * time.Millisecond, 50 * time.Millisecond, 300 * time.Millisecond} {
		b.upstreams[i].Begin()
		b.upstreams[i].Observe(rtt, t0)
	}
	counts := [3]int{}
	for range 3000 {
		counts[b.Pick(0b111, t0)]++
	}
	if counts[2] != 0 {
		t.Errorf("the 300ms upstream was chosen %d times of 3000; want 0", counts[2])
	}
	if counts[0] < counts[1] {
		t.Errorf("picks %v: the 40ms upstream should win over the 50ms one", counts)
	}
	if got := b.Pick(0b110, t0); got != 1 {
		t.Errorf("Pick(b110) = %d; want 1 (the cheaper of the two)", got)
	}
	// In flight counts: upstream 0 busy with three requests costs 160ms.
	for range 3 {
		b.upstreams[0].Begin()
	}
	if got := b.Pick(0b011, t0); got != 1 {
		t.Errorf("with upstream 0 busy: Pick = %d; want 1", got)
	}
}

// TestPeakEWMAOnlyCandidates: never a non-candidate; -1 for none.
func TestPeakEWMAOnlyCandidates(t *testing.T) {
	b := newPeak(4)
	if got := b.Pick(0, t0); got != -1 {
		t.Errorf("Pick(0) = %d; want -1", got)
	}
	if got := b.Pick(1<<2, t0); got != 2 {
		t.Errorf("Pick(b100) = %d; want 2", got)
	}
	if got := b.Pick(1<<40, t0); got != -1 {
		t.Errorf("Pick of a bit beyond the upstreams = %d; want -1", got)
	}
	for range 1000 {
		if got := b.Pick(0b1010, t0); got != 1 && got != 3 {
			t.Fatalf("Pick(b1010) = %d; want 1 or 3", got)
		}
	}
	seen := [4]bool{}
	for range 1000 {
		seen[b.Pick(0b1111, t0)] = true // equal costs: every candidate gets picks
	}
	if seen != [4]bool{true, true, true, true} {
		t.Errorf("equal costs: picked %v; want every upstream", seen)
	}
}

// TestSmoothWeightedOrder: nginx's example order for 5:1:1, and 3:1:1
// gives exactly 60/20/20 over each cycle.
func TestSmoothWeightedOrder(t *testing.T) {
	w := NewSmoothWeighted([]int{5, 1, 1})
	var got []int
	for range 7 {
		got = append(got, w.Pick(0b111))
	}
	want := []int{0, 0, 1, 0, 2, 0, 0} // nginx: a a b a c a a
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("5:1:1 order = %v; want %v", got, want)
		}
	}
	w = NewSmoothWeighted([]int{3, 1, 1})
	counts := [3]int{}
	for range 500 {
		counts[w.Pick(0b111)]++
	}
	if counts != [3]int{300, 100, 100} {
		t.Errorf("3:1:1 over 500 picks = %v; want [300 100 100]", counts)
	}
}

// TestSmoothWeightedCandidatesOnly: an upstream left out is never
// chosen and the others share by their weights.
func TestSmoothWeightedCandidatesOnly(t *testing.T) {
	w := NewSmoothWeighted([]int{3, 1, 0}) // 0 counts as 1
	counts := [3]int{}
	for range 400 {
		counts[w.Pick(0b110)]++
	}
	if counts != [3]int{0, 200, 200} {
		t.Errorf("candidates b110 over 400 picks = %v; want [0 200 200]", counts)
	}
	if got := w.Pick(0); got != -1 {
		t.Errorf("Pick(0) = %d; want -1", got)
	}
	if got := w.Pick(1 << 9); got != -1 {
		t.Errorf("Pick of a bit beyond the upstreams = %d; want -1", got)
	}
}

// TestPickNoAllocs: picking allocates nothing.
func TestPickNoAllocs(t *testing.T) {
	b := newPeak(3)
	w := NewSmoothWeighted([]int{3, 1, 1})
	if a := testing.AllocsPerRun(1000, func() { b.Pick(0b111, t0) }); a != 0 {
		t.Errorf("PeakEWMA.Pick allocates %v times; want 0", a)
	}
	if a := testing.AllocsPerRun(1000, func() { w.Pick(0b111) }); a != 0 {
		t.Errorf("SmoothWeighted.Pick allocates %v times; want 0", a)
	}
}

func BenchmarkPeakEWMAPick(b *testing.B) {
	p := newPeak(3)
	b.ReportAllocs()
	for b.Loop() {
		p.Pick(0b111, t0)
	}
}

func BenchmarkSmoothWeightedPick(b *testing.B) {
	w := NewSmoothWeighted([]int{3, 1, 1})
	b.ReportAllocs()
	for b.Loop() {
		w.Pick(0b111)
	}
}
