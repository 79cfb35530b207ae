package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// defaultRetryWant is the retry policy a provider gets without a retry
// block, written out rather than taken from the code under test.
func defaultRetryWant(attempts int) Retry {
	return Retry{
		Attempts:     attempts,
		Backoff:      25 * time.Millisecond,
		MaxBackoff:   time.Second,
		On:           []string{"connect-failure", "5xx", "timeout"},
		Methods:      []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"},
		Budget:       0.2,
		BudgetWindow: 10 * time.Second,
		MinRetries:   3,
	}
}

func defaultAllDownWant() AllDown {
	return AllDown{Order: []string{"stale", "last_resort", "wait", "fail"}}
}

const resilienceFile = `
health {
  cooldown            = "1m"
  cooldown_multiplier = 1.5
  max_cooldown        = "20m"
  stable_period       = "15m"
}

provider "api" {
  upstreams            = ["https://a.example/v1", "https://b.example/v1", "https://c.example/v1"]
  mode                 = "observe"
  slow_call_threshold  = "2s"
  max_rate_limit_pause = "5m"
  health {
    cooldown_multiplier = 3
    max_cooldown        = "1h"
  }
  health_check {
    path          = "/ping?deep=1"
    interval      = "15s"
    timeout       = "1500ms"
    expect_status = [200, 204]
  }
  retry {
    attempts      = 4
    backoff       = "50ms"
    max_backoff   = "2s"
    on            = ["connect-failure", "5xx", "timeout", "429"]
    methods       = ["GET", "POST"]
    budget        = 0.5
    budget_window = "30s"
    min_retries   = 0
  }
  cache {
    stale_if_error = "30s"
    max_entries    = 50
    max_body       = 65536
  }
  all_down {
    order       = ["last_resort", "stale", "wait"]
    last_resort = env("BACKUP")
    wait        = "2s"
  }
}

provider "brief" {
  upstreams            = ["https://x.example/api"]
  mode                 = "enforce"
  slow_call_threshold  = "0s"
  max_rate_limit_pause = "10m"
  health_check {
    path          = "/ping"
    interval      = "30s"
    timeout       = "2s"
    expect_status = [200, 204]
  }
  retry {
    attempts      = 3
    backoff       = "25ms"
    max_backoff   = "1s"
    on            = ["connect-failure", "5xx", "timeout", "429"]
    methods       = ["GET", "POST"]
    budget        = 0.2
    budget_window = "10s"
    min_retries   = 3
  }
  cache {
    stale_if_error = "5m"
    max_entries    = 1000
    max_body       = 1048576
  }
  all_down {
    order       = ["stale", "last_resort", "wait", "fail"]
    last_resort = "https://backup.example/api"
    wait        = "10s"
  }
}

model "m" {
  plugin = "sentiment"
  health {
    stable_period = "1m"
  }
}
`

