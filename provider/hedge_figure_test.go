package provider

import (
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestHedgeFigure measures what hedging does for a provider of three
// upstreams, one of which answers 20 % of its requests after 300 ms:
// the client's latency percentiles and the extra upstream requests,
// without hedging, with after = p90, p95 and a fixed 50ms. It only logs
// (a figure, not a check; about 6 s), and runs with HEALPROXY_FIGURES=1:
//
//	HEALPROXY_FIGURES=1 go test -run TestHedgeFigure -v ./provider/
func TestHedgeFigure(t *testing.T) {
	if os.Getenv("HEALPROXY_FIGURES") == "" {
		t.Skip("a measurement: set HEALPROXY_FIGURES=1 to run it")
	}
	for _, tc := range []struct {
		name string
		h    *routecfg.Hedge
	}{{"off", nil}, {"p90", &routecfg.Hedge{AfterPercentile: 0.9}}, {"p95", &routecfg.Hedge{}}, {"50ms", &routecfg.Hedge{After: 50 * time.Millisecond}}} {
		var hits atomic.Int64
		upstream := func(slow bool) string {
			return proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if slow && rand.IntN(5) == 0 {
					select {
					case <-time.After(300 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
				}
				io.WriteString(w, "ok")
			}).URL
		}
		pc := proxytest.Provider(t, "p", upstream(true), upstream(false), upstream(false))
		pc.Hedge = tc.h
		s := newHedgeServerFor(t, pc, true)
		const n, workers = 1500, 8
		var mu sync.Mutex
		var lat []time.Duration
		var next atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for next.Add(1) <= n {
					began := time.Now()
					proxytest.Get(t, s.client, s.url+"/x")
					d := time.Since(began)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(100 * time.Microsecond) }
		t.Logf("hedge %-4s p50 %v p90 %v p99 %v max %v; %d upstream requests for %d (+%.1f%%)",
			tc.name, q(.5), q(.9), q(.99), lat[len(lat)-1].Round(time.Millisecond), hits.Load(), n, 100*float64(hits.Load()-n)/n)
	}
}
