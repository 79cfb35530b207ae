// Package outlier finds the upstreams of a pool that do much worse than
// their peers (README "Routing", docs/behaviour.md "Outlier ejection"), as
// Envoy's outlier_detection does: a Recorder per upstream counts the
// requests, failures and latencies of the current interval on the request
// path; every interval the caller takes each Recorder's Stats and asks
// Detect which upstreams to eject, and why. The package holds no timer and
// knows nothing of HTTP or of health entries: ejecting is the caller's.
package outlier

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/lathist"
)

// Latencies go to an internal/lathist histogram; a bucket's middle is
// within 1/8 of the latencies it holds.
const (
	percentile  = 0.90
	minPeerRate = 3 // upstreams with MinRequests the success-rate rule needs
	minPeersLat = 2 // other upstreams with MinRequests the latency rule needs
)

// Recorder counts one upstream's requests of the current interval. Its
// methods are safe for concurrent use; Observe takes no lock and
// allocates nothing. The zero value is ready to use.
type Recorder struct {
	requests atomic.Int64
	failures atomic.Int64
	lat      [lathist.Buckets]atomic.Int64
}

// Observe counts one request: whether it failed and how long it took.
func (r *Recorder) Observe(failed bool, latency time.Duration) {
	r.requests.Add(1)
	if failed {
		r.failures.Add(1)
	}
	r.lat[lathist.Bucket(latency)].Add(1)
}

// Stats are one upstream's counts over an interval.
type Stats struct {
	Requests, Failures int64
	P90                time.Duration // 0 without requests
}

// Take returns the counts since the last Take and starts a new interval.
// A request observed while Take runs counts in one interval or the other,
// possibly its latency in the other one.
func (r *Recorder) Take() Stats {
	var counts [lathist.Buckets]int64
	var total int64
	for i := range r.lat {
		if n := r.lat[i].Load(); n != 0 {
			n = r.lat[i].Swap(0)
			counts[i] = n
			total += n
		}
	}
	st := Stats{Requests: r.requests.Swap(0), Failures: r.failures.Swap(0)}
	st.Failures = min(st.Failures, st.Requests)
	if total > 0 {
		rank := int64(math.Ceil(percentile * float64(total)))
		var seen int64
		for i, n := range counts {
			if seen += n; seen >= rank {
				st.P90 = lathist.Mid(i)
				break
			}
		}
	}
	return st
}

// Upstream is one upstream as Detect judges it.
type Upstream struct {
	Stats
	// Unavailable: it gets no traffic now for any reason (cooling down,
	// paused, held, drained). It is not judged and is no peer, and it
	// counts towards MaxEjectionPercent.
	Unavailable bool
}

// Rules naming what ejected an upstream, as in metrics.
const (
	RuleFailurePercentage = "failure_percentage"
	RuleSuccessRate       = "success_rate"
	RuleLatency           = "latency"
)

// Decision is an upstream to eject.
type Decision struct {
	Index  int    // into Detect's upstreams
	Rule   string // RuleFailurePercentage, RuleSuccessRate or RuleLatency
	Reason string // the rule and its numbers, in words
	// severity orders the decisions when the cap keeps some: failure
	// rules first, the worst success rate first; then the slowest.
	severity float64
}

// Detect returns the upstreams of ups to eject under cfg, worst first,
// within cfg.MaxEjectionPercent of len(ups) unavailable at once (those
// already unavailable included) and never the last one available. An
// upstream is judged only with at least cfg.MinRequests requests; it is
// ejected when
//   - its failures are at least FailurePercentage of its requests (if > 0),
//   - or its success rate is more than SuccessRateStdev standard deviations
//     below the mean success rate of the upstreams with MinRequests (if > 0,
//     with at least three of them),
//   - or its p90 latency is more than LatencyFactor times the median of
//     the p90 of the other upstreams with MinRequests (if > 0, with at
//     least two of them).
func Detect(cfg routecfg.OutlierDetection, ups []Upstream) []Decision {
	minReq := int64(max(cfg.MinRequests, 1))
	var judged []int
	unavailable := 0
	for i, u := range ups {
		switch {
		case u.Unavailable:
			unavailable++
		case u.Requests >= minReq:
			judged = append(judged, i)
		}
	}
	room := min(len(ups)*cfg.MaxEjectionPercent/100, len(ups)-1) - unavailable
	if room <= 0 || len(judged) == 0 {
		return nil
	}

	var mean, stdev float64
	if cfg.SuccessRateStdev > 0 && len(judged) >= minPeerRate {
		for _, i := range judged {
			mean += successRate(ups[i].Stats)
		}
		mean /= float64(len(judged))
		for _, i := range judged {
			d := successRate(ups[i].Stats) - mean
			stdev += d * d
		}
		stdev = math.Sqrt(stdev / float64(len(judged)))
	}

	var out []Decision
	for _, i := range judged {
		st := ups[i].Stats
		fail := 100 - successRate(st)
		switch {
		case cfg.FailurePercentage > 0 && fail >= cfg.FailurePercentage:
			out = append(out, Decision{Index: i, Rule: RuleFailurePercentage, severity: 2 + fail/100,
				Reason: fmt.Sprintf("failure percentage %s of %d requests ≥ %g%%", pct(fail), st.Requests, cfg.FailurePercentage)})
		case stdev > 0 && successRate(st) < mean-cfg.SuccessRateStdev*stdev:
			out = append(out, Decision{Index: i, Rule: RuleSuccessRate, severity: 2 + fail/100,
				Reason: fmt.Sprintf("success rate %s of %d requests < peers' mean %s − %g × stdev %s",
					pct(successRate(st)), st.Requests, pct(mean), cfg.SuccessRateStdev, pct(stdev))})
		case cfg.LatencyFactor > 0 && len(judged) > minPeersLat:
			med := medianP90(ups, judged, i)
			if med > 0 && float64(st.P90) > cfg.LatencyFactor*float64(med) {
				out = append(out, Decision{Index: i, Rule: RuleLatency, severity: 1 - 1/float64(st.P90),
					Reason: fmt.Sprintf("p90 latency %s > %g × peers' median %s", round(st.P90), cfg.LatencyFactor, round(med))})
			}
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].severity > out[b].severity })
	if len(out) > room {
		out = out[:room]
	}
	return out
}

// successRate is the percentage of st's requests that succeeded.
func successRate(st Stats) float64 {
	return 100 * float64(st.Requests-st.Failures) / float64(st.Requests)
}

// medianP90 is the median of the p90 of the judged upstreams other than self.
func medianP90(ups []Upstream, judged []int, self int) time.Duration {
	var p []time.Duration
	for _, i := range judged {
		if i != self {
			p = append(p, ups[i].P90)
		}
	}
	slices.Sort(p)
	if n := len(p); n%2 == 1 {
		return p[n/2]
	} else {
		return (p[n/2-1] + p[n/2]) / 2
	}
}

func pct(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f%%", f)
	}
	return fmt.Sprintf("%.1f%%", f)
}

// round shows a latency to three significant digits at most.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
