package routecfg

import "testing"

func TestPercentileName(t *testing.T) {
	for in, want := range map[string]float64{"p95": 0.95, "p99.9": 0.999, "p50": 0.5} {
		if got, ok := percentileName(in); !ok || got != want {
			t.Errorf("percentileName(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"p095", "p100", "p0", "95", "p", "p9x", "P95", "p-1"} {
		if got, ok := percentileName(in); ok {
			t.Errorf("percentileName(%q) = %v; want it refused", in, got)
		}
	}
}
