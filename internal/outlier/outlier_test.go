package outlier

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
)

func rules() routecfg.OutlierDetection {
	return routecfg.OutlierDetection{Interval: 10 * time.Second, MinRequests: 20, FailurePercentage: 50,
		SuccessRateStdev: 1.9, LatencyFactor: 3, MaxEjectionPercent: 50}
}

func up(requests, failures int64, p90 time.Duration) Upstream {
	return Upstream{Stats: Stats{Requests: requests, Failures: failures, P90: p90}}
}

func indexes(ds []Decision) []int {
	var out []int
	for _, d := range ds {
		out = append(out, d.Index)
	}
	return out
}

func TestRecorderP90(t *testing.T) {
	var r Recorder
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		d := time.Duration(1+rng.IntN(10)) * time.Millisecond // 1..10ms
		if i%10 == 0 {
			d = 300 * time.Millisecond // 10% slow
		}
		r.Observe(i%4 == 0, d)
	}
	st := r.Take()
	if st.Requests != 1000 || st.Failures != 250 {
		t.Fatalf("got %d requests, %d failures; want 1000 and 250", st.Requests, st.Failures)
	}
	if st.P90 < 9*time.Millisecond || st.P90 > 11500*time.Microsecond {
		t.Fatalf("got p90 %v; want about 10ms", st.P90)
	}
	r.Observe(false, 300*time.Millisecond)
	if st := r.Take(); st.Requests != 1 || st.P90 < 290*time.Millisecond || st.P90 > 320*time.Millisecond {
		t.Fatalf("got %+v after Take; want one request of about 300ms (a new interval)", st)
	}
	if st := r.Take(); st != (Stats{}) {
		t.Fatalf("got %+v; want an empty interval", st)
	}
}

func TestDetect(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		cfg      func(*routecfg.OutlierDetection)
		ups      []Upstream
		want     []int
		rule     string
		inReason string
	}{
		{name: "failure percentage", ups: []Upstream{up(100, 0, ms), up(100, 60, ms)},
			want: []int{1}, rule: RuleFailurePercentage, inReason: "failure percentage 60% of 100 requests ≥ 50%"},
		{name: "below the failure percentage", ups: []Upstream{up(100, 0, ms), up(100, 49, ms)}},
		{name: "below min_requests", ups: []Upstream{up(100, 0, ms), up(19, 19, ms)}},
		{name: "success rate with three", cfg: func(c *routecfg.OutlierDetection) { c.FailurePercentage = 0 },
			ups:  []Upstream{up(100, 0, ms), up(100, 1, ms), up(100, 0, ms), up(100, 2, ms), up(100, 30, ms)},
			want: []int{4}, rule: RuleSuccessRate, inReason: "success rate 70% of 100 requests < peers' mean 93.4% − 1.9 × stdev"},
		{name: "success rate needs three", cfg: func(c *routecfg.OutlierDetection) { c.FailurePercentage = 0 },
			ups: []Upstream{up(100, 0, ms), up(100, 30, ms), up(10, 0, ms)}},
		{name: "latency", ups: []Upstream{up(100, 0, 12*ms), up(100, 0, 310*ms), up(100, 0, 10*ms), up(100, 0, 14*ms)},
			want: []int{1}, rule: RuleLatency, inReason: "p90 latency 310ms > 3 × peers' median 12ms"},
		{name: "latency needs two others", ups: []Upstream{up(100, 0, 12*ms), up(100, 0, 310*ms), up(5, 0, 10*ms)}},
		{name: "latency within the factor", ups: []Upstream{up(100, 0, 12*ms), up(100, 0, 35*ms), up(100, 0, 12*ms)}},
		{name: "latency off", cfg: func(c *routecfg.OutlierDetection) { c.LatencyFactor = 0 },
			ups: []Upstream{up(100, 0, 12*ms), up(100, 0, 310*ms), up(100, 0, 12*ms)}},
		{name: "cap: 4 upstreams, 3 bad, 50% → the 2 worst", ups: []Upstream{up(100, 70, ms), up(100, 0, ms), up(100, 90, ms), up(100, 80, ms)},
			want: []int{2, 3}, rule: RuleFailurePercentage},
		{name: "cap counts the unavailable", ups: []Upstream{up(100, 70, ms), {Unavailable: true}, up(100, 90, ms), up(100, 0, ms)},
			want: []int{2}, rule: RuleFailurePercentage},
		{name: "cap reached", ups: []Upstream{up(100, 70, ms), {Unavailable: true}, {Unavailable: true}, up(100, 0, ms)}},
		{name: "one always serves", cfg: func(c *routecfg.OutlierDetection) { c.MaxEjectionPercent = 100 },
			ups: []Upstream{up(100, 70, ms), up(100, 90, ms)}, want: []int{1}, rule: RuleFailurePercentage},
		{name: "a single upstream", cfg: func(c *routecfg.OutlierDetection) { c.MaxEjectionPercent = 100 },
			ups: []Upstream{up(100, 100, ms)}},
		{name: "failures before latency", cfg: func(c *routecfg.OutlierDetection) { c.MaxEjectionPercent = 25 },
			ups:  []Upstream{up(100, 0, 12*ms), up(100, 0, 900*ms), up(100, 0, 12*ms), up(100, 60, 12*ms)},
			want: []int{3}, rule: RuleFailurePercentage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rules()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			got := Detect(cfg, tt.ups)
			if g, w := indexes(got), tt.want; len(g) != len(w) || (len(g) > 0 && !equal(g, w)) {
				t.Fatalf("got ejections %v (%+v); want %v", g, got, w)
			}
			for _, d := range got {
				if d.Rule != tt.rule || !strings.Contains(d.Reason, tt.inReason) {
					t.Fatalf("got rule %q reason %q; want %q with %q", d.Rule, d.Reason, tt.rule, tt.inReason)
				}
			}
		})
	}
}

func equal(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkObserve(b *testing.B) {
	var r Recorder
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(false, 12*time.Millisecond)
		}
	})
}
