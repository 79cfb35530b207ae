package soak

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tolerance says how much a resource may grow between the first and the
// last third of a run (after warm-up) and still count as flat: the last
// third's median may exceed the first third's by Ratio of it plus Abs.
type Tolerance struct {
	RSS        Limit // in KiB
	Goroutines Limit
	FDs        Limit
}

// Limit is one resource's allowance: Ratio (0.25: 25 %) plus Abs.
type Limit struct {
	Ratio float64
	Abs   float64
}

// DefaultTolerance: memory may grow by a quarter plus 8 MiB (the GC's
// heap target moves with load), goroutines and fds by a fifth plus 16
// (connections come and go with the workers).
var DefaultTolerance = Tolerance{
	RSS:        Limit{Ratio: 0.25, Abs: 8 << 10},
	Goroutines: Limit{Ratio: 0.20, Abs: 16},
	FDs:        Limit{Ratio: 0.20, Abs: 16},
}

func (t Tolerance) orDefault() Tolerance {
	if t.RSS == (Limit{}) {
		t.RSS = DefaultTolerance.RSS
	}
	if t.Goroutines == (Limit{}) {
		t.Goroutines = DefaultTolerance.Goroutines
	}
	if t.FDs == (Limit{}) {
		t.FDs = DefaultTolerance.FDs
	}
	return t
}

// Verdict is the flatness judgement of one resource.
type Verdict struct {
	Name string
	// First, Last are the medians of the first and last thirds after
	// warm-up; Allowed is the most Last may be.
	First, Last, Allowed float64
	// Windows are the medians of six equal windows after warm-up;
	// Monotone says they only ever rose, by more than the slack (a leak's
	// shape even when it is still within the tolerance).
	Windows  []float64
	Monotone bool
	Samples  int
	Flat     bool
	Why      string
}

func (v Verdict) String() string {
	ok := "flat"
	if !v.Flat {
		ok = "NOT FLAT: " + v.Why
	}
	ws := make([]string, len(v.Windows))
	for i, w := range v.Windows {
		ws[i] = fmt.Sprintf("%.0f", w)
	}
	return fmt.Sprintf("%-10s first third median %.0f, last third median %.0f (allowed ≤ %.0f), window medians [%s]: %s",
		v.Name, v.First, v.Last, v.Allowed, strings.Join(ws, " "), ok)
}

// minJudged is the fewest samples after warm-up worth a judgement.
const minJudged = 6

// Judge tells, for RSS, goroutines and open fds, whether the samples after
// warmup stay flat within tol.
func Judge(samples []Sample, warmup time.Duration, tol Tolerance) []Verdict {
	tol = tol.orDefault()
	var after []Sample
	for _, s := range samples {
		if s.T >= warmup {
			after = append(after, s)
		}
	}
	series := []struct {
		name string
		lim  Limit
		get  func(Sample) float64
	}{
		{"rss_kib", tol.RSS, func(s Sample) float64 { return float64(s.RSSKiB) }},
		{"goroutines", tol.Goroutines, func(s Sample) float64 { return float64(s.Goroutines) }},
		{"fds", tol.FDs, func(s Sample) float64 { return float64(s.FDs) }},
	}
	out := make([]Verdict, 0, len(series))
	for _, sr := range series {
		vals := make([]float64, len(after))
		for i, s := range after {
			vals[i] = sr.get(s)
		}
		out = append(out, judge(sr.name, vals, sr.lim))
	}
	return out
}

func judge(name string, vals []float64, lim Limit) Verdict {
	v := Verdict{Name: name, Samples: len(vals)}
	if len(vals) < minJudged {
		v.Why = fmt.Sprintf("only %d samples after warm-up; need %d", len(vals), minJudged)
		return v
	}
	third := len(vals) / 3
	v.First = median(vals[:third])
	v.Last = median(vals[len(vals)-third:])
	v.Allowed = v.First*(1+lim.Ratio) + lim.Abs
	n := min(6, len(vals)/2)
	for i := range n {
		v.Windows = append(v.Windows, median(vals[i*len(vals)/n:(i+1)*len(vals)/n]))
	}
	v.Monotone = true
	for i := 1; i < len(v.Windows); i++ {
		if v.Windows[i] <= v.Windows[i-1] {
			v.Monotone = false
		}
	}
	// A steady rise smaller than half the allowance is not judged a climb:
	// a short run (and a race build above all, whose detector's own memory
	// grows as it runs) rises a little in every window while it settles,
	// and the last-third check above still bounds the growth.
	slack := (v.Allowed - v.First) / 2
	v.Monotone = v.Monotone && v.Windows[len(v.Windows)-1]-v.Windows[0] > slack
	switch {
	case v.Last > v.Allowed:
		v.Why = fmt.Sprintf("grew from %.0f to %.0f, over the allowed %.0f", v.First, v.Last, v.Allowed)
	case v.Monotone:
		v.Why = fmt.Sprintf("rose in every one of %d windows, from %.0f to %.0f", len(v.Windows), v.Windows[0], v.Windows[len(v.Windows)-1])
	default:
		v.Flat = true
	}
	return v
}

func median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