func TestResilienceFull(t *testing.T) {
	cfg := mustParse(t, "/etc/hp/proxy.hcl", resilienceFile, map[string]string{"BACKUP": "https://backup.example:8443/v1?key=k"})
	global := Health{
		ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2, AutoReinit: true,
		ReinitCooldown: 10 * time.Minute, MaxConcurrentReinit: 5,
		CooldownMultiplier: 1.5, MaxCooldown: 20 * time.Minute, StablePeriod: 15 * time.Minute,
	}
	apiHealth := global
	apiHealth.CooldownMultiplier = 3
	apiHealth.MaxCooldown = time.Hour
	modelHealth := global
	modelHealth.StablePeriod = time.Minute

	if cfg.Health != global {
		t.Errorf("got global health %+v; want %+v", cfg.Health, global)
	}
	if got := cfg.Models[0].Health; got != modelHealth {
		t.Errorf("got model health %+v; want %+v", got, modelHealth)
	}
	want := []Provider{
		{
			ID:   "api",
			Name: "api",
			Upstreams: []*url.URL{
				mustURL(t, "https://a.example/v1"),
				mustURL(t, "https://b.example/v1"),
				mustURL(t, "https://c.example/v1"),
			},
			Timeout:           DefaultProviderTimeout,
			Health:            apiHealth,
			Mode:              "observe",
			SlowCallThreshold: 2 * time.Second,
			MaxRateLimitPause: 5 * time.Minute,
			MaxRequestBody:    DefaultMaxRequestBody,
			HealthCheck: &HealthCheck{
				Path:         "/ping?deep=1",
				Interval:     15 * time.Second,
				Timeout:      1500 * time.Millisecond,
				ExpectStatus: []int{200, 204},
			},
			Retry: Retry{
				Attempts:     4,
				Backoff:      50 * time.Millisecond,
				MaxBackoff:   2 * time.Second,
				On:           []string{"connect-failure", "5xx", "timeout", "429"},
				Methods:      []string{"GET", "POST"},
				Budget:       0.5,
				BudgetWindow: 30 * time.Second,
				// min_retries = 0 is taken for the default, as the
				// proxy always has (see Retry.normalize).
				MinRetries: DefaultRetryMinRetries,
			},
			Cache: &Cache{StaleIfError: 30 * time.Second, MaxEntries: 50, MaxBodyBytes: 65536},
			AllDown: AllDown{
				Order:      []string{"last_resort", "stale", "wait", "fail"},
				LastResort: mustURL(t, "https://backup.example:8443/v1?key=k"),
				Wait:       2 * time.Second,
			},
			IdleTimeout: 30 * time.Second,
		},
		{
			ID:                "brief",
			Name:              "brief",
			Upstreams:         []*url.URL{mustURL(t, "https://x.example/api")},
			Timeout:           DefaultProviderTimeout,
			Health:            global,
			Mode:              "enforce",
			SlowCallThreshold: 0,
			MaxRateLimitPause: 10 * time.Minute,
			MaxRequestBody:    DefaultMaxRequestBody,
			HealthCheck: &HealthCheck{
				Path:         "/ping",
				Interval:     30 * time.Second,
				Timeout:      2 * time.Second,
				ExpectStatus: []int{200, 204},
			},
			Retry: Retry{
				Attempts:     3,
				Backoff:      25 * time.Millisecond,
				MaxBackoff:   time.Second,
				On:           []string{"connect-failure", "5xx", "timeout", "429"},
				Methods:      []string{"GET", "POST"},
				Budget:       0.2,
				BudgetWindow: 10 * time.Second,
				MinRetries:   3,
			},
			Cache: &Cache{StaleIfError: 5 * time.Minute, MaxEntries: 1000, MaxBodyBytes: 1 << 20},
			AllDown: AllDown{
				Order:      []string{"stale", "last_resort", "wait", "fail"},
				LastResort: mustURL(t, "https://backup.example/api"),
				Wait:       10 * time.Second,
			},
			IdleTimeout: 30 * time.Second,
		},
	}
	if !reflect.DeepEqual(cfg.Providers, want) {
		t.Errorf("got\n%#v\nwant\n%#v", cfg.Providers, want)
	}
}

