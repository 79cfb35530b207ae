package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/corscfg"
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
		resilienceFile,
		`health { cooldown = "1h" cooldown_multiplier = 0.5 max_cooldown = "10m" stable_period = "0s" }`,
		`health { cooldown = "1h" max_cooldown = [1] } model "m" { plugin = "sentiment" health { max_cooldown = "1m" } }`,
		`provider "p" { upstreams = ["http://h"] mode = "observer" slow_call_threshold = "-1s" max_rate_limit_pause = 5 }`,
		`provider "p" { upstreams = ["http://h"] health_check { path = "/a/../b" interval = "1s" expect_status = [200, 200, 99, "x", null] } }`,
		`provider "p" { upstreams = ["http://h"] health_check { path = "//h" timeout = "1m" } health_check {} }`,
		`provider "p" { upstreams = ["http://h"] retry { attempts = 11 backoff = "2s" on = ["4xx", "5xx", "5xx"] methods = ["get", "A B"] budget = 0 budget_window = "1ms" min_retries = -1 } }`,
		`provider "p" { upstreams = ["http://h"] retry { on = [] methods = [] budget = "1e400" } cache { stale_if_error = "0s" max_entries = 0 max_body = 1.5 } }`,
		`provider "p" { upstreams = ["http://h"] all_down { order = ["fail", "stale", "stale", "panic"] last_resort = "http://h/" wait = "11s" } }`,
		`provider "p" { upstreams = ["http://h"] all_down { order = [] last_resort = env("X") } all_down {} }`,
		`provider "p" { upstreams = ["http://h"] allow_trace = true cors { allow_origins = ["https://A.example:443/", "http://[::1]:3000", "http://127.0.0.1"] } }`,
		`provider "p" { upstreams = ["http://h"] allow_trace = "x" cors { allow_origins = ["*", "*", "null", "", "https://u@h/p?q#f", "https://*.h", "http://127.1"] } cors {} }`,
		`provider "p" { upstreams = ["http://h"] cors { allow_origins = [env("X"), "https://x", "HTTPS://X:443"] } }`,
		`provider "p" { upstreams = ["http://h"] cors { allow_origin = "*" } }`,
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
			checkHealth(t, cfg.Health)
			for _, p := range cfg.Providers {
				if len(p.Upstreams) == 0 || p.Timeout <= 0 {
					t.Errorf("got provider %+v; want upstreams and a timeout", p)
				}
				checkHealth(t, p.Health)
				checkResilience(t, p)
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
				checkHealth(t, m.Health)
			}
		}
	})
}

// checkHealth checks the bounds of a loaded Health.
func checkHealth(t *testing.T, h Health) {
	t.Helper()
	if h.ErrorThreshold < 1 || h.Cooldown <= 0 || h.RecoveryCount < 1 || h.ReinitCooldown < 0 || h.MaxConcurrentReinit < 1 ||
		h.CooldownMultiplier < 1 || h.CooldownMultiplier > MaxCooldownMultiplier || h.MaxCooldown < h.Cooldown || h.StablePeriod <= 0 {
		t.Errorf("got health %+v; want every field in bounds", h)
	}
}

// checkResilience checks the bounds of a loaded provider's resilience
// settings.
func checkResilience(t *testing.T, p Provider) {
	t.Helper()
	if p.Mode != ModeEnforce && p.Mode != ModeObserve || p.SlowCallThreshold < 0 || p.MaxRateLimitPause <= 0 {
		t.Errorf("got mode %q, slow_call_threshold %v, max_rate_limit_pause %v; want them in bounds", p.Mode, p.SlowCallThreshold, p.MaxRateLimitPause)
	}
	if hc := p.HealthCheck; hc != nil {
		if !strings.HasPrefix(hc.Path, "/") || strings.Contains(hc.Path, "..") || hc.Interval < MinHealthCheckInterval ||
			hc.Timeout <= 0 || hc.Timeout > hc.Interval || len(hc.ExpectStatus) == 0 {
			t.Errorf("got health_check %+v; want it in bounds", hc)
		}
		for _, s := range hc.ExpectStatus {
			if s < 100 || s > 599 {
				t.Errorf("got expect_status %v; want each from 100 to 599", hc.ExpectStatus)
			}
		}
	}
	r := p.Retry
	if r.Attempts < 1 || r.Attempts > MaxRetryAttempts || r.Backoff < 0 || r.MaxBackoff < r.Backoff ||
		len(r.On) == 0 || len(r.Methods) == 0 || r.Budget <= 0 || r.Budget > 1 || r.BudgetWindow < MinRetryBudgetWindow || r.MinRetries < 0 {
		t.Errorf("got retry %+v; want it in bounds", r)
	}
	if c := p.Cache; c != nil && (c.StaleIfError <= 0 || c.MaxEntries < 1 || c.MaxBodyBytes < 1) {
		t.Errorf("got cache %+v; want it in bounds", c)
	}
	if c := p.CORS; c != nil {
		if len(c.AllowOrigins) == 0 || slices.Contains(c.AllowOrigins, "*") && len(c.AllowOrigins) != 1 {
			t.Errorf("got allow_origins %q; want some origins, or \"*\" alone", c.AllowOrigins)
		}
		for i, o := range c.AllowOrigins {
			if n, problem := corscfg.NormalizeOrigin(o); problem != "" || n != o || slices.Index(c.AllowOrigins, o) != i || !c.Allows(o) {
				t.Errorf("got allow_origins %q; want distinct, normalised origins that Allows accepts", c.AllowOrigins)
			}
		}
	}
	a := p.AllDown
	if len(a.Order) == 0 || a.Order[len(a.Order)-1] != "fail" || a.Wait < 0 || a.Wait > MaxAllDownWait {
		t.Errorf("got all_down %+v; want an order ending in fail and a wait from 0 to %v", a, MaxAllDownWait)
	}
	for i, step := range a.Order {
		if !slices.Contains(AllDownSteps, step) || slices.Index(a.Order, step) != i {
			t.Errorf("got order %q; want distinct steps of %q", a.Order, AllDownSteps)
		}
	}
}
