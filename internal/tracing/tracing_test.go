package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/healproxy/healproxy/internal/redact"
	"github.com/healproxy/healproxy/internal/tracing"
)

// newRecorded is a Tracer sampling every trace into an in-memory
// recorder.
func newRecorded(t *testing.T, ratio float64) (*tracing.Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(tracing.Sampler(ratio)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.NewWithProvider(tp), rec
}

// upstream is a real HTTP server recording the traceparent of each
// request; its first answer is 503, the next ones 200.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	parents []string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.parents = append(u.parents, r.Header.Get("Traceparent"))
		n := len(u.parents)
		u.mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"answer":"secret-answer-body"}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// fakeProvider is what proxy/ does with the tracer, in miniature: for
// each attempt, a span, the traceparent injected, the request sent, the
// result classified; a retry event between attempts.
func fakeProvider(tr *tracing.Tracer, target *url.URL, display string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		for n := 1; n <= 2; n++ {
			actx, span := tr.StartAttempt(ctx, tracing.Attempt{Provider: "prices", Upstream: display, Number: n,
				Breaker: "healthy", Method: r.Method})
			out, _ := http.NewRequestWithContext(actx, r.Method, target.String()+"/ticker", nil)
			out.Header = r.Header.Clone() // the client's headers, its traceparent among them
			tr.Inject(actx, out.Header)
			resp, err := http.DefaultClient.Do(out)
			if err != nil {
				span.EndAttempt(tracing.Result{Class: "connect", Failure: true})
				http.Error(w, "bad gateway", http.StatusBadGateway)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				span.EndAttempt(tracing.Result{Class: "5xx", Status: resp.StatusCode, Failure: true})
				tr.Retry(ctx, n+1, 25*time.Millisecond, "5xx")
				continue
			}
			span.EndAttempt(tracing.Result{Class: "success", Status: resp.StatusCode})
			w.WriteHeader(resp.StatusCode)
			w.Write(body)
			return
		}
		tr.AllDown(ctx, "fail")
		w.WriteHeader(http.StatusBadGateway)
	})
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestRequestAndAttemptSpans: one server span per client request, a
// child per attempt with the attributes a person debugging needs, the
// retry as an event, the upstream's traceparent naming the attempt's
// span, and the caller's trace continued.
func TestRequestAndAttemptSpans(t *testing.T) {
	tr, rec := newRecorded(t, 1)
	up := newUpstream(t)
	// The configured upstream carries secrets in its user info, query and path.
	target, _ := url.Parse(up.URL + "/api/k3y-in-path")
	withSecrets := *target
	withSecrets.User = url.UserPassword("user", "pw-secret")
	withSecrets.RawQuery = "apikey=query-secret"
	display := tracing.RedactURL(&withSecrets, redact.New(append(redact.ForURL(&withSecrets, false), "k3y-in-path")...))

	h := tr.Handler("/providers/{provider_id}/*", tracing.KindProvider, func(*http.Request) string { return "prices" },
		fakeProvider(tr, target, display))
	front := httptest.NewServer(h)
	defer front.Close()

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/providers/prices/ticker?apikey=client-secret", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	req.Header.Set("Authorization", "Bearer header-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d; want 200", resp.StatusCode)
	}

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("got %d spans; want 3 (the request and two attempts)", len(spans))
	}
	server := spans[2]
	if server.SpanKind() != trace.SpanKindServer || server.Name() != "GET /providers/{provider_id}/*" {
		t.Errorf("got last span %q kind %v; want the server span GET /providers/{provider_id}/*", server.Name(), server.SpanKind())
	}
	if got := server.SpanContext().TraceID().String(); got != clientTrace {
		t.Errorf("got trace id %s; want the caller's %s", got, clientTrace)
	}
	if got := server.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("got parent span %s; want the caller's 00f067aa0ba902b7", got)
	}
	sa := attrs(server.Attributes())
	if sa[tracing.AttrProvider].AsString() != "prices" || sa[tracing.AttrStatusCode].AsInt64() != 200 || sa[tracing.AttrMethod].AsString() != "GET" {
		t.Errorf("got server attributes %v; want provider prices, status 200, method GET", sa)
	}
	if len(server.Events()) != 1 || server.Events()[0].Name != tracing.EventRetry {
		t.Fatalf("got events %v; want one retry", server.Events())
	}
	if ea := attrs(server.Events()[0].Attributes); ea[tracing.AttrAttempt].AsInt64() != 2 || ea[tracing.AttrClassification].AsString() != "5xx" {
		t.Errorf("got retry event attributes %v; want attempt 2 after a 5xx", ea)
	}

	up.mu.Lock()
	parents := append([]string(nil), up.parents...)
	up.mu.Unlock()
	wantStatus := []int64{503, 200}
	wantClass := []string{"5xx", "success"}
	for i, s := range spans[:2] {
		a := attrs(s.Attributes())
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("attempt %d: got kind %v, parent %s; want a client span under the request's", i+1, s.SpanKind(), s.Parent().SpanID())
		}
		if a[tracing.AttrAttempt].AsInt64() != int64(i+1) || a[tracing.AttrBreaker].AsString() != "healthy" ||
			a[tracing.AttrClassification].AsString() != wantClass[i] || a[tracing.AttrStatusCode].AsInt64() != wantStatus[i] ||
			a[tracing.AttrUpstream].AsString() != display || a[tracing.AttrProvider].AsString() != "prices" {
			t.Errorf("attempt %d: got attributes %v; want attempt %d, breaker healthy, class %s, status %d, upstream %s",
				i+1, a, i+1, wantClass[i], wantStatus[i], display)
		}
		if got := a[tracing.AttrServerAddress].AsString(); got != "127.0.0.1" {
			t.Errorf("attempt %d: got server.address %q; want 127.0.0.1", i+1, got)
		}
		if (s.Status().Code == codes.Error) != (i == 0) {
			t.Errorf("attempt %d: got status %v; want an error only for the failed attempt", i+1, s.Status())
		}
		want := fmt.Sprintf("00-%s-%s-01", clientTrace, s.SpanContext().SpanID())
		if i >= len(parents) || parents[i] != want {
			t.Errorf("attempt %d: upstream got traceparent %q; want %q (the attempt's span)", i+1, parents, want)
		}
	}

	// No secret, query, body or header value anywhere in the spans.
	for _, s := range spans {
		text := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Status(), s.Links())
		for _, secret := range []string{"pw-secret", "query-secret", "k3y-in-path", "client-secret", "header-secret", "secret-answer-body", "apikey"} {
			if strings.Contains(text, secret) {
				t.Errorf("span %q holds %q: %s", s.Name(), secret, text)
			}
		}
	}
}

