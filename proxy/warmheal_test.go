package proxy_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestSelfHealUnderLoadLosesNoCall: through the proxy's HTTP API, with 4
// clients predicting without pause and no fallback configured, three
// self-heals of a live model and one max_requests recycle fail no call:
// each reinit is warm (the new process takes over before the old one
// stops, and the old one finishes its calls).
func TestSelfHealUnderLoadLosesNoCall(t *testing.T) {
	h := testHealth(false)
	h.ReinitCooldown = 0 // heals back to back
	m := sentimentModel("sent", h)
	m.MaxRequests = 400 // one recycle during the run, besides the heals
	mp := newModelProxy(t, modelConfig(h, m))
	mp.waitHealthy("sent", startupWait)

	var calls, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ { // bounded; stop ends it first
				select {
				case <-stop:
					return
				default:
				}
				r := mp.predict("sent", "btc breaks out")
				calls.Add(1)
				if r.Code != 200 {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, r.Raw)
				}
			}
		})
	}
	warm := 0
	for range 3 {
		rep := mp.mustSelfHeal("model_key=sent")
		if len(rep.Results) != 1 || rep.Results[0].Status != "success" {
			t.Errorf("self-heal: %s", rep.Raw)
			continue
		}
		if rep.Results[0].Mode == "warm" {
			warm++
		}
	}
	proxytest.Eventually(t, 20*time.Second, "the max_requests recycle (the load drives it)", func() bool {
		return mp.model("sent").Restarts >= 4
	})
	close(stop)
	wg.Wait()
	if warm != 3 {
		t.Errorf("%d of 3 self-heals were warm", warm)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed during the heals; want 0 (first: %v)", n, calls.Load(), firstFailure.Load())
	}
	t.Logf("%d calls, 3 warm self-heals and a recycle, %d failed", calls.Load(), failed.Load())
}
