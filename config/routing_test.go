package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
)

func TestRoutingFull(t *testing.T) {
	cfg := mustParse(t, "/etc/hp/proxy.hcl", `
health {
  trip         = "rate"
  failure_rate = 0.25
}
provider "a" {
  upstreams = ["http://h1", "http://h2", "http://h3"]
  health { min_requests = 50 }
  weights   = [3, 1, 1]
  coalesce  = true
  outlier_detection {
    interval             = "5s"
    min_requests         = 10
    latency_factor       = 0
    max_ejection_percent = 34
  }
  hedge { after = "p99.5" }
  quota { weight_limit = 1200 }
}
provider "b" {
  upstreams = ["http://h1", "http://h2"]
  health {
    trip   = "count"
  }
  balance = "least_latency"
  hedge {
    after     = "200ms"
    max_extra = 0.05
    window    = "1m"
  }
  quota { reserve = 0 }
}
provider "c" {
  upstreams = ["http://h1"]
}
`, nil)
	rate := Health{TripRule: TripRate, FailureRate: 0.25, MinRequests: DefaultMinRequests, Window: DefaultTripWindow}
	if h := cfg.Health; h.TripRule != rate.TripRule || h.FailureRate != rate.FailureRate || h.MinRequests != rate.MinRequests || h.Window != rate.Window {
		t.Errorf("global trip settings %+v; want the rate rule at 0.25 with default min_requests and window", h)
	}
	a, b, c := cfg.Providers[0], cfg.Providers[1], cfg.Providers[2]
	if a.Health.TripRule != TripRate || a.Health.FailureRate != 0.25 || a.Health.MinRequests != 50 {
		t.Errorf("provider a inherits the rate rule and sets min_requests: got %+v", a.Health)
	}
	if b.Health.TripRule != TripCount || b.Health.FailureRate != 0 {
		t.Errorf("provider b goes back to the count rule: got %+v", b.Health)
	}
	if c.Health.TripRule != TripRate {
		t.Errorf("provider c inherits the global rule: got %+v", c.Health)
	}
	if !reflect.DeepEqual(a.Weights, []int{3, 1, 1}) || !a.Coalesce || a.Balance != "" {
		t.Errorf("a: weights %v coalesce %v balance %q", a.Weights, a.Coalesce, a.Balance)
	}
	wantOD := routecfg.OutlierDetection{Interval: 5 * time.Second, MinRequests: 10, FailurePercentage: 50, SuccessRateStdev: 1.9, LatencyFactor: 0, MaxEjectionPercent: 34}
	if a.OutlierDetection == nil || *a.OutlierDetection != wantOD {
		t.Errorf("a: outlier_detection %+v; want %+v", a.OutlierDetection, wantOD)
	}
	if h := a.Hedge; h == nil || h.After != 0 || h.AfterPercentile != 0.995 || h.MaxExtra != routecfg.DefaultHedgeMaxExtra || h.Window != routecfg.DefaultHedgeWindow {
		t.Errorf("a: hedge %+v", a.Hedge)
	}
	if q := a.Quota; q == nil || *q != (routecfg.Quota{Reserve: routecfg.DefaultQuotaReserve, WeightLimit: 1200}) {
		t.Errorf("a: quota %+v", a.Quota)
	}
	if b.Balance != BalanceLeastLatency || b.Weights != nil || b.Coalesce {
		t.Errorf("b: balance %q weights %v coalesce %v", b.Balance, b.Weights, b.Coalesce)
	}
	if h := b.Hedge; h == nil || *h != (routecfg.Hedge{After: 200 * time.Millisecond, MaxExtra: 0.05, Window: time.Minute}) {
		t.Errorf("b: hedge %+v", b.Hedge)
	}
	if q := b.Quota; q == nil || q.Reserve != 0 {
		t.Errorf("b: quota %+v; want reserve 0 kept", b.Quota)
	}
	if c.OutlierDetection != nil || c.Hedge != nil || c.Quota != nil || c.Coalesce || c.Balance != "" || c.Weights != nil {
		t.Errorf("c: routing is off by default; got %+v", c)
	}
}

func TestRoutingRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "trip",
			src:  prov("  health {\n    trip = \"ratio\"\n  }\n"),
			want: []string{`x.hcl:4:12: Invalid trip; "ratio" is not a trip rule; want "count" (error_threshold failures in a row, the default) or "rate" (failure_rate of at least min_requests calls within window). Did you mean "rate"?`},
		},
		{
			name: "rate settings without the rate rule",
			src:  prov("  health {\n    failure_rate = 0.5\n    window = \"10s\"\n  }\n"),
			want: []string{
				`x.hcl:4:20: Unused failure_rate; failure_rate applies to the rate rule only; add trip = "rate" to this health block, or remove failure_rate.`,
				`x.hcl:5:14: Unused window;`,
			},
		},
		{
			name: "rate settings out of range",
			src:  prov("  health {\n    trip = \"rate\"\n    failure_rate = 1.5\n    min_requests = 0\n    window = \"10ms\"\n  }\n"),
			want: []string{
				`x.hcl:5:20: Invalid failure_rate; Want a share of calls above 0 and at most 1, such as 0.5, got 1.5.`,
				`x.hcl:6:20: Invalid min_requests;`,
				`x.hcl:7:14: Invalid window; "10ms" is shorter than the minimum, 1s.`,
			},
		},
		{
			name: "balance and weights",
			src:  prov("  balance = \"least-latency\"\n  weights = [1, 2]\n"),
			want: []string{
				`x.hcl:3:13: Invalid balance; "least-latency" is not a balancing policy; want "round_robin" (the default) or "least_latency". Did you mean "least_latency"?`,
				`x.hcl:4:13: Invalid weights; weights lists 2 numbers for 1 upstreams;`,
			},
		},
		{
			name: "weights with least_latency",
			src:  prov("  balance = \"least_latency\"\n  weights = [1]\n"),
			want: []string{`x.hcl:4:13: Unused weights; weights apply to balance = "round_robin" only;`},
		},
		{
			name: "weight zero",
			src:  prov("  weights = [0]\n"),
			want: []string{`x.hcl:3:14: Invalid weights;`},
		},
		{
			name: "outlier rules",
			src:  prov("  outlier_detection {\n    interval = \"100ms\"\n    failure_percentage = 0\n    success_rate_stdev = 0\n    latency_factor = 0.5\n    max_ejection_percent = 101\n  }\n"),
			want: []string{
				`x.hcl:4:16: Invalid interval; "100ms" is shorter than the minimum, 1s.`,
				`x.hcl:7:22: Invalid latency_factor; Want 0 (off) or a factor above 1, such as 3, got 0.5.`,
				`x.hcl:8:28: Invalid max_ejection_percent;`,
			},
		},
		{
			name: "no outlier rule",
			src:  prov("  outlier_detection {\n    failure_percentage = 0\n    success_rate_stdev = 0\n    latency_factor = 0\n  }\n"),
			want: []string{`x.hcl:3:3: No outlier rule;`},
		},
		{
			name: "hedge",
			src:  prov("  hedge {\n    after = \"p100\"\n    max_extra = 0\n    window = \"2m\"\n  }\n"),
			want: []string{
				`x.hcl:4:13: Invalid after; "p100" is neither a percentile of recent latencies such as "p95" nor a duration > 0 such as "200ms".`,
				`x.hcl:5:17: Invalid max_extra;`,
				`x.hcl:6:14: Invalid window; "2m" is longer than the maximum, 1m0s.`,
			},
		},
		{
			name: "quota",
			src:  prov("  quota {\n    reserve = 1\n    weight_limit = -1\n  }\n"),
			want: []string{
				`x.hcl:4:15: Invalid reserve;`,
				`x.hcl:5:20: Invalid weight_limit;`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, nil)
			wantDiagnostics(t, out, tt.want)
		})
	}
}
