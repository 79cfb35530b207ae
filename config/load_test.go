package config

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// envMap is a Getenv backed by a map, so tests never see the real
// environment.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// parse parses src as filename with the given environment and the built-in
// plugin "sentiment".
func parse(t *testing.T, filename, src string, env map[string]string) (*Config, hcl.Diagnostics) {
	t.Helper()
	return Parse(filename, []byte(src), LoadOptions{
		Getenv:         envMap(env),
		BuiltinPlugins: []string{"sentiment"},
	})
}

// mustParse parses src and fails the test on any diagnostic.
func mustParse(t *testing.T, filename, src string, env map[string]string) *Config {
	t.Helper()
	cfg, diags := parse(t, filename, src, env)
	if len(diags) > 0 {
		t.Fatalf("got diagnostics:\n%s; want none", FormatDiagnostics(diags))
	}
	if cfg == nil {
		t.Fatal("got nil Config without diagnostics; want a Config")
	}
	return cfg
}

// mustFail parses src and returns its formatted diagnostics, failing the
// test unless there are errors and the Config is nil.
func mustFail(t *testing.T, filename, src string, env map[string]string) string {
	t.Helper()
	cfg, diags := parse(t, filename, src, env)
	if !diags.HasErrors() {
		t.Fatalf("got no error for:\n%s\nwant at least one", src)
	}
	if cfg != nil {
		t.Errorf("got a Config alongside errors; want nil")
	}
	return FormatDiagnostics(diags)
}