// TestModelCallSpan: a plugin call's span names the model and its
// attempt; the fallback decision is an event; the traceparent goes into
// the gRPC metadata.
func TestModelCallSpan(t *testing.T) {
	tr, rec := newRecorded(t, 1)
	r := httptest.NewRequest(http.MethodPost, "/models/crypto_sent_0/predict", strings.NewReader(`{"inputs":"a private prompt"}`))
	ctx, req := tr.StartRequest(r, "/models/{model_key}/predict", tracing.KindModel, "crypto_sent_0")
	actx, call := tr.StartAttempt(ctx, tracing.Attempt{Model: "crypto_sent_0", Number: 1, Breaker: "unavailable"})
	md, _ := metadata.FromOutgoingContext(tr.InjectMetadata(actx))
	call.EndAttempt(tracing.Result{Class: "open", Failure: true})
	tr.Fallback(ctx, "crypto_sent_0", "crypto_sent_1")
	req.EndRequest(http.StatusOK)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans; want 2", len(spans))
	}
	c := attrs(spans[0].Attributes())
	if spans[0].Name() != "model crypto_sent_0" || c[tracing.AttrModel].AsString() != "crypto_sent_0" ||
		c[tracing.AttrBreaker].AsString() != "unavailable" || c[tracing.AttrClassification].AsString() != "open" {
		t.Errorf("got call span %q %v; want model crypto_sent_0, breaker unavailable, class open", spans[0].Name(), c)
	}
	want := fmt.Sprintf("00-%s-%s-01", spans[0].SpanContext().TraceID(), spans[0].SpanContext().SpanID())
	if got := md.Get("traceparent"); len(got) != 1 || got[0] != want {
		t.Errorf("got metadata traceparent %v; want %s", got, want)
	}
	if ev := spans[1].Events(); len(ev) != 1 || ev[0].Name != tracing.EventFallback ||
		attrs(ev[0].Attributes)["healproxy.fallback.to"].AsString() != "crypto_sent_1" {
		t.Errorf("got request events %v; want a fallback to crypto_sent_1", ev)
	}
	if strings.Contains(fmt.Sprint(spans[1].Attributes(), spans[0].Attributes()), "prompt") {
		t.Error("a span holds the prompt")
	}
}

