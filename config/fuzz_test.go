package config

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse checks the invariants of Parse on any input: no panic, no
// multi-second run (see guard.go for what it found); a Config
// exactly when there is no error; every error (the environment here being
// valid) has a Subject in the parsed file; FormatDiagnostics gives one line
// per diagnostic.
func FuzzParse(f *testing.F) {
	seeds := []string{
		fullFile,
		"",
		`listen = ":7860"`,
		"health {\n  colldown = \"5m\"\n}\n",
		`health { error_threshold = 2.5 cooldown = "banana" }`,
		`health { error_threshold = 1e400 }`,
		`health { max_concurrent_reinit = -0 success_recovery_count = "7" }`,
		`provider "p" { upstreams = [] }`,
		`provider "p" { upstreams = ["http://h", "http://h/"] headers = { a = 1, a = 2, "b c" = null } }`,
		`provider "p" { upstreams = [for x in ["a"] : x] headers = { for k in ["a"] : k => k } }`,
		`provider "p" { upstreams = ["http://[::1"] }`,
		`provider "p" { upstreams = "http://h" headers = ["x"] }`,
		`provider "p" {} provider "p" {}`,
		`provider "." {}`,
		`provider "a" "b" {}`,
		`model "m" { plugin = "sentiment" command = ["x"] fallback = "m" }`,
		`model "m" { command = [null, 1, true] }`,
		`model "m" { command = [] timeout = env() fallback = env(1) }`,
		`model "m" { plugin = env("A", "B") name = env(null) }`,
		`model "m" { plugin = "${env("X")}" health { cooldown = "1h" } }`,
		`model "m" { plugin = var.x }`,
		`listen = 1 / 0`,
		`listen = [for x in [1] : x]`,
		`admin { token = file("x") }`,
		`state { }`,
		`alert "a" { webhook = env("X") on = ["unavailable", "x", "unavailable"] min_interval = "1m" }`,
		`alert "a" { webhook = "https://h/%zz" } alert "a" { webhook = "" on = [] }`,
		`alert { on = "x" min_interval = 5 }`,
		"provider \"p\" {\n  upstreams = [\"http://h\"\n",
		"model \"m\" {\n  command = [\"a\", \"b\"]\n}\nmodel \"n\" {\n  fallback = \"m\"\n plugin = \"x\"\n}\n",
		"\xff\xfe",
		"a = <<EOT\nx\nEOT\n",
		"listen = 1e-99999",
		`listen = "${1e300 * 1e300}"`,
		"listen = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		"listen = --------------------1",
		`listen = "%{if true}${"x"}%{endif}"`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	env := map[string]string{"X": "x", "A": "a"}
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		cfg, diags := Parse("fuzz.hcl", []byte(src), LoadOptions{
			Getenv:         envMap(env),
			BuiltinPlugins: []string{"sentiment"},
		})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v for %d bytes; want well under a second", d, len(src))
		}
		if diags.HasErrors() == (cfg != nil) {
			t.Fatalf("got Config %v with errors %v; want exactly one of them", cfg != nil, diags.HasErrors())
		}
		for _, d := range diags {
			if d == nil {
				t.Fatal("got a nil diagnostic")
			}
			if d.Subject == nil || d.Subject.Filename != "fuzz.hcl" {
				t.Errorf("got diagnostic %q %q without a Subject in fuzz.hcl", d.Summary, d.Detail)
			}
		}
		out := FormatDiagnostics(diags)
		if n := strings.Count(out, "\n"); n != len(diags) {
			t.Errorf("got %d lines for %d diagnostics:\n%s", n, len(diags), out)
		}
		if cfg != nil {
			for _, p := range cfg.Providers {
				if len(p.Upstreams) == 0 || p.Timeout <= 0 {
					t.Errorf("got provider %+v; want upstreams and a timeout", p)
				}
			}
			for _, a := range cfg.Alerts {
				if a.Webhook == nil || len(a.On) == 0 || a.MinInterval < 0 {
					t.Errorf("got alert %v; want a webhook, events and an interval >= 0", a)
				}
			}
			for _, m := range cfg.Models {
				if (m.Plugin == "") == (len(m.Command) == 0) {
					t.Errorf("got model %+v; want exactly one of plugin and command", m)
				}
			}
		}
	})
}