// wantDiagnostics checks that out, formatted diagnostics, has one line
// per want, each starting with it.
func wantDiagnostics(t *testing.T, out string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d diagnostics:\n%s\nwant %d:\n%s", len(lines), out, len(want), strings.Join(want, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("got line %d\n%s\nwant prefix\n%s", i, lines[i], w)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

const fullFile = `
listen = "0.0.0.0:9000"

health {
  error_threshold        = 4
  cooldown               = "90s"
  success_recovery_count = 3
  auto_reinit            = false
  reinit_cooldown        = "0s"
  max_concurrent_reinit  = 2
}

admin {
  token = env("ADMIN_TOKEN")
}

state {
  path = "state/health.json"
}

provider "coingecko" {
  name      = "CoinGecko API"
  upstreams = ["https://api.coingecko.com/api/v3", "http://mirror.example:8080/v3?key=1"]
  timeout   = "1500ms"
  headers   = { "x-cg-demo-api-key" = env("CG_KEY"), Accept = "application/json" }
  health {
    error_threshold = 5
    cooldown        = "1m"
  }
}

provider "plain" {
  upstreams = ["http://127.0.0.1:1"]
}

model "crypto_sent_0" {
  name     = "Crypto sentiment"
  plugin   = "sentiment"
  timeout  = "2s"
  fallback = "crypto_sent_1"
  health {
    auto_reinit           = true
    max_concurrent_reinit = 1
  }
}

model "crypto_sent_1" {
  command = ["./bin/my-model", "-flag", ""]
}
`

func TestParseFull(t *testing.T) {
	cfg := mustParse(t, "/etc/healproxy/proxy.hcl", fullFile, map[string]string{
		"ADMIN_TOKEN": "s3cret",
		"CG_KEY":      "cg-123",
	})
	global := Health{
		ErrorThreshold:      4,
		Cooldown:            90 * time.Second,
		RecoveryCount:       3,
		AutoReinit:          false,
		ReinitCooldown:      0,
		MaxConcurrentReinit: 2,
		CooldownMultiplier:  2,
		MaxCooldown:         30 * time.Minute,
		StablePeriod:        10 * time.Minute,
	}
	cgHealth := global
	cgHealth.ErrorThreshold = 5
	cgHealth.Cooldown = time.Minute
	m0Health := global
	m0Health.AutoReinit = true
	m0Health.MaxConcurrentReinit = 1

	want := &Config{
		Path:       "/etc/healproxy/proxy.hcl",
		Dir:        "/etc/healproxy",
		Listen:     "0.0.0.0:9000",
		Health:     global,
		AdminToken: "s3cret",
		StatePath:  "/etc/healproxy/state/health.json",
		Providers: []Provider{
			{
				ID:   "coingecko",
				Name: "CoinGecko API",
				Upstreams: []*url.URL{
					mustURL(t, "https://api.coingecko.com/api/v3"),
					mustURL(t, "http://mirror.example:8080/v3?key=1"),
				},
				Timeout: 1500 * time.Millisecond,
				Headers: map[string]string{"x-cg-demo-api-key": "cg-123", "Accept": "application/json"},
				Health:  cgHealth,
				Mode:    ModeEnforce,
				// Defaults of the resilience settings; see resilience_test.go.
				MaxRateLimitPause: 10 * time.Minute,
				MaxRequestBody:    DefaultMaxRequestBody,
				Retry:             defaultRetryWant(2),
				AllDown:           defaultAllDownWant(),
				IdleTimeout:       30 * time.Second,
			},
			{
				ID:        "plain",
				Name:      "plain",
				Upstreams: []*url.URL{mustURL(t, "http://127.0.0.1:1")},
				Timeout:   DefaultProviderTimeout,
				Health:    global,
				Mode:      ModeEnforce,

				MaxRateLimitPause: 10 * time.Minute,
				MaxRequestBody:    DefaultMaxRequestBody,
				Retry:             defaultRetryWant(1),
				AllDown:           defaultAllDownWant(),
				IdleTimeout:       30 * time.Second,
			},
		},
		Models: []Model{
			{
				Key:      "crypto_sent_0",
				Name:     "Crypto sentiment",
				Plugin:   "sentiment",
				Timeout:  2 * time.Second,
				Fallback: "crypto_sent_1",
				Health:   m0Health,
			},
			{
				Key:     "crypto_sent_1",
				Name:    "crypto_sent_1",
				Command: []string{"/etc/healproxy/bin/my-model", "-flag", ""},
				Timeout: DefaultModelTimeout,
				Health:  global,
			},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%#v\nwant\n%#v", cfg, want)
	}
	if got := cfg.Provider("plain"); got == nil || got.ID != "plain" {
		t.Errorf("got Provider(%q) = %v; want the plain provider", "plain", got)
	}
	if got := cfg.Model("nope"); got != nil {
		t.Errorf("got Model(%q) = %v; want nil", "nope", got)
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, "/srv/x.hcl", `
provider "p" {
  upstreams = ["https://example.com"]
}
model "m" {
  plugin = "sentiment"
}
`, nil)
	def := Health{
		ErrorThreshold:      DefaultErrorThreshold,
		Cooldown:            DefaultCooldown,
		RecoveryCount:       DefaultRecoveryCount,
		AutoReinit:          DefaultAutoReinit,
		ReinitCooldown:      DefaultReinitCooldown,
		MaxConcurrentReinit: DefaultMaxConcurrentReinit,
		CooldownMultiplier:  DefaultCooldownMultiplier,
		MaxCooldown:         DefaultMaxCooldown,
		StablePeriod:        DefaultStablePeriod,
	}
	want := &Config{
		Path:   "/srv/x.hcl",
		Dir:    "/srv",
		Listen: DefaultListen,
		Health: def,
		Providers: []Provider{{
			ID: "p", Name: "p",
			Upstreams: []*url.URL{mustURL(t, "https://example.com")},
			Timeout:   DefaultProviderTimeout,
			Health:    def,
			Mode:      ModeEnforce,

			MaxRateLimitPause: 10 * time.Minute,
			MaxRequestBody:    DefaultMaxRequestBody,
			Retry:             defaultRetryWant(1),
			AllDown:           defaultAllDownWant(),
			IdleTimeout:       30 * time.Second,
		}},
		Models: []Model{{
			Key: "m", Name: "m", Plugin: "sentiment",
			Timeout: DefaultModelTimeout,
			Health:  def,
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%#v\nwant\n%#v", cfg, want)
	}

	// An empty file is valid: nothing to proxy, every default.
	empty := mustParse(t, "/srv/empty.hcl", "", nil)
	if empty.Listen != DefaultListen || empty.Health != def || len(empty.Providers)+len(empty.Models) != 0 {
		t.Errorf("got %#v; want defaults and no entries", empty)
	}
}

func TestEnvPrecedence(t *testing.T) {
	const file = `
health {
  error_threshold = 7
  cooldown        = "2m"
}
provider "p" {
  upstreams = ["https://example.com"]
  health {
    error_threshold = 9
    reinit_cooldown = "1s"
  }
}
model "m" {
  plugin = "sentiment"
}
`
	tests := []struct {
		name                    string
		env                     map[string]string
		wantGlobal, wantP, want Health // want is model m, which has no health block
	}{
		{
			name: "file over default",
			wantGlobal: Health{ErrorThreshold: 7, Cooldown: 2 * time.Minute, RecoveryCount: 2,
				AutoReinit: true, ReinitCooldown: 10 * time.Minute, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
			wantP: Health{ErrorThreshold: 9, Cooldown: 2 * time.Minute, RecoveryCount: 2,
				AutoReinit: true, ReinitCooldown: time.Second, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
		},
		{
			name: "env over file and default; per-entry file beats env",
			env: map[string]string{
				"HEALTH_ERROR_THRESHOLD":  "11",
				"HEALTH_COOLDOWN_SECONDS": "30",
				"HEALTH_RECOVERY_COUNT":   "4",
				"HEALTH_AUTO_REINIT":      "FALSE",
				"HEALTH_REINIT_COOLDOWN":  "0",
			},
			wantGlobal: Health{ErrorThreshold: 11, Cooldown: 30 * time.Second, RecoveryCount: 4,
				AutoReinit: false, ReinitCooldown: 0, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
			wantP: Health{ErrorThreshold: 9, Cooldown: 30 * time.Second, RecoveryCount: 4,
				AutoReinit: false, ReinitCooldown: time.Second, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
		},
		{
			name: "auto_reinit 1 and padded values; empty counts as unset",
			env: map[string]string{
				"HEALTH_AUTO_REINIT":     " 1 ",
				"HEALTH_ERROR_THRESHOLD": "",
				"HEALTH_RECOVERY_COUNT":  " 6",
			},
			wantGlobal: Health{ErrorThreshold: 7, Cooldown: 2 * time.Minute, RecoveryCount: 6,
				AutoReinit: true, ReinitCooldown: 10 * time.Minute, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
			wantP: Health{ErrorThreshold: 9, Cooldown: 2 * time.Minute, RecoveryCount: 6,
				AutoReinit: true, ReinitCooldown: time.Second, MaxConcurrentReinit: 5,
				CooldownMultiplier: 2, MaxCooldown: 30 * time.Minute, StablePeriod: 10 * time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "x.hcl", file, tt.env)
			if cfg.Health != tt.wantGlobal {
				t.Errorf("got global %+v; want %+v", cfg.Health, tt.wantGlobal)
			}
			if got := cfg.Providers[0].Health; got != tt.wantP {
				t.Errorf("got provider health %+v; want %+v", got, tt.wantP)
			}
			if got := cfg.Models[0].Health; got != tt.wantGlobal {
				t.Errorf("got model health %+v; want the global %+v", got, tt.wantGlobal)
			}
		})
	}

	// Without a health block in the file, env still beats the default.
	cfg := mustParse(t, "x.hcl", "", map[string]string{"HEALTH_COOLDOWN_SECONDS": "3"})
	if cfg.Health.Cooldown != 3*time.Second {
		t.Errorf("got cooldown %v; want 3s", cfg.Health.Cooldown)
	}
}

func TestEnvMalformed(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"HEALTH_ERROR_THRESHOLD", "x", `x.hcl: HEALTH_ERROR_THRESHOLD="x": want a whole number >= 1`},
		{"HEALTH_ERROR_THRESHOLD", "0", `x.hcl: HEALTH_ERROR_THRESHOLD="0": want a whole number >= 1`},
		{"HEALTH_ERROR_THRESHOLD", "2.5", `x.hcl: HEALTH_ERROR_THRESHOLD="2.5": want a whole number >= 1`},
		{"HEALTH_COOLDOWN_SECONDS", "5m", `x.hcl: HEALTH_COOLDOWN_SECONDS="5m": want a whole number of seconds >= 1`},
		{"HEALTH_COOLDOWN_SECONDS", "0", `x.hcl: HEALTH_COOLDOWN_SECONDS="0": want a whole number of seconds >= 1`},
		{"HEALTH_COOLDOWN_SECONDS", "99999999999999999", `x.hcl: HEALTH_COOLDOWN_SECONDS="99999999999999999": want a whole number of seconds >= 1`},
		{"HEALTH_RECOVERY_COUNT", "-1", `x.hcl: HEALTH_RECOVERY_COUNT="-1": want a whole number >= 1`},
		{"HEALTH_AUTO_REINIT", "yes", `x.hcl: HEALTH_AUTO_REINIT="yes": want true, false, 1 or 0`},
		{"HEALTH_REINIT_COOLDOWN", "-5", `x.hcl: HEALTH_REINIT_COOLDOWN="-5": want a whole number of seconds >= 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			cfg, diags := parse(t, "x.hcl", "", map[string]string{tt.name: tt.value})
			if cfg != nil {
				t.Errorf("got a Config; want nil")
			}
			if len(diags) != 1 || diags[0].Subject != nil {
				t.Fatalf("got %d diagnostics:\n%s; want 1 without a Subject", len(diags), FormatDiagnostics(diags))
			}
			if got := FormatDiagnostics(diags); got != tt.want+"\n" {
				t.Errorf("got %q; want %q", got, tt.want+"\n")
			}
		})
	}

	// Several bad variables are all reported.
	out := mustFail(t, "x.hcl", "", map[string]string{"HEALTH_ERROR_THRESHOLD": "a", "HEALTH_AUTO_REINIT": "b"})
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("got %d lines:\n%s; want 2", n, out)
	}
}

func TestEnvFunction(t *testing.T) {
	const src = `
admin { token = env("TOKEN") }
provider "p" {
  upstreams = ["https://example.com"]
  headers   = { "X-Key" = env("KEY"), "X-Both" = "${env("A")}-${env("B")}" }
}
`
	cfg := mustParse(t, "x.hcl", src, map[string]string{"TOKEN": "t0k", "KEY": "k", "A": "a"})
	if cfg.AdminToken != "t0k" {
		t.Errorf("got token %q; want %q", cfg.AdminToken, "t0k")
	}
	wantHeaders := map[string]string{"X-Key": "k", "X-Both": "a-"}
	if got := cfg.Providers[0].Headers; !reflect.DeepEqual(got, wantHeaders) {
		t.Errorf("got headers %v; want %v", got, wantHeaders)
	}

	// Unset variables are empty strings, not errors; a header left empty
	// is not sent.
	cfg = mustParse(t, "x.hcl", src, nil)
	if cfg.AdminToken != "" {
		t.Errorf("got token %q with TOKEN unset; want empty", cfg.AdminToken)
	}
	wantHeaders = map[string]string{"X-Both": "-"}
	if got := cfg.Providers[0].Headers; !reflect.DeepEqual(got, wantHeaders) {
		t.Errorf("got headers %v with KEY unset; want %v", got, wantHeaders)
	}

	// nil Getenv reads the process environment.
	t.Setenv("HEALPROXY_TEST_TOKEN", "from-os")
	cfg, diags := Parse("x.hcl", []byte(`admin { token = env("HEALPROXY_TEST_TOKEN") }`), LoadOptions{})
	if diags.HasErrors() || cfg.AdminToken != "from-os" {
		t.Errorf("got %v, %s; want token %q", cfg, FormatDiagnostics(diags), "from-os")
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // prefixes of lines of FormatDiagnostics, in order
	}{
		{
			name: "unknown attribute",
			src:  "health {\n  error_threshold = 3\n  colldown = \"5m\"\n}\n",
			want: []string{`x.hcl:3:3: Unsupported argument; An argument named "colldown" is not expected here. Did you mean "cooldown"?`},
		},
		{
			name: "unknown top-level attribute",
			src:  "listen = \":1\"\nport = 3\n",
			want: []string{`x.hcl:2:1: Unsupported argument;`},
		},
		{
			name: "unknown block",
			src:  "backend \"x\" {}\n",
			want: []string{`x.hcl:1:1: Unsupported block type;`},
		},
		{
			name: "unknown nested block",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n  circuit_breaker {}\n}\n",
			want: []string{`x.hcl:3:3: Unsupported block type;`},
		},
		{
			name: "unknown provider attribute",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n  weight = 2\n}\n",
			want: []string{`x.hcl:3:3: Unsupported argument;`},
		},
		{
			name: "two health blocks",
			src:  "health {}\nhealth {}\n",
			want: []string{`x.hcl:2:1: Duplicate health block;`},
		},
		{
			name: "bad duration",
			src:  "health {\n  cooldown = \"banana\"\n}\n",
			want: []string{`x.hcl:2:14: Invalid cooldown; "banana" is not a duration > 0`},
		},
		{
			name: "negative duration where > 0 is needed",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n  timeout = \"-1s\"\n}\n",
			want: []string{`x.hcl:3:13: Invalid timeout; "-1s" is not a duration > 0`},
		},
		{
			name: "zero cooldown",
			src:  "health { cooldown = \"0s\" }\n",
			want: []string{`x.hcl:1:21: Invalid cooldown;`},
		},
		{
			name: "negative reinit_cooldown",
			src:  "health { reinit_cooldown = \"-1m\" }\n",
			want: []string{`x.hcl:1:28: Invalid reinit_cooldown; "-1m" is not a duration >= 0`},
		},
		{
			name: "number as duration",
			src:  "model \"m\" {\n  plugin = \"sentiment\"\n  timeout = 30\n}\n",
			want: []string{`x.hcl:3:13: Invalid timeout; "30" is not a duration`},
		},
		{
			name: "fractional int",
			src:  "health {\n  error_threshold = 2.5\n}\n",
			want: []string{`x.hcl:2:21: Invalid error_threshold; Want a whole number from 1 to 2147483647, got 2.5.`},
		},
		{
			name: "zero and huge ints",
			src:  "health {\n  success_recovery_count = 0\n  max_concurrent_reinit = 1e12\n}\n",
			want: []string{
				`x.hcl:2:28: Invalid success_recovery_count;`,
				`x.hcl:3:27: Invalid max_concurrent_reinit;`,
			},
		},
		{
			name: "string int",
			src:  "health { error_threshold = \"many\" }\n",
			want: []string{`x.hcl:1:28: Invalid error_threshold; Want a whole number from 1 to 2147483647, got "many".`},
		},
		{
			name: "bool as string",
			src:  "health { auto_reinit = \"sure\" }\n",
			want: []string{`x.hcl:1:25: Unsuitable value type;`},
		},
		{
			name: "missing upstreams",
			src:  "provider \"p\" {\n  name = \"P\"\n}\n",
			want: []string{`x.hcl:1:1: Missing upstreams;`},
		},
		{
			name: "empty upstreams",
			src:  "provider \"p\" {\n  upstreams = []\n}\n",
			want: []string{`x.hcl:2:15: Empty upstreams;`},
		},
		{
			name: "upstreams not a list",
			src:  "provider \"p\" {\n  upstreams = \"http://h\"\n}\n",
			want: []string{`x.hcl:2:15: Invalid upstreams; Want a list of strings, got string.`},
		},
		{
			name: "bad upstream URLs",
			src: `provider "p" {
  upstreams = [
    "example.com/api",
    "ftp://example.com",
    "https:///nohost",
    "https://example.com/a#frag",
    "https://user:pw@example.com/",
    "http://example.com:99999",
    "http://exa mple.com",
    null,
  ]
}
`,
			want: []string{
				`x.hcl:3:5: Invalid upstream URL; upstreams[0]: want an absolute http:// or https:// URL.`,
				`x.hcl:4:5: Invalid upstream URL; upstreams[1]:`,
				`x.hcl:5:5: Invalid upstream URL; upstreams[2]: the URL has no host.`,
				`x.hcl:6:5: Invalid upstream URL; upstreams[3]: the URL must not have a #fragment.`,
				`x.hcl:7:5: Invalid upstream URL; upstreams[4]: credentials`,
				`x.hcl:8:5: Invalid upstream URL; upstreams[5]:`,
				`x.hcl:9:5: Invalid upstream URL; upstreams[6]: not a URL`, // the parse error would quote part of the URL, which may be a secret
				`x.hcl:10:5: Invalid upstreams; Element 7: want a string, got null.`,
			},
		},
		{
			name: "duplicate upstream",
			src:  "provider \"p\" {\n  upstreams = [\"https://a.example/v1\", \"https://A.example/v1/\"]\n}\n",
			want: []string{`x.hcl:2:40: Duplicate upstream URL; upstreams[1] repeats an earlier upstream of provider "p".`},
		},
		{
			name: "bad headers",
			src: `provider "p" {
  upstreams = ["http://h"]
  headers = {
    "Bad Name" = "v"
    "X-Ok"     = "line\nbreak"
    "x-ok"     = "again"
    "X-Num"    = 1
    "X-Null"   = null
  }
}
`,
			want: []string{
				`x.hcl:4:5: Invalid header name; "Bad Name" is not a valid HTTP header name.`,
				`x.hcl:5:5: Invalid header value; The value of header "X-Ok" contains a control character`,
				`x.hcl:6:5: Duplicate header;`,
				`x.hcl:8:18: Invalid headers; The value of "X-Null" must be a string, got null.`,
			},
		},
		{
			name: "headers not a map",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n  headers = [\"a\"]\n}\n",
			want: []string{`x.hcl:3:13: Invalid headers; Want a map of strings, got tuple.`},
		},
		{
			name: "duplicate provider",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n}\nprovider \"p\" {\n  upstreams = [\"http://i\"]\n}\n",
			want: []string{`x.hcl:4:10: Duplicate provider ID "p"; previous definition at x.hcl:1`},
		},
		{
			name: "duplicate model",
			src:  "model \"m\" { plugin = \"sentiment\" }\n\nmodel \"m\" { plugin = \"sentiment\" }\n",
			want: []string{`x.hcl:3:7: Duplicate model key "m"; previous definition at x.hcl:1`},
		},
		{
			name: "bad IDs",
			src: `provider "a/b" { upstreams = ["http://h"] }
provider ".." { upstreams = ["http://h"] }
model "" { plugin = "sentiment" }
model "-x" { plugin = "sentiment" }
model "a b" { plugin = "sentiment" }
`,
			want: []string{
				`x.hcl:1:10: Invalid provider ID; "a/b" is not a valid provider ID`,
				`x.hcl:2:10: Invalid provider ID; ".."`,
				`x.hcl:3:7: Invalid model key; ""`,
				`x.hcl:4:7: Invalid model key; "-x"`,
				`x.hcl:5:7: Invalid model key; "a b"`,
			},
		},
		{
			name: "missing label",
			src:  "provider { upstreams = [\"http://h\"] }\n",
			want: []string{`x.hcl:1:10: Missing id for provider;`},
		},
		{
			name: "unknown fallback",
			src:  "model \"m1\" {\n  plugin   = \"sentiment\"\n  fallback = \"m2\"\n}\nmodel \"m3\" { plugin = \"sentiment\" }\n",
			want: []string{`x.hcl:3:14: Unknown fallback model; No model "m2" is defined in this file. Did you mean "m1"?`},
		},
		{
			name: "self fallback",
			src:  "model \"m\" {\n  plugin   = \"sentiment\"\n  fallback = \"m\"\n}\n",
			want: []string{`x.hcl:3:14: Invalid fallback; Model "m" cannot fall back to itself.`},
		},
		{
			name: "neither plugin nor command",
			src:  "model \"m\" {\n  name = \"M\"\n}\n",
			want: []string{`x.hcl:1:1: Missing plugin or command;`},
		},
		{
			name: "both plugin and command",
			src:  "model \"m\" {\n  plugin  = \"sentiment\"\n  command = [\"./x\"]\n}\n",
			want: []string{`x.hcl:3:13: Conflicting plugin and command;`},
		},
		{
			name: "unknown builtin plugin",
			src:  "model \"m\" {\n  plugin = \"sentimant\"\n}\n",
			want: []string{`x.hcl:2:12: Unknown plugin; No built-in plugin is named "sentimant" (built-in: sentiment); an external plugin binary is set with command = [...]. Did you mean "sentiment"?`},
		},
		{
			name: "empty command",
			src:  "model \"m\" {\n  command = []\n}\n",
			want: []string{`x.hcl:2:13: Empty command;`},
		},
		{
			name: "empty program",
			src:  "model \"m\" {\n  command = [\"\", \"-x\"]\n}\n",
			want: []string{`x.hcl:2:14: Invalid command;`},
		},
		{
			name: "command not a list",
			src:  "model \"m\" {\n  command = \"./x\"\n}\n",
			want: []string{`x.hcl:2:13: Invalid command; Want a list of strings, got string.`},
		},
		{
			name: "bad listen",
			src:  "listen = \"localhost\"\n",
			want: []string{`x.hcl:1:10: Invalid listen address;`},
		},
		{
			name: "state without path",
			src:  "state {}\n",
			want: []string{`x.hcl:1:1: Empty state block;`},
		},
		{
			name: "env with wrong arity",
			src:  "admin { token = env() }\n",
			want: []string{`x.hcl:1:21: Not enough function arguments;`},
		},
		{
			name: "env with two arguments",
			src:  "admin { token = env(\"A\", \"B\") }\n",
			want: []string{`x.hcl:1:27: Too many function arguments;`},
		},
		{
			name: "env with a non-string",
			src:  "admin { token = env(42) }\n",
			want: []string{`x.hcl:1:21: Invalid function argument; Invalid value for "name" parameter: want a string such as "API_KEY", got number.`},
		},
		{
			name: "env with an empty name",
			src:  "admin { token = env(\"\") }\n",
			want: []string{`x.hcl:1:23: Invalid function argument;`},
		},
		{
			name: "env error in a duration is reported once",
			src:  "model \"m\" {\n  plugin  = \"sentiment\"\n  timeout = env()\n}\n",
			want: []string{`x.hcl:3:17: Not enough function arguments;`},
		},
		{
			name: "unknown function",
			src:  "admin { token = file(\"x\") }\n",
			want: []string{`x.hcl:1:17: Call to unknown function;`},
		},
		{
			name: "variables",
			src:  "listen = var.listen\n",
			want: []string{`x.hcl:1:10: Variables not allowed;`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, nil)
			wantDiagnostics(t, out, tt.want)
		})
	}
}

func TestSecretsNotEchoed(t *testing.T) {
	out := mustFail(t, "x.hcl", `provider "p" {
  upstreams = ["https://h/?key=SECRET1#x", "https://u:SECRET2@h/", "https://h/?key=SECRET3", "https://h/?key=SECRET3"]
  headers   = { "X-Key" = "SECRET4\n" }
}
`, nil)
	if strings.Contains(out, "SECRET") {
		t.Errorf("got diagnostics that show a secret:\n%s", out)
	}
}

func TestManyProblems(t *testing.T) {
	const src = `listen = "nope"
health {
  bogus           = 1
  error_threshold = 0
  cooldown        = "soon"
}
provider "p" {
  upstreams = []
  timeout   = "fast"
}
provider "p" {
  upstreams = ["gopher://h"]
}
model "m" {
  plugin   = "sentiment"
  fallback = "ghost"
}
`
	out := mustFail(t, "x.hcl", src, map[string]string{"HEALTH_RECOVERY_COUNT": "lots"})
	want := []string{
		`x.hcl: HEALTH_RECOVERY_COUNT="lots"`,
		"x.hcl:1:10: Invalid listen address",
		"x.hcl:3:3: Unsupported argument",
		"x.hcl:4:21: Invalid error_threshold",
		"x.hcl:5:21: Invalid cooldown",
		"x.hcl:8:15: Empty upstreams",
		"x.hcl:9:15: Invalid timeout",
		"x.hcl:11:10: Duplicate provider ID",
		"x.hcl:12:16: Invalid upstream URL",
		"x.hcl:16:14: Unknown fallback model",
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d diagnostics:\n%s\nwant %d", len(lines), out, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("got line %d %q; want prefix %q", i, lines[i], w)
		}
	}
}

func TestSyntaxError(t *testing.T) {
	out := mustFail(t, "x.hcl", "listen = \"a:1\"\nprovider \"p\" {\n  upstreams = [\"http://h\"\n}\n", nil)
	if !strings.HasPrefix(out, "x.hcl:4:1: ") {
		t.Errorf("got\n%s\nwant a syntax error at x.hcl:4:1", out)
	}
	out = mustFail(t, "x.hcl", "health {\n  cooldown = \"5m\n}\n", nil)
	if !strings.HasPrefix(out, "x.hcl:2:") {
		t.Errorf("got\n%s\nwant a syntax error on line 2", out)
	}
}

func TestCommandResolution(t *testing.T) {
	tests := []struct {
		name, program, want string
	}{
		{"dot slash", "./bin/model", "/opt/hp/bin/model"},
		{"dot dot", "../model", "/opt/model"},
		{"subfolder", "bin/model", "/opt/hp/bin/model"},
		{"hidden file", ".model", "/opt/hp/.model"},
		{"absolute", "/usr/local/bin/model", "/usr/local/bin/model"},
		{"bare name uses PATH", "python3", "python3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "/opt/hp/proxy.hcl",
				`model "m" { command = ["`+tt.program+`", "./arg"] }`, nil)
			want := []string{tt.want, "./arg"}
			if got := cfg.Models[0].Command; !reflect.DeepEqual(got, want) {
				t.Errorf("got %q; want %q", got, want)
			}
		})
	}
}

func TestPluginNames(t *testing.T) {
	// With no list of built-ins, any identifier-like name is accepted.
	cfg, diags := Parse("x.hcl", []byte(`model "m" { plugin = "my_plugin-2" }`), LoadOptions{Getenv: envMap(nil)})
	if diags.HasErrors() || cfg.Models[0].Plugin != "my_plugin-2" {
		t.Errorf("got %s; want plugin my_plugin-2 accepted", FormatDiagnostics(diags))
	}
	_, diags = Parse("x.hcl", []byte(`model "m" { plugin = "../evil" }`), LoadOptions{Getenv: envMap(nil)})
	if got := FormatDiagnostics(diags); !strings.HasPrefix(got, "x.hcl:1:22: Invalid plugin name;") {
		t.Errorf("got %q; want an invalid plugin name at 1:22", got)
	}
	// An empty list of built-ins accepts none.
	_, diags = Parse("x.hcl", []byte(`model "m" { plugin = "sentiment" }`), LoadOptions{Getenv: envMap(nil), BuiltinPlugins: []string{}})
	if got := FormatDiagnostics(diags); !strings.Contains(got, "Unknown plugin") {
		t.Errorf("got %q; want Unknown plugin", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.hcl")
	if err := os.WriteFile(path, []byte(`model "m" { command = ["./plug"] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(path, LoadOptions{Getenv: envMap(nil)})
	if diags.HasErrors() {
		t.Fatalf("got %s; want no error", FormatDiagnostics(diags))
	}
	if cfg.Path != path || cfg.Dir != dir {
		t.Errorf("got Path %q Dir %q; want %q and %q", cfg.Path, cfg.Dir, path, dir)
	}
	if want := filepath.Join(dir, "plug"); cfg.Models[0].Command[0] != want {
		t.Errorf("got command %q; want %q", cfg.Models[0].Command[0], want)
	}

	// A relative filename still gives an absolute Dir.
	cfg = mustParse(t, "sub/x.hcl", "", nil)
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "sub"); cfg.Dir != want {
		t.Errorf("got Dir %q; want %q", cfg.Dir, want)
	}

	missing := filepath.Join(dir, "missing.hcl")
	cfg, diags = Load(missing, LoadOptions{})
	if cfg != nil {
		t.Errorf("got a Config for a missing file; want nil")
	}
	if got, want := FormatDiagnostics(diags), missing+": Cannot read config file; no such file or directory\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// TestRepoConfig checks that the repository's default config loads.
func TestRepoConfig(t *testing.T) {
	const path = "../proxy.hcl"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s yet", path)
	}
	_, diags := Load(path, LoadOptions{Getenv: envMap(nil)})
	if diags.HasErrors() {
		t.Errorf("got\n%s\nwant %s to load", FormatDiagnostics(diags), path)
	}
}