// TestEvents: hedge, stale and all-down decisions land on the request's
// span with their details.
func TestEvents(t *testing.T) {
	tr, rec := newRecorded(t, 1)
	ctx, s := tr.StartRequest(httptest.NewRequest(http.MethodGet, "/providers/p/x", nil), "/providers/{provider_id}/*", tracing.KindProvider, "p")
	tr.Hedge(ctx, 2, "http://b.example/api")
	tr.AllDown(ctx, "stale")
	tr.Stale(ctx, 90*time.Second)
	tr.BudgetExhausted(ctx)
	s.EndRequest(http.StatusServiceUnavailable)
	got := rec.Ended()[0]
	var names []string
	for _, e := range got.Events() {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "hedge,all_down,stale,retry_budget_exhausted" {
		t.Errorf("got events %v; want hedge, all_down, stale, retry_budget_exhausted", names)
	}
	if a := attrs(got.Events()[2].Attributes); a["healproxy.stale.age_seconds"].AsFloat64() != 90 {
		t.Errorf("got stale event %v; want age 90 s", a)
	}
	if got.Status().Code != codes.Error {
		t.Errorf("got status %v for a 503; want an error", got.Status())
	}
}

// TestSampling: with ratio 0 a new trace is not recorded but a caller's
// sampled trace is (parent-based), and an unsampled trace still gets a
// traceparent upstream with the flag off.
func TestSampling(t *testing.T) {
	tr, rec := newRecorded(t, 0)
	r := httptest.NewRequest(http.MethodGet, "/providers/p/x", nil)
	ctx, s := tr.StartRequest(r, "/providers/{provider_id}/*", tracing.KindProvider, "p")
	h := http.Header{}
	tr.Inject(ctx, h)
	s.EndRequest(200)
	if len(rec.Ended()) != 0 || s.Recording() {
		t.Errorf("got %d spans recorded at ratio 0; want 0", len(rec.Ended()))
	}
	if tp := h.Get("Traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Errorf("got traceparent %q; want one with the sampled flag off", tp)
	}

	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	_, s = tr.StartRequest(r, "/providers/{provider_id}/*", tracing.KindProvider, "p")
	s.EndRequest(200)
	if len(rec.Ended()) != 1 {
		t.Errorf("got %d spans for a caller's sampled trace at ratio 0; want 1", len(rec.Ended()))
	}
}

// TestHandlerKeepsFlusherAndStatus: the wrapped writer passes flushes
// through (streamed answers) and records the status written.
func TestHandlerKeepsFlusherAndStatus(t *testing.T) {
	tr, rec := newRecorded(t, 1)
	h := tr.Handler("/models/{model_key}/predict", tracing.KindModel, func(*http.Request) string { return "m" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !trace.SpanFromContext(r.Context()).IsRecording() {
				t.Error("got no span in the handler's context")
			}
			w.WriteHeader(http.StatusTeapot)
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			w.(http.Flusher).Flush()
		}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/models/m/predict", nil))
	if !w.Flushed {
		t.Error("got no flush through the wrapped writer")
	}
	if got := attrs(rec.Ended()[0].Attributes())[tracing.AttrStatusCode].AsInt64(); got != http.StatusTeapot {
		t.Errorf("got status attribute %d; want 418", got)
	}

	// On a real connection, the controller reaches it through the wrapper
	// (deadlines, upgrades).
	srv := httptest.NewServer(tr.Handler("/r", tracing.KindProvider, func(*http.Request) string { return "p" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				t.Errorf("SetWriteDeadline through the wrapper: %v", err)
			}
		})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestOff: a nil Tracer changes nothing: the handler is returned as it
// is, the client's traceparent passes unchanged, nothing is recorded, and
// nothing is allocated on the request path.
func TestOff(t *testing.T) {
	var tr *tracing.Tracer
	next := http.NotFoundHandler()
	if got := tr.Handler("/r", tracing.KindProvider, nil, next); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", next) {
		t.Error("got a wrapped handler with tracing off; want next itself")
	}
	if tr.Enabled() {
		t.Error("got Enabled true on nil")
	}
	r := httptest.NewRequest(http.MethodGet, "/providers/p/x", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	out := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	allocs := testing.AllocsPerRun(100, func() { requestSpans(tr, r, out) })
	if allocs != 0 {
		t.Errorf("got %v allocations per request with tracing off; want 0", allocs)
	}
	if got := out.Get("Traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("got traceparent %q; want the client's, unchanged", got)
	}
	if ctx := tr.InjectMetadata(context.Background()); ctx != context.Background() {
		t.Error("InjectMetadata changed the context with tracing off")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown on nil: %v", err)
	}
}

// requestSpans is every call the proxy makes for one provider request
// with a retry: the request's span, two attempts, the propagation and a
// retry event.
func requestSpans(tr *tracing.Tracer, r *http.Request, out http.Header) {
	ctx, req := tr.StartRequest(r, "/providers/{provider_id}/*", tracing.KindProvider, "prices")
	for n := 1; n <= 2; n++ {
		actx, span := tr.StartAttempt(ctx, tracing.Attempt{Provider: "prices", Upstream: "http://127.0.0.1:9101/api",
			Number: n, Breaker: "healthy", Method: http.MethodGet})
		tr.Inject(actx, out)
		span.EndAttempt(tracing.Result{Class: "5xx", Status: 503, Failure: n == 1})
		if n == 1 {
			tr.Retry(ctx, 2, time.Millisecond, "5xx")
		}
	}
	req.EndRequest(http.StatusOK)
}

// BenchmarkRequestSpans is the cost of requestSpans (one request, two
// attempts, a retry) with tracing off, and on at 100 % sampling with a
// batching exporter that discards (the SDK's work, not the network's).
func BenchmarkRequestSpans(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/providers/prices/ticker", nil)
	b.Run("off", func(b *testing.B) {
		var tr *tracing.Tracer
		out := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			requestSpans(tr, r, out)
		}
	})
	b.Run("on-100%", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(tracing.Sampler(1)))
		defer tp.Shutdown(context.Background())
		tr := tracing.NewWithProvider(tp)
		out := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			requestSpans(tr, r, out)
		}
	})
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("https://user:pw@api.example/v3/KEY123/x?apikey=s#frag")
	if got, want := tracing.RedactURL(u, redact.New("KEY123")), "https://api.example/v3/[redacted]/x"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	if got := tracing.RedactURL(nil, nil); got != "" {
		t.Errorf("got %q for nil; want empty", got)
	}
}

func TestServerAddress(t *testing.T) {
	tr, rec := newRecorded(t, 1)
	for _, up := range []string{"https://api.example/v3", "http://[::1]:8080/x", "http://h:1?q", "no-scheme"} {
		_, s := tr.StartAttempt(context.Background(), tracing.Attempt{Provider: "p", Upstream: up, Number: 1})
		s.EndAttempt(tracing.Result{Class: "success"})
	}
	want := []string{"api.example", "::1", "h", ""}
	for i, s := range rec.Ended() {
		if got := attrs(s.Attributes())[tracing.AttrServerAddress].AsString(); got != want[i] {
			t.Errorf("upstream %d: got server.address %q; want %q", i, got, want[i])
		}
	}
}
