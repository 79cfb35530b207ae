// Package tracing is healproxy's OpenTelemetry tracing: the exporter set
// up from the tracing block (tracecfg.Tracing), W3C traceparent
// propagation, and the spans and events the proxy records.
//
// A client request to a provider or a model is one server span
// (Handler or StartRequest). Each attempt on an upstream, and each call
// to a model's plugin, is a client span under it (StartAttempt), with the
// provider or model, the upstream as a redacted URL, the attempt number,
// the breaker's status before the call and the classification of the
// result. The decisions taken for the request (a retry, a hedge, a
// fallback model, a stale answer, an all-down step) are events on the
// request's span. Spans never hold a secret, a prompt or a body: only the
// names, numbers and classes passed to these functions, and never the
// request's path or query (docs/behaviour.md has the rules).
//
// A nil *Tracer is tracing off: every method is a no-op that allocates
// nothing, and Handler returns its handler unchanged, so the request path
// costs nothing when tracing is not configured. A *Tracer is safe for
// concurrent use.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/healproxy/healproxy/config/tracecfg"
	"github.com/healproxy/healproxy/internal/redact"
)

// ScopeName is the instrumentation scope of healproxy's spans.
const ScopeName = "github.com/healproxy/healproxy"

// Kinds of entries a request is for, as the health document names them.
const (
	KindProvider = "provider"
	KindModel    = "model"
)

// Attribute keys of healproxy's spans. The HTTP ones are OpenTelemetry's
// semantic conventions; the healproxy.* ones are ours.
const (
	AttrProvider       = attribute.Key("healproxy.provider")
	AttrModel          = attribute.Key("healproxy.model")
	AttrUpstream       = attribute.Key("healproxy.upstream")
	AttrAttempt        = attribute.Key("healproxy.attempt")
	AttrBreaker        = attribute.Key("healproxy.breaker.status")
	AttrClassification = attribute.Key("healproxy.classification")
	AttrMethod         = attribute.Key("http.request.method")
	AttrStatusCode     = attribute.Key("http.response.status_code")
	AttrRoute          = attribute.Key("http.route")
	AttrServerAddress  = attribute.Key("server.address")
)

// Names of the events on a request's span.
const (
	EventRetry    = "retry"
	EventHedge    = "hedge"
	EventFallback = "fallback"
	EventStale    = "stale"
	EventAllDown  = "all_down"
	// EventBudget: a retry was not made, the provider's retry budget being
	// spent.
	EventBudget = "retry_budget_exhausted"
)

// Tracer records healproxy's spans. The zero value is not usable; nil is
// tracing off.
type Tracer struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error // nil when the caller owns the provider
}

// Options tune New. The zero value is usable.
type Options struct {
	// Version is the service.version resource attribute; "" leaves it out.
	Version string
	// Logger, when not nil, receives export errors (scrubbed of the
	// endpoint's and the headers' secrets) through OpenTelemetry's global
	// error handler, which New then sets. nil leaves the handler alone.
	Logger *slog.Logger
}

// New builds a Tracer that exports to cfg's collector over OTLP, in
// batches, off the request path. A nil cfg is tracing off: New returns a
// nil *Tracer and no error. Call Shutdown at exit to send what is queued.
//
// Nothing is sent or dialled before the first batch: a collector that is
// down at start delays nothing and is retried by the exporter.
func New(ctx context.Context, cfg *tracecfg.Tracing, opts Options) (*Tracer, error) {
	if cfg == nil {
		return nil, nil
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP %s exporter for %s: %w", cfg.Protocol, cfg.Redacted, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		res = resource.NewSchemaless(attrs...) // a schema conflict: keep ours
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(Sampler(cfg.SampleRatio)),
	)
	if opts.Logger != nil {
		scrub := redact.New(secretsOf(cfg)...)
		log := opts.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing: export failed", "endpoint", cfg.Redacted, "err", scrub.Scrub(err.Error()))
		}))
	}
	t := NewWithProvider(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// NewWithProvider is a Tracer on a TracerProvider the caller owns (tests
// use the SDK's in-memory exporter). Shutdown does not shut tp down.
func NewWithProvider(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer(ScopeName), prop: propagation.TraceContext{}}
}

// Sampler is healproxy's sampler: a request whose caller sent a W3C
// traceparent follows the caller's decision; a new trace is recorded with
// probability ratio (0 to 1).
func Sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

func newExporter(ctx context.Context, cfg *tracecfg.Tracing) (*otlptrace.Exporter, error) {
	switch cfg.Protocol {
	case tracecfg.ProtocolGRPC:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.Endpoint)}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	case tracecfg.ProtocolHTTP, "":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(HTTPEndpoint(cfg.Endpoint))}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("unknown protocol %q: want %q or %q", cfg.Protocol, tracecfg.ProtocolHTTP, tracecfg.ProtocolGRPC)
	}
}

