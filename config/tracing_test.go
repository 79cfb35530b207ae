package config

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config/tracecfg"
)

func TestTracing(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want *tracecfg.Tracing // nil: tracing off
	}{
		{name: "no block, no variable: off"},
		{
			name: "endpoint only: the defaults",
			src:  "tracing {\n  endpoint = \"http://127.0.0.1:4318\"\n}\n",
			want: &tracecfg.Tracing{Endpoint: "http://127.0.0.1:4318", Redacted: "http://127.0.0.1:4318",
				Protocol: "http/protobuf", SampleRatio: 1, ServiceName: "healproxy"},
		},
		{
			name: "every setting",
			src: "tracing {\n  endpoint = \"https://otel.example:4317\"\n  protocol = \"grpc\"\n  sample_ratio = 0.25\n" +
				"  service_name = \"edge\"\n  headers = { authorization = \"Bearer s3cret-token\", empty = \"\" }\n}\n",
			want: &tracecfg.Tracing{Endpoint: "https://otel.example:4317", Redacted: "https://otel.example:4317",
				Protocol: "grpc", SampleRatio: 0.25, ServiceName: "edge", Headers: map[string]string{"authorization": "Bearer s3cret-token"}},
		},
		{
			name: "sample_ratio 0 is kept",
			src:  "tracing {\n  endpoint = \"http://c:4318\"\n  sample_ratio = 0\n}\n",
			want: &tracecfg.Tracing{Endpoint: "http://c:4318", Redacted: "http://c:4318", Protocol: "http/protobuf", ServiceName: "healproxy"},
		},
		{
			name: "the OTEL_* variables alone turn it on",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://u:pw@collector:4318?k=v", "OTEL_SERVICE_NAME": "hp",
				"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
				"OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x-tenant=t1"},
			want: &tracecfg.Tracing{Endpoint: "http://u:pw@collector:4318?k=v", Redacted: "http://collector:4318", Protocol: "http/protobuf",
				SampleRatio: 0.5, ServiceName: "hp", Headers: map[string]string{"api-key": "a b", "x-tenant": "t1"}},
		},
		{
			name: "the variables win over the file, the traces ones over the general ones",
			src:  "tracing {\n  endpoint = \"http://file:4318\"\n  protocol = \"grpc\"\n  sample_ratio = 0.1\n  headers = { a = \"from-file\" }\n}\n",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=from-env"},
			want: &tracecfg.Tracing{Endpoint: "http://traces:4318/v1/traces", Redacted: "http://traces:4318/v1/traces", Protocol: "http/protobuf",
				SampleRatio: 1, ServiceName: "healproxy", Headers: map[string]string{"b": "from-env"}},
		},
		{
			name: "always_off samples only what the caller sampled",
			src:  "tracing {\n  endpoint = \"http://c:4318\"\n}\n",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "always_off"},
			want: &tracecfg.Tracing{Endpoint: "http://c:4318", Redacted: "http://c:4318", Protocol: "http/protobuf", ServiceName: "healproxy"},
		},
		{
			name: "OTEL_SDK_DISABLED turns a configured block off",
			src:  "tracing {\n  endpoint = \"http://c:4318\"\n}\n",
			env:  map[string]string{"OTEL_SDK_DISABLED": "true"},
		},
		{
			name: "OTEL_TRACES_EXPORTER=none turns it off",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
		},
		{
			name: "an empty endpoint (an unset env()) is off",
			src:  "tracing {\n  endpoint = env(\"NOPE\")\n  sample_ratio = 0.5\n}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, "/etc/hp/x.hcl", tt.src, tt.env)
			got := cfg.Tracing
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("got Tracing %v; want %v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.Endpoint != tt.want.Endpoint || got.Redacted != tt.want.Redacted || got.Protocol != tt.want.Protocol ||
				got.SampleRatio != tt.want.SampleRatio || got.ServiceName != tt.want.ServiceName || !maps.Equal(got.Headers, tt.want.Headers) {
				t.Errorf("got %#v; want %#v", *got, *tt.want)
			}
		})
	}
}

func TestTracingDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		{
			name: "bad protocol, ratio, service name and header",
			src: "tracing {\n  endpoint = \"http://c:4318\"\n  protocol = \"thrift\"\n  sample_ratio = 1.5\n  service_name = \" \"\n" +
				"  headers = { \"bad name\" = \"v\" }\n}\n",
			want: []string{
				`x.hcl:3:14: Invalid protocol; "thrift": want "http/protobuf" or "grpc".`,
				`x.hcl:4:18: Invalid sample_ratio; Want a number from 0 to 1 such as 0.1, got 1.5.`,
				`x.hcl:5:18: Empty service_name`,
				`x.hcl:6:15: Invalid header name; "bad name" is not a valid HTTP header name.`,
			},
		},
		{
			name: "a bad endpoint is not echoed: it may hold a secret",
			src:  "tracing {\n  endpoint = \"ftp://user:s3cret@c:4318\"\n}\n",
			want: []string{`x.hcl:2:14: Invalid tracing endpoint; the scheme is "ftp"; want http://host:port`},
		},
		{
			name: "a block without endpoint",
			src:  "tracing {\n  sample_ratio = 0.5\n}\n",
			want: []string{`x.hcl:1:1: tracing without endpoint; Set endpoint to the OTLP collector's URL (or OTEL_EXPORTER_OTLP_ENDPOINT), or drop the block.`},
		},
		{
			name: "a misspelt attribute",
			src:  "tracing {\n  endpoint = \"http://c:4318\"\n  sample_rate = 0.5\n}\n",
			want: []string{`x.hcl:3:3: Unsupported argument; An argument named "sample_rate" is not expected here. Did you mean "sample_ratio"?`},
		},
		{
			name: "bad variables",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
				"OTEL_TRACES_SAMPLER": "jaeger_remote", "OTEL_EXPORTER_OTLP_HEADERS": "a=%zz-s3cret", "OTEL_TRACES_EXPORTER": "zipkin"},
			want: []string{
				`x.hcl: Invalid OTLP protocol; OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`,
				`x.hcl: Invalid OTLP headers; OTEL_EXPORTER_OTLP_TRACES_HEADERS or OTEL_EXPORTER_OTLP_HEADERS: the value of "a" is not a valid percent-encoded header value.`,
				`x.hcl: Invalid OTEL_TRACES_SAMPLER; OTEL_TRACES_SAMPLER="jaeger_remote"`,
				`x.hcl: Invalid OTEL_TRACES_EXPORTER; OTEL_TRACES_EXPORTER="zipkin"`,
				`x.hcl: Invalid OTLP endpoint; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT: the scheme is "collector"`,
			},
		},
		{
			name: "a bad sampler argument",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": "2"},
			want: []string{`x.hcl: Invalid OTEL_TRACES_SAMPLER_ARG; OTEL_TRACES_SAMPLER_ARG="2": want a number from 0 to 1 such as 0.1.`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, tt.env)
			if strings.Contains(out, "s3cret") {
				t.Errorf("got diagnostics quoting a secret:\n%s", out)
			}
			wantDiagnostics(t, out, tt.want)
		})
	}
}

// TestTracingStringHidesSecrets: printing the settings (a log line, %v)
// shows neither header values nor the endpoint's user info or query.
func TestTracingStringHidesSecrets(t *testing.T) {
	cfg := mustParse(t, "x.hcl", "tracing {\n  endpoint = \"https://u:pw-s3cret@c:4318/x?token=s3cret-q\"\n  headers = { authorization = \"s3cret-h\" }\n}\n", nil)
	for _, s := range []string{cfg.Tracing.String(), fmt.Sprint(*cfg.Tracing)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("got %q; want no secret", s)
		}
	}
}

// TestTracingNormalize: a Tracing built in code gets its defaults, and
// nil stays nil.
func TestTracingNormalize(t *testing.T) {
	c := &Config{}
	c.Normalize()
	if c.Tracing != nil {
		t.Fatalf("got %v; want nil", c.Tracing)
	}
	c.Tracing = &tracecfg.Tracing{Endpoint: "http://u:p@c:4318?q=1"}
	c.Normalize()
	if got := *c.Tracing; got.Protocol != tracecfg.ProtocolHTTP || got.ServiceName != "healproxy" || got.Redacted != "http://c:4318" || got.SampleRatio != 0 {
		t.Errorf("got %#v; want the defaults, SampleRatio 0 kept", got)
	}
}
