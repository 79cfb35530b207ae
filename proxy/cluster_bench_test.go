package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/healproxy/healproxy/internal/redistest"
)

// BenchmarkSharedStateSuccessPath serves one successful request in-process
// (canned upstream, no network) through healproxy with local health only
// and with health shared through a real redis-server: what shared state
// costs the request path. The success path makes no Redis call, so the
// two should match.
//
//	go test -run '^$' -bench SharedStateSuccessPath -benchmem -count 5 ./proxy/
func BenchmarkSharedStateSuccessPath(b *testing.B) {
	srv := redistest.Start(b)
	const target = "http://upstream.invalid/api/v3"
	for _, bc := range []struct {
		name, redis string
	}{{"local", ""}, {"shared", srv.URL()}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newServer(b, clusterConfig(b, target, bc.redis, "bench"), withOptions(Options{Transport: cannedTransport}))
			if bc.redis != "" && !s.cluster.Status().Connected {
				b.Fatal("not connected to redis")
			}
			req := httptest.NewRequest("GET", "/providers/p/simple/price?ids=bitcoin", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			w := &discardResponseWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				s.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("got status %d; want 200", w.code)
				}
			}
		})
	}
}
