package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/internal/tracing"
)

// TestTracingSpans: with a tracer, a provider request is a server span
// with one child span per upstream attempt (the failed one and its retry,
// with their number and classification, and a retry event on the request
// span); the upstreams get the trace in traceparent; no secret of the
// provider (its upstream's query, its injected header) is in any span.
func TestTracingSpans(t *testing.T) {
	bad := proxytest.NewUpstream(t)
	bad.Code.Store(http.StatusBadGateway)
	good := proxytest.NewUpstream(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	_, ts := startHCL(t, fmt.Sprintf(`
provider "p" {
  upstreams = [%q, %q]
  headers   = { "X-Key" = "very-secret-key" }
}
`, bad.URL+"/api?key=qsecret", good.URL), withOptions(Options{Tracer: tracing.NewWithProvider(tp)}))

	attr := func(s sdktrace.ReadOnlySpan, k string) string {
		for _, kv := range s.Attributes() {
			if string(kv.Key) == k {
				return kv.Value.String()
			}
		}
		return ""
	}
	// Round robin: one of two requests tries the failing upstream first.
	for range 2 {
		if resp, _ := proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/p/x"); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d; want 200 (the retry's)", resp.StatusCode)
		}
	}
	spans := rec.Ended()
	var server sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	perTrace := map[string]int{}
	for _, s := range spans {
		perTrace[s.SpanContext().TraceID().String()]++
	}
	for _, s := range spans {
		if perTrace[s.SpanContext().TraceID().String()] != 3 { // the request with a retry
			continue
		}
		if txt := fmt.Sprint(s.Name(), s.Attributes(), s.Events()); strings.Contains(txt, "secret") {
			t.Errorf("a span shows a secret: %s", txt)
		}
		switch {
		case s.Parent().IsValid():
			attempts = append(attempts, s)
		default:
			server = s
		}
	}
	if server == nil || len(attempts) != 2 {
		t.Fatalf("%d spans, %d of the retried request's attempts; want a server span and 2 attempt spans", len(spans), len(attempts))
	}
	if attr(attempts[0], "healproxy.attempt") == "2" { // ended in that order, but check
		attempts[0], attempts[1] = attempts[1], attempts[0]
	}
	for i, a := range attempts {
		if a.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("attempt %d is not a child of the request span", i+1)
		}
		if got := attr(a, "healproxy.attempt"); got != fmt.Sprint(i+1) {
			t.Errorf("attempt span %d: healproxy.attempt %q", i+1, got)
		}
	}
	if got := attr(attempts[0], "healproxy.classification"); got != "status" {
		t.Errorf("first attempt classification %q; want status (the 502)", got)
	}
	if got := attr(attempts[1], "healproxy.classification"); got != "success" {
		t.Errorf("second attempt classification %q; want success", got)
	}
	retried := false
	for _, e := range server.Events() {
		retried = retried || strings.Contains(e.Name, "retry")
	}
	if !retried {
		t.Errorf("request span events %v; want a retry", server.Events())
	}
	trace := server.SpanContext().TraceID().String()
	if tp := bad.Last(t).Header.Get("Traceparent"); !strings.Contains(tp, trace) {
		t.Errorf("the failing upstream got traceparent %q; want trace %s", tp, trace)
	}
	found := false
	for _, r := range good.Requests() {
		found = found || strings.Contains(r.Header.Get("Traceparent"), trace)
	}
	if !found {
		t.Errorf("the retry's upstream got no request in trace %s", trace)
	}
}