// HTTPEndpoint is the URL OTLP/HTTP traces are posted to for a collector
// endpoint: /v1/traces is appended to a URL without a path, as
// OTEL_EXPORTER_OTLP_ENDPOINT is read; a URL with a path is used as it is.
func HTTPEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// secretsOf lists what an export error might quote that must not be
// logged: the endpoint's user info and query, and the header values.
func secretsOf(cfg *tracecfg.Tracing) []string {
	var s []string
	if u, err := url.Parse(cfg.Endpoint); err == nil {
		s = redact.ForURL(u, false)
	}
	for _, v := range cfg.Headers {
		s = append(s, v)
	}
	return s
}

// Enabled reports whether t records spans (t is not nil).
func (t *Tracer) Enabled() bool { return t != nil }

// Shutdown sends the spans still queued and stops the exporter, within
// ctx. Later spans are dropped. It is a no-op on nil, and on a Tracer made
// by NewWithProvider.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Span is one of healproxy's spans. The zero Span (tracing off) ignores
// every call. A Span must be ended exactly once.
type Span struct{ s trace.Span }

// Recording reports whether the span records anything (tracing on and
// the trace sampled).
func (s Span) Recording() bool { return s.s != nil && s.s.IsRecording() }

// StartRequest starts the server span of a client request for the
// provider or model key (kind KindProvider or KindModel), as a child of
// the caller's W3C traceparent when r has one. route is the route's
// template, such as "/providers/{provider_id}/*". The returned context
// carries the span: pass it to StartAttempt and the event functions. End
// the span with EndRequest.
func (t *Tracer) StartRequest(r *http.Request, route, kind, key string) (context.Context, Span) {
	if t == nil {
		return r.Context(), Span{}
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	entry := AttrProvider
	if kind == KindModel {
		entry = AttrModel
	}
	ctx, s := t.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(AttrMethod.String(r.Method), AttrRoute.String(route), entry.String(key)))
	return ctx, Span{s}
}

