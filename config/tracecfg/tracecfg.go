// Package tracecfg builds the tracing block of a healproxy file and the
// standard OTEL_* variables into the settings internal/tracing exports
// traces with. Package config calls Build and Normalize.
package tracecfg

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/healproxy/healproxy/internal/hclx"
)

// The tracing block: OpenTelemetry traces sent over OTLP (internal/tracing).
//
//	tracing {
//	  endpoint     = "http://127.0.0.1:4318"  # the collector; env OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT
//	  protocol     = "http/protobuf"          # or "grpc"; env OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL
//	  sample_ratio = 0.1                      # env OTEL_TRACES_SAMPLER(_ARG)
//	  service_name = "healproxy"              # env OTEL_SERVICE_NAME
//	  headers      = { authorization = env("OTLP_TOKEN") }  # env OTEL_EXPORTER_OTLP_[TRACES_]HEADERS
//	}
//
// Tracing is off unless an endpoint is set, in the file or by the
// standard OTEL_* variables; OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none turn it off whatever the file says. As
// everywhere, an environment variable wins over the file.

// Tracing protocols: OTLP over HTTP with protobuf bodies, or over gRPC.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Defaults of the tracing block.
const (
	DefaultProtocol    = ProtocolHTTP
	DefaultServiceName = "healproxy"
	DefaultSampleRatio = 1.0
)

// Tracing is where and how traces are exported. Config.Tracing is nil
// when tracing is off.
type Tracing struct {
	// Endpoint is the collector's URL, http:// (no TLS) or https://. With
	// http/protobuf, a URL without a path gets /v1/traces appended (as
	// OTEL_EXPORTER_OTLP_ENDPOINT does); with grpc only its host and port
	// are used. It may hold a secret in its user info or query: show
	// Redacted instead.
	Endpoint string
	// Redacted is Endpoint as scheme://host[:port]/path, for logs.
	Redacted string
	// Protocol is ProtocolHTTP or ProtocolGRPC. Default
	// DefaultProtocol.
	Protocol string
	// SampleRatio is the share of new traces recorded, from 0 to 1. A
	// request whose caller sent a W3C traceparent follows the caller's
	// sampling decision instead (parent-based sampling). 0 (only from
	// code, or the file saying so) records only requests whose caller
	// sampled them; a file that leaves it out gets
	// DefaultSampleRatio.
	SampleRatio float64
	// ServiceName is the service.name resource attribute. Default
	// DefaultServiceName.
	ServiceName string
	// Headers are sent with every export (typically a collector's
	// token). Their values are secrets: never logged or shown.
	Headers map[string]string
}

// String shows the tracing settings without secrets, so that printing
// them with %v cannot leak a header value or the endpoint's user info.
func (t Tracing) String() string {
	return fmt.Sprintf("otlp %s %s sample_ratio %g service %q (%d headers)",
		t.Protocol, t.Redacted, t.SampleRatio, t.ServiceName, len(t.Headers))
}

// The OTEL_* variables read (the OpenTelemetry specification's names).
const (
	envOTelDisabled       = "OTEL_SDK_DISABLED"
	envOTelTracesExporter = "OTEL_TRACES_EXPORTER"
	envOTelEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTelTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envOTelProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOTelTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envOTelHeaders        = "OTEL_EXPORTER_OTLP_HEADERS"
	envOTelTracesHeaders  = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	envOTelSampler        = "OTEL_TRACES_SAMPLER"
	envOTelSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
	envOTelServiceName    = "OTEL_SERVICE_NAME"
)