func TestResilienceDefaults(t *testing.T) {
	cfg := mustParse(t, "x.hcl", `
provider "one" {
  upstreams = ["http://a"]
}
provider "three" {
  upstreams = ["http://a", "http://b", "http://c"]
  retry {}
}
provider "twelve" {
  upstreams = ["http://a1", "http://a2", "http://a3", "http://a4", "http://a5", "http://a6",
               "http://a7", "http://a8", "http://a9", "http://a10", "http://a11", "http://a12"]
  retry {
    backoff = "10ms"
  }
}
provider "blocks" {
  upstreams = ["http://a", "http://b"]
  health_check {}
  cache {}
  all_down {
    order       = ["wait"]
    last_resort = env("UNSET")
  }
}
provider "failonly" {
  upstreams = ["http://a"]
  all_down {
    order = ["fail"]
  }
}
`, nil)
	for _, tt := range []struct {
		id       string
		attempts int
	}{{"one", 1}, {"three", 3}, {"twelve", 10}, {"blocks", 2}, {"failonly", 1}} { // one try per upstream: a single upstream is not retried
		p := cfg.Provider(tt.id)
		want := defaultRetryWant(tt.attempts)
		if tt.id == "twelve" {
			want.Backoff = 10 * time.Millisecond
		}
		if !reflect.DeepEqual(p.Retry, want) {
			t.Errorf("provider %s: got retry %+v; want %+v", tt.id, p.Retry, want)
		}
		if p.Mode != ModeEnforce || p.SlowCallThreshold != 0 || p.MaxRateLimitPause != 10*time.Minute {
			t.Errorf("provider %s: got mode %q, slow_call_threshold %v, max_rate_limit_pause %v; want enforce, 0, 10m",
				tt.id, p.Mode, p.SlowCallThreshold, p.MaxRateLimitPause)
		}
	}

	one := cfg.Provider("one")
	if one.HealthCheck != nil || one.Cache != nil {
		t.Errorf("got health_check %+v, cache %+v without the blocks; want nil", one.HealthCheck, one.Cache)
	}
	if !reflect.DeepEqual(one.AllDown, defaultAllDownWant()) {
		t.Errorf("got all_down %+v; want %+v", one.AllDown, defaultAllDownWant())
	}

	blocks := cfg.Provider("blocks")
	wantHC := &HealthCheck{Path: "/", Interval: 30 * time.Second, Timeout: 2 * time.Second, ExpectStatus: []int{200}}
	if !reflect.DeepEqual(blocks.HealthCheck, wantHC) {
		t.Errorf("got health_check %+v; want %+v", blocks.HealthCheck, wantHC)
	}
	wantCache := &Cache{StaleIfError: 5 * time.Minute, MaxEntries: 1000, MaxBodyBytes: 1 << 20}
	if !reflect.DeepEqual(blocks.Cache, wantCache) {
		t.Errorf("got cache %+v; want %+v", blocks.Cache, wantCache)
	}
	// "fail" is implied at the end; an empty last_resort means none.
	wantAD := AllDown{Order: []string{"wait", "fail"}}
	if !reflect.DeepEqual(blocks.AllDown, wantAD) {
		t.Errorf("got all_down %+v; want %+v", blocks.AllDown, wantAD)
	}
	if got := cfg.Provider("failonly").AllDown.Order; !reflect.DeepEqual(got, []string{"fail"}) {
		t.Errorf("got order %q; want [fail]", got)
	}

	// Defaults are copies: changing a Config cannot change the next one.
	one.Retry.On[0] = "changed"
	one.Retry.Methods[0] = "CHANGED"
	one.AllDown.Order[0] = "changed"
	blocks.HealthCheck.ExpectStatus[0] = 599
	again := mustParse(t, "x.hcl", `provider "p" {
  upstreams = ["http://a"]
  health_check {}
}`, nil).Providers[0]
	if again.Retry.On[0] != "connect-failure" || again.Retry.Methods[0] != "GET" ||
		again.AllDown.Order[0] != "stale" || again.HealthCheck.ExpectStatus[0] != 200 {
		t.Errorf("got %+v after changing an earlier Config; want the defaults", again)
	}
}

// prov wraps body in a provider block whose body starts on line 3.
func prov(body string) string {
	return "provider \"p\" {\n  upstreams = [\"http://h/v1\"]\n" + body + "}\n"
}

func TestResilienceRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // prefixes of lines of FormatDiagnostics, in order
	}{
		{
			name: "mode",
			src:  prov("  mode = \"observer\"\n"),
			want: []string{`x.hcl:3:10: Invalid mode; "observer" is not a mode; want "enforce" (the default: unavailable upstreams get no traffic) or "observe" (track health, metrics and alerts, never block a request). Did you mean "observe"?`},
		},
		{
			name: "mode not a string",
			src:  prov("  mode = [\"observe\"]\n"),
			want: []string{`x.hcl:3:10: Unsuitable value type;`},
		},
		{
			name: "slow_call_threshold and max_rate_limit_pause",
			src:  prov("  slow_call_threshold = \"-1s\"\n  max_rate_limit_pause = \"0s\"\n"),
			want: []string{
				`x.hcl:3:25: Invalid slow_call_threshold; "-1s" is not a duration >= 0`,
				`x.hcl:4:26: Invalid max_rate_limit_pause; "0s" is not a duration > 0`,
			},
		},
		{
			name: "health_check paths",
			src: `provider "a" {
  upstreams = ["http://h"]
  health_check { path = "ping" }
}
provider "b" {
  upstreams = ["http://h"]
  health_check { path = "/a/../b" }
}
provider "c" {
  upstreams = ["http://h"]
  health_check { path = "/%2E%2e/b" }
}
provider "d" {
  upstreams = ["http://h"]
  health_check { path = "//evil.example/x" }
}
provider "e" {
  upstreams = ["http://h"]
  health_check { path = "/a b#c" }
}
`,
			want: []string{
				`x.hcl:3:25: Invalid path; "ping": want a path starting with "/" such as "/ping".`,
				`x.hcl:7:25: Invalid path; "/a/../b": the path must not contain "..".`,
				`x.hcl:11:25: Invalid path; "/%2E%2e/b": the path must not contain "..".`,
				`x.hcl:15:25: Invalid path; "//evil.example/x": the path must not start with "//".`,
				`x.hcl:19:25: Invalid path; "/a b#c": the path must not contain spaces or control characters.`,
			},
		},
		{
			name: "interval below the minimum",
			src:  prov("  health_check {\n    interval = \"500ms\"\n  }\n"),
			want: []string{`x.hcl:4:16: Invalid interval; "500ms" is shorter than the minimum, 1s.`},
		},
		{
			name: "timeout longer than interval",
			src:  prov("  health_check {\n    interval = \"5s\"\n    timeout = \"10s\"\n  }\n"),
			want: []string{`x.hcl:5:15: Invalid timeout; The probe timeout 10s is longer than the interval 5s (set at x.hcl:4); it must be at most the interval.`},
		},
		{
			name: "interval shorter than the default timeout",
			src:  prov("  health_check {\n    interval = \"1s\"\n  }\n"),
			want: []string{`x.hcl:4:16: Invalid interval; The interval 1s is shorter than the probe timeout 2s (the default); set timeout to at most the interval.`},
		},
		{
			name: "bad interval is not compared",
			src:  prov("  health_check {\n    interval = \"soon\"\n    timeout = \"1m\"\n  }\n"),
			want: []string{`x.hcl:4:16: Invalid interval; "soon" is not a duration > 0`},
		},
		{
			name: "expect_status elements",
			src:  prov("  health_check {\n    expect_status = [200, 99, 200, \"x\", 600, 2.5, null]\n  }\n"),
			want: []string{
				`x.hcl:4:27: Invalid expect_status; Element 1: want a whole number from 100 to 599, got 99.`,
				`x.hcl:4:31: Duplicate status; expect_status[2]: 200 is already listed.`,
				`x.hcl:4:36: Invalid expect_status; Element 3: want a whole number from 100 to 599, got "x".`,
				`x.hcl:4:41: Invalid expect_status; Element 4:`,
				`x.hcl:4:46: Invalid expect_status; Element 5:`,
				`x.hcl:4:51: Invalid expect_status; Element 6: want a whole number from 100 to 599, got null.`,
			},
		},
		{
			name: "empty expect_status",
			src:  prov("  health_check {\n    expect_status = []\n  }\n"),
			want: []string{`x.hcl:4:21: Empty expect_status;`},
		},
		{
			name: "expect_status not a list",
			src:  prov("  health_check {\n    expect_status = 200\n  }\n"),
			want: []string{`x.hcl:4:21: Invalid expect_status; Want a list of whole numbers, got number.`},
		},
		{
			name: "attempts out of range",
			src: `provider "a" {
  upstreams = ["http://h"]
  retry { attempts = 0 }
}
provider "b" {
  upstreams = ["http://h"]
  retry { attempts = 11 }
}
provider "c" {
  upstreams = ["http://h"]
  retry { attempts = 2.5 }
}
`,
			want: []string{
				`x.hcl:3:22: Invalid attempts; Want a whole number from 1 to 10, got 0.`,
				`x.hcl:7:22: Invalid attempts; Want a whole number from 1 to 10, got 11.`,
				`x.hcl:11:22: Invalid attempts; Want a whole number from 1 to 10, got 2.5.`,
			},
		},
		{
			name: "backoff above the default max_backoff",
			src:  prov("  retry {\n    backoff = \"2s\"\n  }\n"),
			want: []string{`x.hcl:4:15: Invalid backoff; backoff 2s is more than max_backoff 1s (the default); set max_backoff to at least 2s.`},
		},
		{
			name: "max_backoff below backoff",
			src:  prov("  retry {\n    backoff = \"50ms\"\n    max_backoff = \"10ms\"\n  }\n"),
			want: []string{`x.hcl:5:19: Invalid max_backoff; max_backoff 10ms is less than backoff 50ms (set at x.hcl:4); it must be at least the backoff.`},
		},
		{
			name: "max_backoff below the default backoff",
			src:  prov("  retry {\n    max_backoff = \"10ms\"\n  }\n"),
			want: []string{`x.hcl:4:19: Invalid max_backoff; max_backoff 10ms is less than backoff 25ms (the default);`},
		},
		{
			name: "negative backoff",
			src:  prov("  retry {\n    backoff = \"-1ms\"\n  }\n"),
			want: []string{`x.hcl:4:15: Invalid backoff; "-1ms" is not a duration >= 0`},
		},
		{
			name: "on values",
			src:  prov("  retry {\n    on = [\"5xx\", \"4xx\", \"5xx\", \"timeout\"]\n  }\n"),
			want: []string{
				`x.hcl:4:18: Invalid retry condition; on[1]: "4xx" is not a failure that can be retried; they are "connect-failure", "timeout", "5xx", "429". Did you mean "5xx"?`,
				`x.hcl:4:25: Duplicate retry condition; on[2]: "5xx" is already listed.`,
			},
		},
		{
			name: "empty on",
			src:  prov("  retry {\n    on = []\n  }\n"),
			want: []string{`x.hcl:4:10: Empty on; on lists no failure;`},
		},
		{
			name: "methods",
			src:  prov("  retry {\n    methods = [\"get\", \"POST\", \"POST\", \"NO WAY\", null]\n  }\n"),
			want: []string{
				`x.hcl:4:16: Invalid retry method; methods[0]: "get" must be upper case (HTTP methods are case-sensitive). Did you mean "GET"?`,
				`x.hcl:4:31: Duplicate retry method; methods[2]: "POST" is already listed.`,
				`x.hcl:4:39: Invalid retry method; methods[3]: "NO WAY" is not an HTTP method name such as "GET".`,
				`x.hcl:4:49: Invalid methods; Element 4: want a string, got null.`,
			},
		},
		{
			name: "methods not a list",
			src:  prov("  retry {\n    methods = \"GET\"\n  }\n"),
			want: []string{`x.hcl:4:15: Invalid methods; Want a list of strings, got string.`},
		},
		{
			name: "budget",
			src: `provider "a" {
  upstreams = ["http://h"]
  retry { budget = 0 }
}
provider "b" {
  upstreams = ["http://h"]
  retry { budget = 1.5 }
}
provider "c" {
  upstreams = ["http://h"]
  retry { budget = "lots" }
}
`,
			want: []string{
				`x.hcl:3:20: Invalid budget; Want a number greater than 0 and at most 1, such as 0.2 (20 %), got 0.`,
				`x.hcl:7:20: Invalid budget; Want a number greater than 0 and at most 1, such as 0.2 (20 %), got 1.5.`,
				`x.hcl:11:20: Invalid budget; Want a number greater than 0 and at most 1, such as 0.2 (20 %), got "lots".`,
			},
		},
		{
			name: "budget_window and min_retries",
			src:  prov("  retry {\n    budget_window = \"500ms\"\n    min_retries = -1\n  }\n"),
			want: []string{
				`x.hcl:4:21: Invalid budget_window; "500ms" is shorter than the minimum, 1s.`,
				`x.hcl:5:19: Invalid min_retries; Want a whole number from 0 to 2147483647, got -1.`,
			},
		},
		{
			name: "cache",
			src:  prov("  cache {\n    stale_if_error = \"0s\"\n    max_entries = 0\n    max_body = 1.5\n  }\n"),
			want: []string{
				`x.hcl:4:22: Invalid stale_if_error; "0s" is not a duration > 0`,
				`x.hcl:5:19: Invalid max_entries; Want a whole number from 1 to 2147483647, got 0.`,
				`x.hcl:6:16: Invalid max_body; Want a whole number from 1 to 2147483647, got 1.5.`,
			},
		},
		{
			name: "fail not last",
			src:  prov("  all_down {\n    order = [\"stale\", \"fail\", \"wait\"]\n  }\n"),
			want: []string{`x.hcl:4:23: Invalid all_down step; order[1]: "fail" ends the chain, so it must be the last step`},
		},
		{
			name: "unknown and duplicate steps",
			src:  prov("  all_down {\n    order = [\"stale\", \"stale\", \"panic\", \"lastresort\"]\n  }\n"),
			want: []string{
				`x.hcl:4:23: Duplicate all_down step; order[1]: "stale" is already listed.`,
				`x.hcl:4:32: Invalid all_down step; order[2]: "panic" is not a step; the steps are "stale", "last_resort", "wait", "fail".`,
				`x.hcl:4:41: Invalid all_down step; order[3]: "lastresort" is not a step; the steps are "stale", "last_resort", "wait", "fail". Did you mean "last_resort"?`,
			},
		},
		{
			name: "empty order",
			src:  prov("  all_down {\n    order = []\n  }\n"),
			want: []string{`x.hcl:4:13: Empty order; order lists no step;`},
		},
		{
			name: "last_resort URLs",
			src: `provider "a" {
  upstreams = ["http://h/v1"]
  all_down { last_resort = "ftp://backup/x" }
}
provider "b" {
  upstreams = ["http://h/v1"]
  all_down { last_resort = "https://u:pw@backup/x" }
}
provider "c" {
  upstreams = ["http://h/v1"]
  all_down { last_resort = "https://backup/x#frag" }
}
provider "d" {
  upstreams = ["http://h/v1", "http://i/v1"]
  all_down { last_resort = "HTTP://I/v1/" }
}
provider "e" {
  upstreams = ["http://h/v1"]
  all_down { last_resort = "/relative" }
}
`,
			want: []string{
				`x.hcl:3:28: Invalid last_resort URL; Provider "a": last_resort: want an absolute http:// or https:// URL.`,
				`x.hcl:7:28: Invalid last_resort URL; Provider "b": last_resort: credentials in the URL are not supported`,
				`x.hcl:11:28: Invalid last_resort URL; Provider "c": last_resort: the URL must not have a #fragment.`,
				`x.hcl:15:28: Invalid last_resort URL; Provider "d": last_resort is one of its upstreams; it must be another endpoint, used only when every upstream is out.`,
				`x.hcl:19:28: Invalid last_resort URL; Provider "e": last_resort: want an absolute`,
			},
		},
		{
			name: "wait",
			src: `provider "a" {
  upstreams = ["http://h"]
  all_down { wait = "11s" }
}
provider "b" {
  upstreams = ["http://h"]
  all_down { wait = "-1s" }
}
`,
			want: []string{
				`x.hcl:3:21: Invalid wait; "11s" is longer than the maximum, 10s.`,
				`x.hcl:7:21: Invalid wait; "-1s" is not a duration >= 0`,
			},
		},
		{
			name: "health fields",
			src:  "health {\n  cooldown_multiplier = 0.5\n  max_cooldown = \"banana\"\n  stable_period = \"0s\"\n}\nmodel \"m\" {\n  plugin = \"sentiment\"\n  health { cooldown_multiplier = \"101\" }\n}\n",
			want: []string{
				`x.hcl:2:25: Invalid cooldown_multiplier; Want a number from 1 (no growth) to 100, got 0.5.`,
				`x.hcl:3:18: Invalid max_cooldown; "banana" is not a duration > 0`,
				`x.hcl:4:19: Invalid stable_period; "0s" is not a duration > 0`,
				`x.hcl:8:34: Invalid cooldown_multiplier; Want a number from 1 (no growth) to 100, got "101".`,
			},
		},
		{
			name: "max_cooldown below cooldown",
			src:  "health {\n  cooldown     = \"10m\"\n  max_cooldown = \"5m\"\n}\nmodel \"m\" {\n  plugin = \"sentiment\"\n}\n",
			want: []string{`x.hcl:3:18: Invalid max_cooldown; max_cooldown 5m0s is less than the cooldown 10m0s (set at x.hcl:2); it must be at least the cooldown.`},
		},
		{
			name: "provider cooldown above the global max_cooldown",
			src:  "health {\n  max_cooldown = \"10m\"\n}\nprovider \"p\" {\n  upstreams = [\"http://h\"]\n  health {\n    cooldown = \"20m\"\n  }\n}\n",
			want: []string{`x.hcl:7:16: Invalid cooldown; The cooldown 20m0s is more than max_cooldown 10m0s (set at x.hcl:2); set max_cooldown to at least 20m0s.`},
		},
		{
			name: "model max_cooldown below the default cooldown",
			src:  "model \"m\" {\n  plugin = \"sentiment\"\n  health { max_cooldown = \"1m\" }\n}\n",
			want: []string{`x.hcl:3:27: Invalid max_cooldown; max_cooldown 1m0s is less than the cooldown 5m0s (the default);`},
		},
		{
			name: "a bad cooldown is not compared",
			src:  "health {\n  cooldown     = \"1h\"\n  max_cooldown = [1]\n}\n",
			want: []string{`x.hcl:3:18: Unsuitable value type;`},
		},
		{
			name: "duplicate blocks",
			src:  prov("  retry {}\n  retry {}\n  cache {}\n  cache {}\n"),
			want: []string{
				`x.hcl:4:3: Duplicate retry block;`,
				`x.hcl:6:3: Duplicate cache block;`,
			},
		},
		{
			name: "unknown attributes",
			src:  prov("  retry {\n    retries = 3\n  }\n  all_down {\n    fallback = \"x\"\n  }\n  health_check {\n    url = \"/\"\n  }\n"),
			want: []string{
				`x.hcl:4:5: Unsupported argument;`,
				`x.hcl:7:5: Unsupported argument;`,
				`x.hcl:10:5: Unsupported argument;`,
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

func TestLastResortNotEchoed(t *testing.T) {
	out := mustFail(t, "x.hcl", `
provider "a" {
  upstreams = ["http://h/?key=SECRET1"]
  all_down { last_resort = "http://h/?key=SECRET1" }
}
provider "b" {
  upstreams = ["http://h"]
  all_down { last_resort = "https://u:SECRET2@b/" }
}
provider "c" {
  upstreams = ["http://h"]
  all_down { last_resort = "gopher://b/SECRET3" }
}
`, nil)
	if strings.Contains(out, "SECRET") {
		t.Errorf("got diagnostics that show a secret:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("got %d diagnostics:\n%s\nwant 3", n, out)
	}
}

func TestMaxCooldownRisesWithoutASetting(t *testing.T) {
	cfg, diags := parse(t, "x.hcl", "health {\n  cooldown = \"1h\"\n}\nprovider \"p\" {\n  upstreams = [\"http://h\"]\n  health { cooldown = \"2h\" }\n}\n", nil)
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("got %s; want a long cooldown accepted", FormatDiagnostics(diags))
	}
	if g := cfg.Health.MaxCooldown; g != time.Hour {
		t.Errorf("got global max_cooldown %v; want it raised to the cooldown, 1h", g)
	}
	if g := cfg.Providers[0].Health.MaxCooldown; g != 2*time.Hour {
		t.Errorf("got provider max_cooldown %v; want 2h", g)
	}
}

func TestMaxCooldownEnv(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  string // HEALTH_COOLDOWN_SECONDS
		want string // FormatDiagnostics; "" for none
	}{
		{
			name: "env above the file's max_cooldown",
			src:  "health {\n  max_cooldown = \"10m\"\n}\n",
			env:  "3600",
			want: "x.hcl:2:18: Invalid max_cooldown; max_cooldown 10m0s is less than the cooldown 1h0m0s (from HEALTH_COOLDOWN_SECONDS); it must be at least the cooldown.\n",
		},
		{
			// no max_cooldown set: the default rises to the cooldown
			name: "env above the default max_cooldown",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n}\n",
			env:  "3600",
		},
		{
			name: "env above a provider's max_cooldown",
			src:  "health {\n  max_cooldown = \"2h\"\n}\nprovider \"p\" {\n  upstreams = [\"http://h\"]\n  health { max_cooldown = \"10m\" }\n}\n",
			env:  "3600",
			want: "x.hcl:6:27: Invalid max_cooldown; max_cooldown 10m0s is less than the cooldown 1h0m0s (from HEALTH_COOLDOWN_SECONDS); it must be at least the cooldown.\n",
		},
		{
			name: "env beats the file's cooldown",
			src:  "health {\n  cooldown     = \"1h\"\n  max_cooldown = \"1h\"\n}\n",
			env:  "7200",
			want: "x.hcl:3:18: Invalid max_cooldown; max_cooldown 1h0m0s is less than the cooldown 2h0m0s (from HEALTH_COOLDOWN_SECONDS); it must be at least the cooldown.\n",
		},
		{
			name: "equal is fine",
			src:  "health {\n  max_cooldown = \"10m\"\n}\n",
			env:  "600",
		},
		{
			name: "an entry's own cooldown is fine",
			src:  "health {\n  max_cooldown = \"2h\"\n}\nprovider \"p\" {\n  upstreams = [\"http://h\"]\n  health {\n    max_cooldown = \"10m\"\n    cooldown = \"1m\"\n  }\n}\n",
			env:  "3600",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := parse(t, "x.hcl", tt.src, map[string]string{"HEALTH_COOLDOWN_SECONDS": tt.env})
			got := FormatDiagnostics(diags)
			if tt.want == "" {
				if got != "" || cfg == nil {
					t.Fatalf("got %q; want no diagnostics", got)
				}
				return
			}
			if cfg != nil {
				t.Errorf("got a Config; want nil")
			}
			if strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, tt.want) {
				t.Errorf("got\n%s\nwant exactly\n%s", got, tt.want)
			}
		})
	}
}

func TestTooManyUpstreams(t *testing.T) {
	var b strings.Builder
	b.WriteString("provider \"p\" {\n  upstreams = [")
	for i := range MaxUpstreams + 1 {
		fmt.Fprintf(&b, "\"http://127.0.0.1:%d\", ", 10000+i)
	}
	b.WriteString("]\n}\n")
	_, diags := parse(t, "x.hcl", b.String(), nil)
	if got := FormatDiagnostics(diags); !strings.Contains(got, "x.hcl:2:15: Too many upstreams") {
		t.Fatalf("got %q; want a Too many upstreams error at the list", got)
	}
}