// EndRequest ends a request's span with the status code sent to the
// client; a 5xx marks the span as an error (a 4xx is the client's).
func (s Span) EndRequest(status int) {
	if s.s == nil {
		return
	}
	if s.s.IsRecording() {
		s.s.SetAttributes(AttrStatusCode.Int(status))
		if status >= 500 {
			s.s.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	s.s.End()
}

// Attempt describes one attempt on an upstream, or one call to a model's
// plugin process.
type Attempt struct {
	// Provider is the provider's id; empty for a model call.
	Provider string
	// Model is the model's key; empty for a provider attempt.
	Model string
	// Upstream is the upstream's URL as RedactURL gives it (computed once
	// per upstream); empty for a model call.
	Upstream string
	// Number is the attempt's number within the request, from 1; 0 for
	// the try of an all-down step (the last resort, the try after a wait).
	Number int
	// Breaker is the status of the upstream's or model's health entry
	// before the call: "healthy", "degraded", "unavailable", "unknown"
	// (a half-open entry is "degraded", as in the health document).
	Breaker string
	// Method is the HTTP method sent; empty for a model call.
	Method string
}

// StartAttempt starts the client span of one upstream attempt or plugin
// call, a child of the request's span in ctx. Inject the returned
// context's span into the upstream request (Inject, InjectMetadata), and
// end the span with EndAttempt.
func (t *Tracer) StartAttempt(ctx context.Context, a Attempt) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	var name string
	attrs := make([]attribute.KeyValue, 0, 6)
	if a.Model != "" {
		name = "model " + a.Model
		attrs = append(attrs, AttrModel.String(a.Model))
	} else {
		name = a.Method + " " + a.Provider
		attrs = append(attrs, AttrProvider.String(a.Provider), AttrUpstream.String(a.Upstream))
		if a.Method != "" {
			attrs = append(attrs, AttrMethod.String(a.Method))
		}
		if host := hostOf(a.Upstream); host != "" {
			attrs = append(attrs, AttrServerAddress.String(host))
		}
	}
	attrs = append(attrs, AttrAttempt.Int(a.Number), AttrBreaker.String(a.Breaker))
	ctx, s := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, Span{s}
}

// hostOf is the host of a URL such as RedactURL gives, without its port
// or IPv6 brackets: a slice of u, no parsing.
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if strings.HasPrefix(rest, "[") { // [::1]:8080
		if i := strings.IndexByte(rest, ']'); i > 0 {
			return rest[1:i]
		}
		return ""
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// Result is how an attempt ended.
type Result struct {
	// Class is the classification of the result, as the proxy's failure
	// rules name it (docs/behaviour.md, "What counts as a failure"):
	// "success", "5xx", "429", "rate_limited", "timeout", "connect",
	// "client_gone", "open", …
	Class string
	// Status is the upstream's HTTP status; 0 when there was none (or for
	// a model call).
	Status int
	// Failure says whether the result counts against the upstream's or
	// model's health; a failure marks the span as an error.
	Failure bool
}

// EndAttempt ends an attempt's span with its result. No error text is
// recorded: an upstream's error may quote a secret.
func (s Span) EndAttempt(r Result) {
	if s.s == nil {
		return
	}
	if s.s.IsRecording() {
		s.s.SetAttributes(AttrClassification.String(r.Class))
		if r.Status != 0 {
			s.s.SetAttributes(AttrStatusCode.Int(r.Status))
		}
		if r.Failure {
			s.s.SetStatus(codes.Error, r.Class)
		}
	}
	s.s.End()
}

// Inject writes the W3C traceparent (and tracestate) of the span in ctx
// into h, the headers of a request to an upstream, replacing the ones the
// client sent; the proxy's span is the upstream's parent. A no-op when
// tracing is off: the client's headers then pass unchanged.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	h.Del("Traceparent")
	h.Del("Tracestate")
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// InjectMetadata returns ctx with the W3C traceparent of its span in the
// outgoing gRPC metadata, for a call to a model's plugin process. It
// returns ctx itself when tracing is off.
func (t *Tracer) InjectMetadata(ctx context.Context) context.Context {
	if t == nil {
		return ctx
	}
	carrier := propagation.MapCarrier{}
	t.prop.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(carrier))
	for k, v := range carrier {
		kv = append(kv, k, v)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// event adds an event to the recording span in ctx.
func event(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	s := trace.SpanFromContext(ctx)
	if !s.IsRecording() {
		return
	}
	s.AddEvent(name, trace.WithAttributes(attrs...))
}

// Retry records on the request's span in ctx that attempt number next
// will be made after backoff (0 when not known yet), because of the
// previous attempt's class.
func (t *Tracer) Retry(ctx context.Context, next int, backoff time.Duration, class string) {
	if t == nil {
		return
	}
	event(ctx, EventRetry, AttrAttempt.Int(next), attribute.Float64("healproxy.backoff_seconds", backoff.Seconds()),
		AttrClassification.String(class))
}

// BudgetExhausted records that a retry was not made because the
// provider's retry budget was spent.
func (t *Tracer) BudgetExhausted(ctx context.Context) {
	if t == nil {
		return
	}
	event(ctx, EventBudget)
}

// Hedge records that a hedged attempt was sent to upstream (a redacted
// URL) while the earlier one was still waiting.
func (t *Tracer) Hedge(ctx context.Context, next int, upstream string) {
	if t == nil {
		return
	}
	event(ctx, EventHedge, AttrAttempt.Int(next), AttrUpstream.String(upstream))
}

// Fallback records that model from was unavailable and model to answers
// instead.
func (t *Tracer) Fallback(ctx context.Context, from, to string) {
	if t == nil {
		return
	}
	event(ctx, EventFallback, attribute.String("healproxy.fallback.from", from), attribute.String("healproxy.fallback.to", to))
}

// Stale records that a kept copy of age was served because no upstream
// answered well.
func (t *Tracer) Stale(ctx context.Context, age time.Duration) {
	if t == nil {
		return
	}
	event(ctx, EventStale, attribute.Float64("healproxy.stale.age_seconds", age.Seconds()))
}

// AllDown records the all-down step that answered the request: "stale",
// "last_resort", "wait" or "fail".
func (t *Tracer) AllDown(ctx context.Context, step string) {
	if t == nil {
		return
	}
	event(ctx, EventAllDown, attribute.String("healproxy.all_down.step", step))
}

// RedactURL is an upstream's URL as spans show it: scheme, host and path,
// without user info, query or fragment, and with scrub's secrets (a key
// in the path) masked. Compute it once per upstream, not per request.
func RedactURL(u *url.URL, scrub *redact.Scrubber) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return scrub.Scrub(c.String())
}

// Handler wraps next with the server span of each request; key gives the
// provider id or model key of a request (such as chi.URLParam(r, "id")).
// On nil, it returns next itself. The span ends when next returns, with
// the status next wrote (200 when it wrote none).
func (t *Tracer) Handler(route, kind string, key func(*http.Request) string, next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := t.StartRequest(r, route, kind, key(r))
		sw := &statusWriter{ResponseWriter: w}
		defer func() { span.EndRequest(sw.code()) }()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// statusWriter remembers the status code written through it. Unwrap lets
// http.ResponseController reach the connection (flushes of streamed
// answers, upgrades).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streamed answers (Server-Sent Events, model tokens) flowing
// for callers that type-assert http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Interface guards.
var (
	_ http.Flusher = (*statusWriter)(nil)
)
