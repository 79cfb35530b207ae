package tracing_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/tracing"
)

// received is what a test collector got: the spans of every export and
// the token header of the last one.
type received struct {
	mu    sync.Mutex
	reqs  []*coltracepb.ExportTraceServiceRequest
	token string
	path  string
}

func (r *received) add(req *coltracepb.ExportTraceServiceRequest, token, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	r.token, r.path = token, path
}

// check asserts that one export arrived with the test's span, the
// service's name and the configured header.
func (r *received) check(t *testing.T, wantPath string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var spans []*tracepb.Span
	var service string
	for _, req := range r.reqs {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
	}
	if len(spans) != 2 {
		t.Fatalf("got %d spans at the collector; want 2", len(spans))
	}
	names := spans[0].GetName() + "," + spans[1].GetName()
	if names != "GET prices,GET /providers/{provider_id}/*" {
		t.Errorf("got spans %s; want the attempt then the request", names)
	}
	if service != "edge-proxy" {
		t.Errorf("got service.name %q; want edge-proxy", service)
	}
	if r.token != "Bearer collector-token" {
		t.Errorf("got authorization %q; want the configured header", r.token)
	}
	if wantPath != "" && r.path != wantPath {
		t.Errorf("got path %q; want %q", r.path, wantPath)
	}
}

// exportOne parses a config with a tracing block for endpoint and
// protocol, builds the Tracer, records one request with one attempt and
// shuts down (which flushes).
func exportOne(t *testing.T, endpoint, protocol string) {
	t.Helper()
	src := `tracing {
  endpoint     = "` + endpoint + `"
  protocol     = "` + protocol + `"
  service_name = "edge-proxy"
  headers      = { authorization = "Bearer collector-token" }
}
`
	cfg, diags := config.Parse("t.hcl", []byte(src), config.LoadOptions{Getenv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	tr, err := tracing.New(context.Background(), cfg.Tracing, tracing.Options{Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, req := tr.StartRequest(httptest.NewRequest(http.MethodGet, "/providers/prices/x", nil), "/providers/{provider_id}/*", tracing.KindProvider, "prices")
	_, a := tr.StartAttempt(ctx, tracing.Attempt{Provider: "prices", Upstream: "http://127.0.0.1:1/api", Number: 1, Breaker: "healthy", Method: "GET"})
	a.EndAttempt(tracing.Result{Class: "success", Status: 200})
	req.EndRequest(200)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
}

// TestExportOTLPHTTP: spans reach a collector over OTLP/HTTP with
// protobuf bodies at /v1/traces, with the configured header.
func TestExportOTLPHTTP(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf body", http.StatusBadRequest)
			return
		}
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got.add(req, r.Header.Get("Authorization"), r.URL.Path)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer srv.Close()
	exportOne(t, srv.URL, "http/protobuf")
	got.check(t, "/v1/traces")
}

type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	got *received
}

func (c *grpcCollector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.got.add(req, strings.Join(md.Get("authorization"), ","), "")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestExportOTLPGRPC: the same over OTLP/gRPC (no TLS for an http://
// endpoint).
func TestExportOTLPGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got received
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, &grpcCollector{got: &got})
	go s.Serve(ln)
	defer s.Stop()
	exportOne(t, "http://"+ln.Addr().String(), "grpc")
	got.check(t, "")
}

// TestNewOff: no tracing block is no Tracer, and no error.
func TestNewOff(t *testing.T) {
	tr, err := tracing.New(context.Background(), nil, tracing.Options{})
	if tr != nil || err != nil {
		t.Errorf("got %v, %v; want nil, nil", tr, err)
	}
}

func TestHTTPEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":           "http://c:4318/v1/traces",
		"http://c:4318/":          "http://c:4318/v1/traces",
		"https://c/otlp/v1/spans": "https://c/otlp/v1/spans",
	} {
		if got := tracing.HTTPEndpoint(in); got != want {
			t.Errorf("HTTPEndpoint(%q) = %q; want %q", in, got, want)
		}
	}
}
