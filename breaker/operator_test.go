package breaker

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestForceOpenWithTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 3, time.Minute, 2)
		e.Call(ok)
		until := time.Now().Add(10 * time.Minute) // longer than the cooldown: the operator's word counts
		e.ForceOpen(until, "vendor maintenance")
		s := wantState(t, e, Unavailable, 0)
		if !s.InCooldown || !s.CooldownUntil.Equal(until) || s.Forced != "vendor maintenance" {
			t.Fatalf("got %+v; want forced open until %v", s, until)
		}
		if err := e.Call(ok); err != ErrCooldown {
			t.Fatalf("got %v; want ErrCooldown while forced open", err)
		}
		time.Sleep(10*time.Minute + time.Nanosecond)
		if s := e.Snapshot(); s.Status != Degraded || !s.HalfOpen {
			t.Fatalf("after the TTL: %+v; want half-open", s)
		}
		e.Call(ok)
		e.Call(ok)
		wantState(t, e, Healthy, 0)
		// a later ordinary trip is not the operator's doing
		for range 3 {
			e.Call(fail)
		}
		if s := wantState(t, e, Unavailable, 3); s.Forced != "" || !s.CooldownUntil.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("an ordinary trip after an expired force-open: %+v", s)
		}
	})
}

func TestForceOpenIndefiniteAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 3, time.Minute, 1)
		e.ForceOpen(time.Time{}, "suspected bad data")
		time.Sleep(1000 * time.Hour)
		s := wantState(t, e, Unavailable, 0)
		if !s.InCooldown || !s.CooldownUntil.IsZero() || s.Reason != "forced open by an operator until resumed: suspected bad data" {
			t.Fatalf("got %+v", s)
		}
		if _, ok := e.CooldownUntil(); !ok {
			t.Fatal("CooldownUntil says not cooling down")
		}
		e.Resume()
		s = e.Snapshot()
		if s.Status != Degraded || !s.HalfOpen || s.Forced != "" {
			t.Fatalf("after Resume: %+v; want half-open, not forced", s)
		}
		// a failed trial after a resume is an ordinary trip with the configured cooldown
		e.Call(fail)
		s = wantState(t, e, Unavailable, 1)
		if !s.CooldownUntil.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("got cooldown until %v; want the configured minute", s.CooldownUntil)
		}
	})
}

func TestResumeEndsAnOrdinaryCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 1, time.Hour, 1)
		e.Call(fail)
		wantState(t, e, Unavailable, 1)
		e.Resume()
		// gobreaker's own open timeout (a nanosecond) must be strictly over;
		// with the fake clock standing still it would not be.
		time.Sleep(2 * time.Nanosecond)
		if err := e.Call(ok); err != nil {
			t.Fatalf("trial after Resume: %v", err)
		}
		wantState(t, e, Healthy, 0)
		e.Resume() // not cooling down: nothing happens
		wantState(t, e, Healthy, 0)
	})
}

func TestExportRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newEntry(t, 3, time.Minute, 2)
		a.Call(ok)
		a.Call(ok)
		for range 3 {
			a.Call(fail)
		}
		st := a.Export()
		if !st.Open || st.ErrorCount != 3 || st.SuccessCount != 2 || len(st.RecentFailures) != 3 {
			t.Fatalf("got %+v", st)
		}
		time.Sleep(20 * time.Second) // the restart

		b, changes := newEntry(t, 3, time.Minute, 2)
		b.Restore(st)
		s := wantState(t, b, Unavailable, 3)
		if !s.CooldownUntil.Equal(st.CooldownUntil) || s.SuccessCount != 2 || s.LastErrorMessage != errBoom.Message || len(s.RecentFailures) != 3 {
			t.Fatalf("restored %+v; want the same cooldown_until %v and counters", s, st.CooldownUntil)
		}
		if got := *changes; len(got) != 1 || got[0] != "unknown->unavailable" {
			t.Fatalf("got changes %v", got)
		}
		if err := b.Call(ok); err != ErrCooldown {
			t.Fatalf("got %v; want the restored cooldown to refuse", err)
		}
		time.Sleep(40*time.Second + time.Nanosecond) // the rest of the original minute
		b.Call(ok)
		b.Call(ok)
		wantState(t, b, Healthy, 0)

		// a healthy entry, a half-open one, and a forced one
		c, _ := newEntry(t, 3, time.Minute, 2)
		c.Restore(b.Export())
		wantState(t, c, Healthy, 0)

		b.Call(fail)
		b.Call(fail)
		b.Call(fail)
		time.Sleep(time.Minute + time.Nanosecond)
		d, _ := newEntry(t, 3, time.Minute, 2)
		d.Restore(b.Export())
		if s := d.Snapshot(); s.Status != Degraded || !s.HalfOpen {
			t.Fatalf("restored a cooled-down entry as %+v; want half-open", s)
		}

		b.ForceOpen(time.Time{}, "hold")
		f, _ := newEntry(t, 3, time.Minute, 2)
		f.Restore(b.Export())
		if s := f.Snapshot(); s.Status != Unavailable || s.Forced != "hold" || !s.CooldownUntil.IsZero() {
			t.Fatalf("restored a forced entry as %+v", s)
		}
	})
}

func TestLastHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 2, 10*time.Minute, 1)
		lat := func(d time.Duration, err error) func() (time.Duration, error) {
			return func() (time.Duration, error) { return d, err }
		}
		for range 90 {
			e.Call(lat(3*time.Millisecond, nil)) // bucket [2.048, 4.096) ms
		}
		for range 8 {
			e.Call(lat(100*time.Millisecond, nil)) // [65.5, 131) ms
		}
		e.Call(lat(time.Second, errBoom))
		e.Call(lat(time.Second, errBoom)) // unavailable from now, for 10 minutes
		time.Sleep(10*time.Minute + time.Nanosecond)
		e.Poll() // cooldown over: no longer unavailable
		r := e.LastHour()
		if r.Requests != 100 || r.Errors != 2 || r.SuccessRate != 0.98 {
			t.Fatalf("got %+v", r)
		}
		if r.P50MS != 4.096 || r.P95MS != 131.072 {
			t.Fatalf("got p50 %v p95 %v; want the upper edges 4.096 and 131.072", r.P50MS, r.P95MS)
		}
		if r.UnavailableSecs != 600 {
			t.Fatalf("got %v s unavailable; want 600", r.UnavailableSecs)
		}
		time.Sleep(time.Hour)
		if r := e.LastHour(); r.Requests != 0 || r.UnavailableSecs != 0 || r.SuccessRate != 1 {
			t.Fatalf("an hour later: %+v; want nothing left", r)
		}
	})
}
