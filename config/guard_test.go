package config

import (
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/hclx"
)

// Regression tests for what FuzzParse found: inputs that crashed hcl's
// recursive parser with a fatal stack overflow, or kept cty busy for
// seconds printing a number in full.
func TestGuards(t *testing.T) {
	const deep = 100000
	tests := []struct {
		name, src, want string
	}{
		{"nested brackets", "listen = " + strings.Repeat("[", deep) + strings.Repeat("]", deep),
			"x.hcl:1:74: Nested too deeply;"},
		{"nested blocks", strings.Repeat("health {\n", deep/4) + strings.Repeat("}\n", deep/4),
			"x.hcl:65:8: Nested too deeply;"},
		{"nested templates", "listen = " + strings.Repeat(`"${`, 100) + strings.Repeat(`}"`, 100),
			"x.hcl:1:"},
		{"unary minus run", "listen = " + strings.Repeat("-", deep) + "1",
			"x.hcl:1:26: Too many operators in a row;"},
		{"unary not run", "listen = " + strings.Repeat("!\n", deep) + "true",
			"x.hcl:17:1: Too many operators in a row;"},
		{"tiny number", "listen = 1e-99999", "x.hcl:1:10: Number out of range;"},
		{"file too large", strings.Repeat("# comment\n", hclx.MaxFileSize/10+1),
			"x.hcl: Config file too large; The file has 1048580 bytes; the limit is 1048576.\n"},
		{"huge number in a template", `listen = "${1e99999}"`, "x.hcl:1:13: Number out of range;"},
		{"huge number as a key", `provider "p" { headers = { 1e99999 = "x" } }`, "x.hcl:1:28: Number out of range;"},
		{"arithmetic", "health {\n  error_threshold = 1e15 * 1e15 * 1e15\n}\n",
			"x.hcl:2:21: Arithmetic is not supported; Write the resulting value instead.\n"},
		{"division in a template", `listen = "${1 / 3}"`, "x.hcl:1:13: Arithmetic is not supported;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out := mustFail(t, "x.hcl", tt.src, nil)
			if !strings.HasPrefix(out, tt.want) {
				t.Errorf("got %q; want prefix %q", out, tt.want)
			}
			if n := strings.Count(out, "\n"); n != 1 {
				t.Errorf("got %d diagnostics; want 1", n)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v; want seconds at most", d)
			}
		})
	}

	// Ordinary nesting, negative numbers and small fractions still work.
	mustParse(t, "x.hcl", `
listen = true ? "127.0.0.1:1" : "x"
health { error_threshold = -(-(2)) }
provider "p" {
  upstreams = [[["http://h"]][0][0]]
  headers   = { "X-A" = "${0.000001}", "X-B" = "${-1e15}" }
}
`, nil)
}

func TestLongValuesShortened(t *testing.T) {
	long := strings.Repeat("é", 5000)
	out := mustFail(t, "x.hcl", `listen = "`+long+`"`+"\n"+`health { error_threshold = env("N") }`,
		map[string]string{"N": long})
	if len(out) > 500 {
		t.Errorf("got %d bytes of diagnostics; want long values shortened:\n%.300s", len(out), out)
	}
	if !strings.Contains(out, `éé"…`) {
		t.Errorf("got %q; want a shortened value ending in …", out)
	}
}
