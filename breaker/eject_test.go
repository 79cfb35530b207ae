package breaker

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestEjectCoolsDownAndRecoversThroughTrials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const C = time.Minute
		e, changes := newEntry(t, 3, C, 2)
		e.SetSettings(Settings{ErrorThreshold: 3, Cooldown: C, RecoveryCount: 2, CooldownMultiplier: 2, StablePeriod: time.Hour})
		calls(e, 3, ok)
		if !e.Eject("p90 latency 310ms > 3 × peers' median 12ms") {
			t.Fatal("Eject refused a closed entry")
		}
		s := wantStatus(t, e, Unavailable)
		want := "ejected: p90 latency 310ms > 3 × peers' median 12ms; cooling down until "
		if !strings.HasPrefix(s.Reason, want) || !e.Ejected() {
			t.Fatalf("got reason %q (ejected %v); want it to start with %q", s.Reason, e.Ejected(), want)
		}
		if !s.CooldownUntil.Equal(time.Now().Add(C)) || s.ErrorCount != 0 {
			t.Fatalf("got cooldown until %v, error_count %d; want %v and 0", s.CooldownUntil, s.ErrorCount, time.Now().Add(C))
		}
		if err := e.Call(ok); err != ErrCooldown {
			t.Fatalf("got %v; want ErrCooldown while ejected", err)
		}
		if e.Eject("again") {
			t.Fatal("Eject ejected an entry already cooling down")
		}
		time.Sleep(C + time.Nanosecond)
		if e.Ejected() {
			t.Fatal("still ejected after the cooldown")
		}
		calls(e, 2, ok) // R trials
		wantStatus(t, e, Healthy)

		// ejected again before it was stable: the cooldown grows like a trip's
		e.Eject("failure percentage 60% ≥ 50%")
		s = wantStatus(t, e, Unavailable)
		if !s.CooldownUntil.Equal(time.Now().Add(2 * C)) {
			t.Fatalf("got cooldown until %v; want %v (grown ×2)", s.CooldownUntil, time.Now().Add(2*C))
		}
		if !strings.Contains(s.Reason, "ejected: failure percentage 60% ≥ 50%; cooling down until") ||
			!strings.Contains(s.Reason, "trip 2 since it was last stable") {
			t.Fatalf("got reason %q", s.Reason)
		}
		want2 := []string{"unknown->healthy", "healthy->unavailable", "unavailable->degraded", "degraded->healthy", "healthy->unavailable"}
		if strings.Join(*changes, " ") != strings.Join(want2, " ") {
			t.Fatalf("got changes %v; want %v", *changes, want2)
		}
		// it survives a restart with its reason
		st := e.Export()
		r, _ := newEntry(t, 3, C, 2)
		r.Restore(st)
		if rs := r.Snapshot(); !strings.HasPrefix(rs.Reason, "ejected: failure percentage 60% ≥ 50%") || rs.Status != Unavailable {
			t.Fatalf("restored: got %v, reason %q", rs.Status, rs.Reason)
		}
	})
}

func TestEjectRefusesHeldAndOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 1, time.Minute, 1)
		e.Hold("plugin exited")
		if e.Eject("x") {
			t.Fatal("Eject ejected a held entry")
		}
		e.Release()
		e.Call(fail)
		if e.Eject("x") {
			t.Fatal("Eject ejected an open entry")
		}
		if s := e.Snapshot(); !strings.HasPrefix(s.Reason, "error_count reached") {
			t.Fatalf("got reason %q; want the trip's own", s.Reason)
		}
	})
}

// Calls that passed the entry's refusal just before an ejection reach
// gobreaker after it and make it half-open: the entry must still show
// unavailable and must not count their failures as failed recovery trials
// (a grown cooldown).
func TestEjectUnderConcurrentFailures(t *testing.T) {
	for round := range 10 {
		e := New("race", Settings{ErrorThreshold: 1 << 30, Cooldown: time.Minute, RecoveryCount: 1,
			CooldownMultiplier: 2, StablePeriod: time.Hour}, Options{})
		var wg sync.WaitGroup
		var n atomic.Int64
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						n.Add(1)
						e.Call(fail)
					}
				}
			})
		}
		for n.Load() < 50 {
			runtime.Gosched()
		}
		e.Eject("x")
		for start := n.Load(); n.Load() < start+200; {
			runtime.Gosched()
		}
		close(stop)
		wg.Wait()
		s := e.Snapshot()
		if s.Status != Unavailable || e.Status() != Unavailable || s.Reason[:11] != "ejected: x;" || e.trips.Load() != 1 {
			t.Fatalf("round %d: got %v (Status() %v), reason %q, %d trips; want unavailable, ejected, 1 trip",
				round, s.Status, e.Status(), s.Reason, e.trips.Load())
		}
	}
}
