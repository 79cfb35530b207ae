package provider

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/internal/proxytest"
)

// BenchmarkRequestAccounting is everything healproxy does for a
// successful request beyond proxying it: the breaker's admission and
// result (error_count, history, last-hour stats) and the Prometheus
// counter and latency histogram. It must not allocate, and "parallel"
// shows it does not serialise concurrent requests on one upstream (the
// breaker is atomics, the metrics lock-free).
//
//	go test -run '^$' -bench RequestAccounting -benchmem -cpu 1,2 ./provider/
func BenchmarkRequestAccounting(b *testing.B) {
	pc := proxytest.NormalizedProvider(proxytest.Provider(b, "p", "http://upstream.test"))
	u := New(pc, http.DefaultTransport, Hooks{}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), nil).Upstreams[0]
	call := func() {
		err := u.Health.Call(func() (time.Duration, error) {
			u.metrics.observeCode(http.StatusOK, 150*time.Microsecond)
			return 150 * time.Microsecond, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				call()
			}
		})
	})
}
