package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestModelLimits(t *testing.T) {
	cfg := mustParse(t, "x.hcl", `
model "a" {
  plugin          = "sentiment"
  max_memory      = "2GiB"
  max_requests    = 100000
  latency_recycle = 3
  warmup          = ["sample text", "another"]
}
model "b" {
  plugin     = "sentiment"
  max_memory = 536870912
}
model "c" {
  plugin = "sentiment"
}
`, nil)
	a, b, c := cfg.Model("a"), cfg.Model("b"), cfg.Model("c")
	if a.MaxMemory != 2<<30 || a.MaxRequests != 100000 || a.LatencyRecycle != 3 ||
		!reflect.DeepEqual(a.Warmup, []string{"sample text", "another"}) {
		t.Errorf("model a: max_memory %d, max_requests %d, latency_recycle %g, warmup %q; want 2GiB, 100000, 3, two samples",
			a.MaxMemory, a.MaxRequests, a.LatencyRecycle, a.Warmup)
	}
	if b.MaxMemory != 512<<20 {
		t.Errorf("model b: max_memory %d; want 512MiB as a number of bytes", b.MaxMemory)
	}
	if c.MaxMemory != 0 || c.MaxRequests != 0 || c.LatencyRecycle != 0 || c.Warmup != nil {
		t.Errorf("model c: %+v; want every limit off and no warm-up", c)
	}
}

func TestModelLimitsInvalid(t *testing.T) {
	model := func(body string) string {
		return "model \"m\" {\n  plugin = \"sentiment\"\n" + body + "}\n"
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unit", model("  max_memory = \"2GB!\"\n"), []string{`x.hcl:3:16: Invalid max_memory; "2GB!" is not a size: unknown unit "GB!"`}},
		{"no number", model("  max_memory = \"GiB\"\n"), []string{`x.hcl:3:16: Invalid max_memory; "GiB" is not a size: no number.`}},
		{"too small", model("  max_memory = \"512kB\"\n"), []string{`x.hcl:3:16: Invalid max_memory; 500KiB is below the minimum, 1MiB.`}},
		{"fraction of bytes", model("  max_memory = 1.5\n"), []string{`x.hcl:3:16: Invalid max_memory; Want a size such as "2GiB" or "512MB", or a whole number of bytes; got 1.5.`}},
		{"list", model("  max_memory = [1]\n"), []string{`x.hcl:3:16: Invalid max_memory; Want a size such as "2GiB" or "512MB", got tuple.`}},
		{"max_requests 0", model("  max_requests = 0\n"), []string{`x.hcl:3:18: Invalid max_requests; Want a whole number from 1 to`}},
		{"latency_recycle 1", model("  latency_recycle = 1\n"), []string{`x.hcl:3:21: Invalid latency_recycle; Want a number above 1 and at most 1000`}},
		{"warmup empty", model("  warmup = []\n"), []string{`x.hcl:3:12: Invalid warmup; Model "m": warmup is an empty list`}},
		{"warmup not strings", model("  warmup = [\"a\", [\"b\"]]\n"), []string{`x.hcl:3:18: Invalid warmup; Element 1: want a string`}},
		{"every problem at once", model("  max_memory = \"x\"\n  max_requests = -1\n  latency_recycle = \"fast\"\n  warmup = \"text\"\n"), []string{
			`x.hcl:3:16: Invalid max_memory;`,
			`x.hcl:4:18: Invalid max_requests;`,
			`x.hcl:5:21: Invalid latency_recycle;`,
			`x.hcl:6:12: Invalid warmup; Want a list of strings, got string.`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantDiagnostics(t, mustFail(t, "x.hcl", tt.src, nil), tt.want)
		})
	}
	src := model("  warmup = [" + strings.Repeat(`"s", `, MaxWarmupInputs) + "\"s\"]\n")
	wantDiagnostics(t, mustFail(t, "x.hcl", src, nil), []string{`x.hcl:3:12: Invalid warmup; Model "m": 257 warm-up samples; at most 256`})
}
