package config

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const endpointsFile = `
provider "p" {
  upstreams    = ["https://api.example/v1"]
  timeout      = "3s"
  idle_timeout = "20s"
  max_duration = "2m"
}

model "gpt" {
  endpoints        = ["https://api.openai.com/v1", "http://gpu-2:8000/v1?tenant=t1"]
  upstream_model   = "gpt-4o"
  headers          = { Authorization = "Bearer ${env("OPENAI_API_KEY")}", "X-Unset" = env("NOPE") }
  timeout          = "15s"
  idle_timeout     = "20s"
  max_duration     = "5m"
  fallback         = "gpt_small"
  context_fallback = "gpt_long"
  prefill          = true
}

model "gpt_small" {
  endpoints = ["http://127.0.0.1:11434/v1"]
}

model "gpt_long" {
  endpoints = ["http://127.0.0.1:8001/v1"]
  fallback  = "gpt"
}

model "sent" {
  plugin = "sentiment"
}
`

func TestEndpointModels(t *testing.T) {
	cfg := mustParse(t, "x.hcl", endpointsFile, map[string]string{"OPENAI_API_KEY": "sk-123"})
	p := cfg.Providers[0]
	if p.IdleTimeout != 20*time.Second || p.MaxDuration != 2*time.Minute {
		t.Errorf("provider: got idle %s, max %s; want 20s, 2m", p.IdleTimeout, p.MaxDuration)
	}
	gpt := *cfg.Model("gpt")
	want := Model{
		Key: "gpt", Name: "gpt", Timeout: 15 * time.Second, Fallback: "gpt_small", Health: cfg.Health,
		Endpoints:       []*url.URL{mustURL(t, "https://api.openai.com/v1"), mustURL(t, "http://gpu-2:8000/v1?tenant=t1")},
		UpstreamModel:   "gpt-4o",
		Headers:         map[string]string{"Authorization": "Bearer sk-123"},
		IdleTimeout:     20 * time.Second,
		MaxDuration:     5 * time.Minute,
		ContextFallback: "gpt_long",
		Prefill:         true,
	}
	if !reflect.DeepEqual(gpt, want) {
		t.Errorf("got\n%#v\nwant\n%#v", gpt, want)
	}
	if !gpt.IsEndpoint() || cfg.Model("sent").IsEndpoint() {
		t.Error("IsEndpoint: got it wrong")
	}

	// Defaults.
	small := *cfg.Model("gpt_small")
	if small.UpstreamModel != "gpt_small" || small.IdleTimeout != DefaultIdleTimeout || small.Timeout != DefaultModelTimeout ||
		small.MaxDuration != 0 || small.Prefill || small.Headers != nil {
		t.Errorf("defaults: got %#v", small)
	}
	if sent := cfg.Model("sent"); sent.IdleTimeout != 0 || sent.UpstreamModel != "" {
		t.Errorf("a plugin model got endpoint defaults: %#v", sent)
	}
	if cfg.Providers[0].IdleTimeout != 20*time.Second {
		t.Error("provider idle_timeout lost")
	}
}

func TestEndpointDefaultsFromCode(t *testing.T) {
	cfg := &Config{
		Providers: []Provider{{ID: "p", Upstreams: []*url.URL{mustURL(t, "http://h")}}},
		Models:    []Model{{Key: "m", Endpoints: []*url.URL{mustURL(t, "http://h/v1")}}},
	}
	cfg.Normalize()
	if p := cfg.Providers[0]; p.IdleTimeout != DefaultIdleTimeout || p.MaxDuration != 0 {
		t.Errorf("provider: got idle %s, max %s", p.IdleTimeout, p.MaxDuration)
	}
	if m := cfg.Models[0]; m.IdleTimeout != DefaultIdleTimeout || m.UpstreamModel != "m" {
		t.Errorf("model: got idle %s, upstream_model %q", m.IdleTimeout, m.UpstreamModel)
	}
}

func TestEndpointRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "plugin and endpoints",
			src:  "model \"m\" {\n  plugin = \"sentiment\"\n  endpoints = [\"http://h/v1\"]\n}\n",
			want: []string{`x.hcl:3:15: Conflicting endpoints; Model "m" sets endpoints and a plugin or command; set exactly one`},
		},
		{
			name: "command and endpoints",
			src:  "model \"m\" {\n  command = [\"./x\"]\n  endpoints = [\"http://h/v1\"]\n}\n",
			want: []string{`x.hcl:3:15: Conflicting endpoints;`},
		},
		{
			name: "none of the three",
			src:  "model \"m\" {\n  timeout = \"1s\"\n}\n",
			want: []string{`x.hcl:1:1: Missing plugin or command; Model "m" needs plugin = "NAME" (a built-in plugin), command = ["./path", …] (an external one) or endpoints = [`},
		},
		{
			name: "empty endpoints",
			src:  "model \"m\" {\n  endpoints = []\n}\n",
			want: []string{`x.hcl:2:15: Empty endpoints;`},
		},
		{
			name: "bad and duplicate endpoint URLs, secret not echoed",
			src:  "model \"m\" {\n  endpoints = [\"ftp://h/v1\", \"http://u:pw-secret@h/v1\", \"http://h/v1\", \"http://H/v1/\"]\n}\n",
			want: []string{
				`x.hcl:2:16: Invalid endpoint URL; endpoints[0]:`,
				`x.hcl:2:30: Invalid endpoint URL; endpoints[1]: credentials in the URL are not supported`,
				`x.hcl:2:72: Duplicate endpoint URL; endpoints[3] repeats an earlier endpoint of model "m".`,
			},
		},
		{
			name: "endpoint settings on a plugin model",
			src:  "model \"m\" {\n  plugin = \"sentiment\"\n  upstream_model = \"x\"\n  idle_timeout = \"1s\"\n  max_duration = \"1m\"\n  context_fallback = \"m\"\n  prefill = true\n  headers = { A = \"b\" }\n}\n",
			want: []string{
				`x.hcl:3:20: Unexpected upstream_model;`,
				`x.hcl:4:18: Unexpected idle_timeout;`,
				`x.hcl:5:18: Unexpected max_duration;`,
				`x.hcl:6:22: Unexpected context_fallback;`,
				`x.hcl:7:3: Unexpected prefill;`,
				`x.hcl:8:13: Unexpected headers;`,
			},
		},
		{
			name: "bad durations",
			src:  "model \"m\" {\n  endpoints = [\"http://h/v1\"]\n  idle_timeout = \"0s\"\n  max_duration = \"soon\"\n}\n",
			want: []string{`x.hcl:3:18: Invalid idle_timeout;`, `x.hcl:4:18: Invalid max_duration;`},
		},
		{
			name: "max_duration under the timeout",
			src:  "model \"m\" {\n  endpoints = [\"http://h/v1\"]\n  max_duration = \"5s\"\n}\nprovider \"p\" {\n  upstreams = [\"http://h\"]\n  timeout = \"3s\"\n  max_duration = \"2s\"\n}\n",
			want: []string{
				`x.hcl:3:18: Invalid max_duration; max_duration 5s is shorter than the timeout, 10s`,
				`x.hcl:8:18: Invalid max_duration; max_duration 2s is shorter than the timeout, 3s`,
			},
		},
		{
			name: "provider idle_timeout",
			src:  "provider \"p\" {\n  upstreams = [\"http://h\"]\n  idle_timeout = \"-1s\"\n}\n",
			want: []string{`x.hcl:3:18: Invalid idle_timeout;`},
		},
		{
			name: "fallbacks across kinds",
			src: "model \"e\" {\n  endpoints = [\"http://h/v1\"]\n  fallback = \"p\"\n}\n" +
				"model \"p\" {\n  plugin = \"sentiment\"\n  fallback = \"e\"\n}\n",
			want: []string{
				`x.hcl:3:14: Invalid fallback; Model "e" has endpoints; its fallback "p" is a plugin model`,
				`x.hcl:7:14: Invalid fallback; Model "p" is a plugin model; its fallback "e" has endpoints`,
			},
		},
		{
			name: "context_fallback",
			src: "model \"e\" {\n  endpoints = [\"http://h/v1\"]\n  context_fallback = \"e\"\n}\n" +
				"model \"f\" {\n  endpoints = [\"http://h/v1\"]\n  context_fallback = \"ee\"\n}\n" +
				"model \"g\" {\n  endpoints = [\"http://h/v1\"]\n  context_fallback = \"p\"\n}\n" +
				"model \"p\" {\n  plugin = \"sentiment\"\n}\n",
			want: []string{
				`x.hcl:3:22: Invalid context_fallback; Model "e" cannot fall back to itself.`,
				`x.hcl:7:22: Unknown context_fallback model; No model "ee" is defined in this file. Did you mean "e"?`,
				`x.hcl:11:22: Invalid context_fallback; Model "g": context_fallback "p" is a plugin model`,
			},
		},
		{
			name: "empty upstream_model and bad header",
			src:  "model \"m\" {\n  endpoints = [\"http://h/v1\"]\n  upstream_model = \"\"\n  headers = { \"Bad Name\" = \"x\" }\n}\n",
			want: []string{`x.hcl:3:20: Invalid upstream_model;`, `x.hcl:4:15: Invalid header name;`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, nil)
			wantDiagnostics(t, out, tt.want)
			if strings.Contains(out, "pw-secret") {
				t.Errorf("a secret reached the diagnostics:\n%s", out)
			}
		})
	}
}

func TestEndpointHeaderSecretsNotEchoed(t *testing.T) {
	src := "model \"m\" {\n  endpoints = [\"http://h/v1\"]\n  headers = { Authorization = \"Bearer sk-secret\\n\" }\n}\n"
	out := mustFail(t, "x.hcl", src, nil)
	wantDiagnostics(t, out, []string{`x.hcl:3:15: Invalid header value;`})
	if strings.Contains(out, "sk-secret") {
		t.Errorf("the header's value reached the diagnostics:\n%s", out)
	}
}
