package cluster

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/redistest"
)

// TestSentinelFailoverUnderLoad: three replicas share health through a
// primary, its replica and three sentinels (real processes). Under load,
// the primary is killed (SIGKILL) and, during the switch, replica b trips
// a second upstream. The fleet keeps the trip it had (never shown
// healthy), b's trip written during the switch is written again to the
// new primary, and every replica applies it.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	st := redistest.StartSentinel(t)
	const tripped, later, busy = upKey, "provider/p/later", "provider/p/busy"
	o := nodeOpts{keys: []string{tripped, later, busy}}
	nodes := []*node{newNode(t, st.URL(), "a", o), newNode(t, st.URL(), "b", o), newNode(t, st.URL(), "c", o)}
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.startConnected(t)
	}
	if mode := a.c.Status().Mode; mode != "sentinel" {
		t.Errorf("got mode %q; want sentinel", mode)
	}
	trip(t, a.entries[tripped])
	for _, n := range nodes {
		waitUntil(t, 5*time.Second, "the trip to reach "+n.c.Replica(), func() bool { return n.entries[tripped].Status() == breaker.Unavailable })
	}
	// the record reached the replica before the kill (asynchronous
	// replication: a write not yet copied would be lost; see the
	// re-vote and re-push at reconnection for that case)
	redistest.WaitFor(t, 5*time.Second, "the record to reach the Redis replica", func() bool {
		info, _ := redistest.Info(st.Replica.Addr(), "replication")
		pinfo, _ := redistest.Info(st.Primary.Addr(), "replication")
		return offset(info, "slave_repl_offset:") >= offset(pinfo, "master_repl_offset:")
	})
	oldMaster, _ := st.MasterAddr()

	// bounded load: every replica calls the healthy upstream and reads
	// the tripped one; any healthy answer for the tripped one is wrong
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var served, wrong, refused atomic.Int64
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000 && ctx.Err() == nil; i++ {
				if err := n.entries[busy].Call(okCall); err == nil {
					served.Add(1)
				}
				if n.entries[tripped].Call(okCall) == nil {
					wrong.Add(1)
				} else {
					refused.Add(1)
				}
				if i%64 == 0 {
					time.Sleep(time.Millisecond) // pace: about 60k calls a second in all, not a spin
				}
			}
		}()
	}

	killed := time.Now()
	st.Primary.Stop()
	trip(t, b.entries[later]) // during the switch: the write fails, or goes nowhere
	for _, n := range nodes {
		waitUntil(t, 20*time.Second, "b's trip to reach "+n.c.Replica()+" after the fail-over", func() bool {
			return n.entries[later].Status() == breaker.Unavailable
		})
	}
	converged := time.Since(killed)
	cancel()
	wg.Wait()
	newMaster, err := st.MasterAddr()
	if err != nil || newMaster == oldMaster {
		t.Fatalf("got primary %q (%v) after the kill; want the replica %s promoted", newMaster, err, st.Replica.Addr())
	}
	for _, key := range []string{tripped, later} {
		data, err := a.c.Store().GetData(stateName(key))
		rec, derr := decodeRecord(data)
		if err != nil || data == nil || derr != nil || !rec.Open() {
			t.Errorf("new primary: got record %s for %s (%v, %v); want the trip", data, key, err, derr)
		}
	}
	for _, n := range nodes {
		if s := n.entries[tripped].Status(); s != breaker.Unavailable {
			t.Errorf("replica %s: got %v for the tripped upstream after the fail-over; want unavailable", n.c.Replica(), s)
		}
		if s := n.entries[busy].Status(); s != breaker.Healthy {
			t.Errorf("replica %s: got %v for the busy upstream; want healthy", n.c.Replica(), s)
		}
	}
	if wrong.Load() != 0 {
		t.Errorf("%d calls to the tripped upstream were let through during the fail-over; want none", wrong.Load())
	}
	t.Logf("primary %s killed under load; %s promoted; b's trip made during the switch reached every replica %v after the kill; "+
		"%d calls served, %d refused (tripped upstream), %d wrong", oldMaster, newMaster, converged.Round(time.Millisecond),
		served.Load(), refused.Load(), wrong.Load())
}

// offset reads the number after name in an INFO text; -1 when absent.
func offset(info, name string) int64 {
	for _, line := range strings.Split(info, "\n") {
		if len(line) > len(name) && line[:len(name)] == name {
			var n int64
			for _, r := range line[len(name):] {
				if r < '0' || r > '9' {
					break
				}
				n = n*10 + int64(r-'0')
			}
			return n
		}
	}
	return -1
}
