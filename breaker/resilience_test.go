package breaker

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestCooldownBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New("b", Settings{ErrorThreshold: 1, Cooldown: time.Minute, RecoveryCount: 1,
			CooldownMultiplier: 2, MaxCooldown: 5 * time.Minute, StablePeriod: time.Hour}, Options{PreciseStamps: true})
		tripAndWant := func(want time.Duration) {
			t.Helper()
			e.Call(fail)
			s := e.Snapshot()
			if got := time.Until(s.CooldownUntil); s.Status != Unavailable || got != want {
				t.Fatalf("got cooldown %v (%v); want %v", got, s.Status, want)
			}
		}
		tripAndWant(time.Minute) // first trip: the configured cooldown
		time.Sleep(time.Minute + time.Nanosecond)
		tripAndWant(2 * time.Minute) // a failed trial: grown
		time.Sleep(2*time.Minute + time.Nanosecond)
		e.Call(ok)                   // recovered…
		tripAndWant(4 * time.Minute) // …but trips again right after: grown again
		time.Sleep(4*time.Minute + time.Nanosecond)
		tripAndWant(5 * time.Minute) // capped
		time.Sleep(5*time.Minute + time.Nanosecond)
		e.Call(ok)
		time.Sleep(time.Hour) // stable for StablePeriod: the multiplier resets
		tripAndWant(time.Minute)
	})
}

func TestPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 3, time.Minute, 1)
		e.Call(ok)
		until := time.Now().Add(30 * time.Second)
		e.Pause(until, "429 with Retry-After: 30")
		s := wantState(t, e, Unavailable, 0) // not a failure
		if !s.PausedUntil.Equal(until) || s.Reason[:12] != "rate_limited" || !s.NextTrialAt.Equal(until) {
			t.Fatalf("got %+v", s)
		}
		if err := e.Call(ok); err != ErrPaused {
			t.Fatalf("got %v; want ErrPaused", err)
		}
		if b, ok := e.BlockedUntil(); !ok || !b.Equal(until) {
			t.Fatalf("BlockedUntil %v %v", b, ok)
		}
		e.Pause(until.Add(-10*time.Second), "shorter") // never shortens
		if s := e.Snapshot(); !s.PausedUntil.Equal(until) {
			t.Fatalf("a shorter pause shortened it: %v", s.PausedUntil)
		}
		e.Pause(until.Add(10*time.Second), "longer") // extends
		time.Sleep(40*time.Second + time.Nanosecond)
		wantState(t, e, Healthy, 0)
		if err := e.Call(ok); err != nil {
			t.Fatalf("after the pause: %v", err)
		}
		// a pause survives a restart
		e.Pause(time.Now().Add(time.Minute), "again")
		f, _ := newEntry(t, 3, time.Minute, 1)
		f.Restore(e.Export())
		if _, _, ok := f.PausedUntil(); !ok {
			t.Fatal("pause not restored")
		}
	})
}

func TestObserveNeverRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New("o", Settings{ErrorThreshold: 2, Cooldown: time.Minute, RecoveryCount: 1, Observe: true}, Options{PreciseStamps: true})
		e.Call(fail)
		e.Call(fail)
		wantState(t, e, Unavailable, 2)
		ran := 0
		for range 3 {
			e.Call(func() (time.Duration, error) { ran++; return 0, nil })
		}
		if ran != 3 {
			t.Fatalf("observe mode ran %d of 3 calls during the cooldown", ran)
		}
		if s := e.Snapshot(); s.SuccessCount != 3 || s.Status != Unavailable {
			t.Fatalf("got %+v; want the calls counted and the status still tracked", s)
		}
	})
}

func TestProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 2, time.Hour, 1)
		e.Probe(false, &Failure{Kind: KindConnect, Message: "refused"})
		s := wantState(t, e, Degraded, 1)
		if s.SuccessCount != 0 || s.LastProbe == nil || s.LastProbe.OK {
			t.Fatalf("got %+v", s)
		}
		e.Probe(true, nil)
		if s := e.Snapshot(); s.ErrorCount != 0 || s.SuccessCount != 0 {
			t.Fatalf("a passing probe: %+v; want error_count 0 and no success counted", s)
		}
		e.Probe(false, nil)
		e.Probe(false, nil) // trips
		wantState(t, e, Unavailable, 2)
		e.Probe(false, nil) // during the cooldown: nothing
		wantState(t, e, Unavailable, 2)
		e.Probe(true, nil) // ends the cooldown early
		time.Sleep(2 * time.Nanosecond)
		s = e.Snapshot()
		if s.Status != Degraded || s.InCooldown || !s.HalfOpen {
			t.Fatalf("after a passing probe in the cooldown: %+v", s)
		}
		if err := e.Call(ok); err != nil {
			t.Fatal(err)
		}
		wantState(t, e, Healthy, 0)
		// not when an operator forced it open
		e.ForceOpen(time.Time{}, "ops")
		e.Probe(true, nil)
		wantState(t, e, Unavailable, 0)
	})
}
