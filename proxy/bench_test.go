package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/provider"
)

// The benchmarks compare, over loopback with keep-alive clients, a client
// talking to an upstream directly, through a bare httputil.ReverseProxy
// and through healproxy; BenchmarkTransportSuccessPath compares the two
// proxies in-process with no network, so that what healproxy adds to a
// successful request stands out.
//
//	go test -run '^$' -bench . -benchmem -count 3 ./proxy/

const benchBody = `{"bitcoin":{"usd":97000.5,"usd_24h_change":1.25},"ethereum":{"usd":3400.1,"usd_24h_change":-0.5}}`

func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchBody)))
		io.WriteString(w, benchBody)
	}))
	b.Cleanup(up.Close)
	return up
}

// benchClient is a keep-alive client with enough idle connections for
// RunParallel's goroutines.
func benchClient(b *testing.B) *http.Client {
	b.Helper()
	tr := newTransport()
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func runParallelGets(b *testing.B, c *http.Client, target string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(target)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("got status %d; want 200", resp.StatusCode)
				return
			}
		}
	})
}

func BenchmarkDirect(b *testing.B) {
	up := benchUpstream(b)
	runParallelGets(b, benchClient(b), up.URL+"/api/v3/simple/price?ids=bitcoin")
}

// BenchmarkBareReverseProxy: "default" is ReverseProxy as the standard
// library ships it, which allocates a 32 KiB copy buffer per request;
// "pooled" lends it healproxy's buffer pool, for a like-for-like
// comparison.
func BenchmarkBareReverseProxy(b *testing.B) {
	for _, bc := range []struct {
		name string
		pool httputil.BufferPool
	}{{"default", nil}, {"pooled", provider.BufferPool}} {
		b.Run(bc.name, func(b *testing.B) {
			up := benchUpstream(b)
			target, _ := url.Parse(up.URL + "/api/v3")
			tr := newTransport()
			b.Cleanup(tr.CloseIdleConnections)
			rp := &httputil.ReverseProxy{
				Rewrite: func(pr *httputil.ProxyRequest) {
					pr.SetURL(target)
					pr.SetXForwarded()
				},
				Transport:  tr,
				BufferPool: bc.pool,
			}
			front := httptest.NewServer(rp)
			b.Cleanup(front.Close)
			runParallelGets(b, benchClient(b), front.URL+"/simple/price?ids=bitcoin")
		})
	}
}

func BenchmarkHealproxy(b *testing.B) {
	up := benchUpstream(b)
	s, front := benchHealproxy(b, up.URL+"/api/v3", nil)
	runParallelGets(b, benchClient(b), front.URL+"/providers/p/simple/price?ids=bitcoin")
	b.StopTimer()
	if g := metricValueB(b, s, "code", "200"); g == 0 {
		b.Errorf("healproxy counted no 200 answers")
	}
}

func benchHealproxy(b *testing.B, upstream string, rt http.RoundTripper) (*Server, *httptest.Server) {
	b.Helper()
	u, _ := url.Parse(upstream)
	cfg := &config.Config{Providers: []config.Provider{{
		ID: "p", Name: "p", Upstreams: []*url.URL{u}, Timeout: 10 * time.Second,
		Headers: map[string]string{"X-Api-Key": "bench-key"},
		Health:  config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2},
	}}}
	if rt != nil {
		return newServer(b, cfg, withOptions(Options{Transport: rt})), nil
	}
	return startServer(b, cfg)
}

func metricValueB(b *testing.B, s *Server, k, v string) float64 {
	return proxytest.MetricValue(b, s.metrics.reg, "healproxy_upstream_requests_total", map[string]string{k: v})
}

// cannedTransport answers every request with benchBody, without network.
var cannedTransport = proxytest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(benchBody)),
		ContentLength: int64(len(benchBody)),
		Request:       r,
	}, nil
})

// discardResponseWriter is a reusable ResponseWriter that keeps nothing.
type discardResponseWriter struct {
	h    http.Header
	code int
}

func (w *discardResponseWriter) Header() http.Header         { return w.h }
func (w *discardResponseWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardResponseWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkTransportSuccessPath serves one successful request in-process
// through a bare ReverseProxy and through healproxy, both with the same
// canned base transport; the difference in allocs/op is what healproxy's
// routing, upstream selection, breaker and metrics add.
func BenchmarkTransportSuccessPath(b *testing.B) {
	target, _ := url.Parse("http://upstream.invalid/api/v3")
	bare := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  cannedTransport,
		BufferPool: provider.BufferPool, // as healproxy's, so buffers are not part of the difference
	}
	s, _ := benchHealproxy(b, target.String(), cannedTransport)
	for _, bc := range []struct {
		name string
		h    http.Handler
		path string
	}{
		{"bare", bare, "/simple/price?ids=bitcoin"},
		{"healproxy", s, "/providers/p/simple/price?ids=bitcoin"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", bc.path, nil)
			req.RemoteAddr = "127.0.0.1:40000"
			w := &discardResponseWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				bc.h.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("got status %d; want 200", w.code)
				}
			}
		})
	}
}