// File is the tracing block as decoded (gohcl).
type File struct {
	Endpoint         *string        `hcl:"endpoint,optional"`
	EndpointRange    hcl.Range      `hcl:"endpoint,attr_value_range"`
	Protocol         *string        `hcl:"protocol,optional"`
	ProtocolRange    hcl.Range      `hcl:"protocol,attr_value_range"`
	SampleRatio      hcl.Expression `hcl:"sample_ratio,optional"`
	ServiceName      *string        `hcl:"service_name,optional"`
	ServiceNameRange hcl.Range      `hcl:"service_name,attr_value_range"`
	Headers          hcl.Expression `hcl:"headers,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// Build decodes the tracing block (nil when the file has none) and the
// OTEL_* variables (env > file) into settings, nil when tracing is off.
// Problems go to b.
func Build(b *hclx.Builder, ft *File) *Tracing {
	t := Tracing{SampleRatio: DefaultSampleRatio}
	endpointSet := false // an endpoint attribute or variable, even empty
	var endpointRange *hcl.Range

	if ft != nil {
		if ft.Endpoint != nil && b.Decoded(ft.EndpointRange) {
			t.Endpoint, endpointSet, endpointRange = strings.TrimSpace(*ft.Endpoint), true, ft.EndpointRange.Ptr()
		}
		if ft.Protocol != nil && b.Decoded(ft.ProtocolRange) {
			t.Protocol = *ft.Protocol
			if !validProtocol(t.Protocol) {
				b.Errorf(ft.ProtocolRange, "Invalid protocol",
					"%s: want %q or %q.", hclx.Quote(t.Protocol), ProtocolHTTP, ProtocolGRPC)
			}
		}
		r, d := hclx.Float(ft.SampleRatio, b.Ectx, "sample_ratio", "a number from 0 to 1 such as 0.1",
			func(f float64) bool { return f >= 0 && f <= 1 })
		b.Add(d)
		if r != nil {
			t.SampleRatio = *r
		}
		if ft.ServiceName != nil && b.Decoded(ft.ServiceNameRange) {
			t.ServiceName = *ft.ServiceName
			if strings.TrimSpace(t.ServiceName) == "" {
				b.Errorf(ft.ServiceNameRange, "Empty service_name", "service_name names healproxy in traces; set one or leave it out (default %q).", DefaultServiceName)
			}
		}
		t.Headers = b.HeaderMap(ft.Headers)
	}

	tracingEnv(b, &t, &endpointSet, &endpointRange)
	if tracingDisabled(b) {
		return nil
	}
	if !endpointSet {
		if ft != nil && !b.DecodeDiags.HasErrors() {
			b.Errorf(ft.DefRange, "tracing without endpoint",
				"Set endpoint to the OTLP collector's URL (or %s), or drop the block.", envOTelEndpoint)
		}
		return nil
	}
	if t.Endpoint == "" {
		return nil // typically env("…") of an unset variable: no tracing, as an empty redis shares nothing
	}
	redacted, problem := parseEndpoint(t.Endpoint)
	if problem != "" {
		if endpointRange != nil {
			b.Errorf(*endpointRange, "Invalid tracing endpoint", "%s.", problem)
		} else {
			b.Diags = append(b.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid OTLP endpoint",
				Detail: fmt.Sprintf("%s or %s: %s.", envOTelTracesEndpoint, envOTelEndpoint, problem)})
		}
		return nil
	}
	t.Redacted = redacted
	return &t
}

// tracingEnv applies the OTEL_* variables over the file's settings. A
// signal-specific variable (…_TRACES_…) wins over the general one.
func tracingEnv(b *hclx.Builder, t *Tracing, endpointSet *bool, endpointRange **hcl.Range) {
	if v, ok := firstEnv(b, envOTelTracesEndpoint, envOTelEndpoint); ok {
		t.Endpoint, *endpointSet, *endpointRange = strings.TrimSpace(v), true, nil
	}
	if v, ok := firstEnv(b, envOTelTracesProtocol, envOTelProtocol); ok {
		if validProtocol(v) {
			t.Protocol = v
		} else {
			envError(b, "Invalid OTLP protocol", "%s or %s=%s: want %q or %q.",
				envOTelTracesProtocol, envOTelProtocol, hclx.Quote(v), ProtocolHTTP, ProtocolGRPC)
		}
	}
	if v, ok := firstEnv(b, envOTelServiceName); ok {
		t.ServiceName = v
	}
	if v, ok := firstEnv(b, envOTelTracesHeaders, envOTelHeaders); ok {
		h, problem := parseOTelHeaders(v)
		if problem != "" {
			envError(b, "Invalid OTLP headers", "%s or %s: %s.", envOTelTracesHeaders, envOTelHeaders, problem)
		} else {
			t.Headers = h
		}
	}
	sampler, hasSampler := firstEnv(b, envOTelSampler)
	arg, hasArg := firstEnv(b, envOTelSamplerArg)
	switch sampler = strings.TrimSpace(sampler); {
	case !hasSampler:
	case sampler == "always_on" || sampler == "parentbased_always_on":
		t.SampleRatio = 1
	case sampler == "always_off" || sampler == "parentbased_always_off":
		t.SampleRatio = 0
	case sampler == "traceidratio" || sampler == "parentbased_traceidratio":
		if !hasArg {
			t.SampleRatio = 1 // the specification's default argument
		}
	default:
		envError(b, "Invalid OTEL_TRACES_SAMPLER", "%s=%s: healproxy knows always_on, always_off, traceidratio and their parentbased_ forms (it always follows a caller's sampling decision).",
			envOTelSampler, hclx.Quote(sampler))
	}
	if hasArg && (!hasSampler || strings.HasSuffix(sampler, "traceidratio")) {
		f, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || f < 0 || f > 1 {
			envError(b, "Invalid OTEL_TRACES_SAMPLER_ARG", "%s=%s: want a number from 0 to 1 such as 0.1.", envOTelSamplerArg, hclx.Quote(arg))
		} else {
			t.SampleRatio = f
		}
	}
}

// tracingDisabled reports whether the environment turns tracing off.
func tracingDisabled(b *hclx.Builder) bool {
	if v, ok := b.Getenv(envOTelDisabled); ok && strings.EqualFold(strings.TrimSpace(v), "true") {
		return true
	}
	if v, ok := b.Getenv(envOTelTracesExporter); ok {
		switch v = strings.TrimSpace(v); v {
		case "none":
			return true
		case "", "otlp":
		default:
			envError(b, "Invalid OTEL_TRACES_EXPORTER", "%s=%s: healproxy exports traces with otlp only (or none).", envOTelTracesExporter, hclx.Quote(v))
		}
	}
	return false
}

// firstEnv returns the first of names that is set.
func firstEnv(b *hclx.Builder, names ...string) (string, bool) {
	for _, n := range names {
		if v, ok := b.Getenv(n); ok {
			return v, true
		}
	}
	return "", false
}

// envError reports a bad environment variable (it has no position).
func envError(b *hclx.Builder, summary, format string, args ...any) {
	b.Diags = append(b.Diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)})
}

// parseOTelHeaders parses the W3C-baggage-like list of OTEL_EXPORTER_OTLP_HEADERS:
// key1=value1,key2=value2, values percent-encoded. problem never
// contains a value (they are secrets).
func parseOTelHeaders(s string) (map[string]string, string) {
	out := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Sprintf("item %d is not name=value with a valid header name", i)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil || !httpguts.ValidHeaderFieldValue(val) {
			return nil, fmt.Sprintf("the value of %s is not a valid percent-encoded header value", hclx.Quote(k))
		}
		if val != "" {
			out[k] = val
		}
	}
	return out, ""
}

func validProtocol(p string) bool {
	return p == ProtocolHTTP || p == ProtocolGRPC
}

// parseEndpoint checks a collector URL. problem is "" when it is
// acceptable and never contains the URL, which may hold a secret.
func parseEndpoint(s string) (redacted, problem string) {
	const want = "want http://host:port or https://host:port, optionally with a path (such as http://127.0.0.1:4318)"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", "not a URL; " + want
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Sprintf("the scheme is %s; %s", hclx.Quote(u.Scheme), want)
	case u.Opaque != "" || u.Hostname() == "":
		return "", "no host; " + want
	case u.Fragment != "":
		return "", "a fragment (#…) is not allowed; " + want
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "the port must be a number from 1 to 65535; " + want
		}
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery = nil, "", false
	return c.String(), ""
}

// Normalize fills t's zero settings with their defaults; a nil t (tracing
// off) stays nil.
func (t *Tracing) Normalize() {
	if t == nil {
		return
	}
	if t.Protocol == "" {
		t.Protocol = DefaultProtocol
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultServiceName
	}
	if t.Redacted == "" {
		if r, problem := parseEndpoint(t.Endpoint); problem == "" {
			t.Redacted = r
		}
	}
}
