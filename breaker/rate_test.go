package breaker

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/healproxy/healproxy/config"
)

// rateSettings: trip at 50% of at least 10 calls within 30s; a count rule
// of 3 that must not apply.
func rateSettings(cooldown time.Duration) Settings {
	return Settings{ErrorThreshold: 3, Cooldown: cooldown, RecoveryCount: 2,
		TripRule: config.TripRate, FailureRate: 0.5, MinRequests: 10, Window: 30 * time.Second}
}

func newRateEntry(t *testing.T, s Settings) (*Entry, *[]string) {
	t.Helper()
	e, changes := newEntry(t, 3, time.Minute, 2)
	e.SetSettings(s)
	return e, changes
}

func calls(e *Entry, n int, fn func() (time.Duration, error)) {
	for range n {
		e.Call(fn)
	}
}

func wantStatus(t *testing.T, e *Entry, want Status) Snapshot {
	t.Helper()
	s := e.Snapshot()
	if s.Status != want || e.Status() != want {
		t.Fatalf("got status %v (Status() %v); want %v (reason %q)", s.Status, e.Status(), want, s.Reason)
	}
	return s
}

func TestRateTripsAtTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newRateEntry(t, rateSettings(time.Minute))
		calls(e, 5, ok)
		calls(e, 4, fail) // 4 of 9: below min_requests, and past the count rule's 3
		wantStatus(t, e, Healthy)
		calls(e, 1, fail) // 5 of 10 = 50%
		s := wantStatus(t, e, Unavailable)
		want := "failure rate 50% of 10 calls in 30s ≥ 50%; cooling down until "
		if !strings.HasPrefix(s.Reason, want) {
			t.Fatalf("got reason %q; want it to start with %q", s.Reason, want)
		}
		if !s.CooldownUntil.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("got cooldown until %v; want %v", s.CooldownUntil, time.Now().Add(time.Minute))
		}
	})
}

func TestRateBelowTheRateDoesNotTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newRateEntry(t, rateSettings(time.Minute))
		for range 5 { // 2 of 3 succeed: 33%, degraded (≥ 25%) but never tripped
			calls(e, 2, ok)
			calls(e, 1, fail)
		}
		s := wantStatus(t, e, Degraded)
		if want := "failure rate 33% of 15 calls in 30s ≥ 25% (half of failure_rate 50%); unavailable at 50%"; s.Reason != want {
			t.Fatalf("got reason %q; want %q", s.Reason, want)
		}
	})
}

func TestRateNotBelowMinRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newRateEntry(t, rateSettings(time.Minute))
		calls(e, 9, fail)
		s := wantStatus(t, e, Healthy)
		if want := "answering; 9 calls in 30s, below min_requests 10"; s.Reason != want {
			t.Fatalf("got reason %q; want %q", s.Reason, want)
		}
		calls(e, 1, fail)
		wantStatus(t, e, Unavailable)
	})
}

func TestRateOldCallsLeaveTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, changes := newRateEntry(t, rateSettings(time.Minute))
		calls(e, 6, ok)
		calls(e, 4, fail) // 40% of 10: degraded
		wantStatus(t, e, Degraded)
		time.Sleep(20 * time.Second)
		calls(e, 9, fail) // 13 of 19 = 68%, but the first 10 are still in
		wantStatus(t, e, Unavailable)

		e.Reset()
		calls(e, 9, fail)
		time.Sleep(31 * time.Second) // they left the window
		calls(e, 1, fail)
		s := wantStatus(t, e, Healthy)
		if !strings.Contains(s.Reason, "1 calls in 30s, below min_requests 10") {
			t.Fatalf("got reason %q; want the old calls gone", s.Reason)
		}
		calls(e, 8, fail)
		wantStatus(t, e, Healthy)
		calls(e, 1, fail)
		wantStatus(t, e, Unavailable)

		// a degraded mark that time alone ends: Poll reports it
		e.Reset()
		calls(e, 7, ok)
		calls(e, 3, fail)
		wantStatus(t, e, Degraded)
		time.Sleep(31 * time.Second)
		*changes = nil
		e.Poll()
		wantStatus(t, e, Healthy)
		if len(*changes) != 1 || (*changes)[0] != "degraded->healthy" {
			t.Fatalf("got changes %v; want [degraded->healthy]", *changes)
		}
	})
}

func TestRateHalfOpenAndBackoffUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const C = time.Minute
		s := rateSettings(C)
		s.CooldownMultiplier, s.StablePeriod = 2, time.Hour
		e, _ := newRateEntry(t, s)
		calls(e, 10, fail)
		wantStatus(t, e, Unavailable)
		if err := e.Call(ok); err != ErrCooldown {
			t.Fatalf("got %v during the cooldown; want ErrCooldown", err)
		}
		time.Sleep(C + time.Nanosecond)
		// half-open: a failed trial trips again, with the cooldown grown ×2
		calls(e, 1, fail)
		snap := wantStatus(t, e, Unavailable)
		if want := time.Now().Add(2 * C); !snap.CooldownUntil.Equal(want) {
			t.Fatalf("got cooldown until %v; want %v (grown ×2)", snap.CooldownUntil, want)
		}
		if !strings.HasPrefix(snap.Reason, "a recovery trial failed") {
			t.Fatalf("got reason %q; want a failed trial", snap.Reason)
		}
		time.Sleep(2*C + time.Nanosecond)
		calls(e, 1, ok)
		wantStatus(t, e, Degraded) // 1 of R=2 trials
		calls(e, 1, ok)
		wantStatus(t, e, Healthy)
		// closed again with an empty window: one failure is not a rate
		calls(e, 1, fail)
		snap = wantStatus(t, e, Healthy)
		if !strings.Contains(snap.Reason, "1 calls in 30s") {
			t.Fatalf("got reason %q; want a window emptied on recovery", snap.Reason)
		}
		// the next trip within the stable period: the third, ×4
		calls(e, 9, fail)
		snap = wantStatus(t, e, Unavailable)
		if want := time.Now().Add(4 * C); !snap.CooldownUntil.Equal(want) {
			t.Fatalf("got cooldown until %v; want %v (grown ×4)", snap.CooldownUntil, want)
		}
		if !strings.Contains(snap.Reason, "(trip 3 since it was last stable") {
			t.Fatalf("got reason %q; want the backoff named", snap.Reason)
		}
	})
}

func TestRateReloadCountToRateAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 3, time.Minute, 2)
		count := e.Settings()
		calls(e, 2, fail)
		wantStatus(t, e, Degraded) // count rule: 2 >= 3/2
		e.SetSettings(rateSettings(time.Minute))
		wantStatus(t, e, Healthy) // rate rule: no calls in its window yet
		calls(e, 9, fail)
		wantStatus(t, e, Healthy) // 9 < min_requests, though error_count is 11
		e.SetSettings(count)
		wantStatus(t, e, Degraded)
		calls(e, 1, fail)
		s := wantStatus(t, e, Unavailable)
		if !strings.HasPrefix(s.Reason, "error_count reached error_threshold 3") {
			t.Fatalf("got reason %q; want the count rule's", s.Reason)
		}
		// and to the rate again, while open: the cooldown stands
		e.SetSettings(rateSettings(time.Minute))
		wantStatus(t, e, Unavailable)

		// a rule changed starts an empty window
		e.Reset()
		calls(e, 9, fail)
		e.SetSettings(count)
		e.SetSettings(rateSettings(time.Minute))
		calls(e, 1, fail)
		wantStatus(t, e, Healthy)
	})
}

func TestRateObserveModeCountsRefusedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := rateSettings(time.Minute)
		s.Observe = true
		e, _ := newRateEntry(t, s)
		calls(e, 10, fail)
		wantStatus(t, e, Unavailable)
		ran := 0
		e.Call(func() (time.Duration, error) { ran++; return 0, nil })
		if ran != 1 {
			t.Fatal("observe mode refused a call")
		}
	})
}

func TestRateProbeFailureCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newRateEntry(t, rateSettings(time.Minute))
		calls(e, 9, fail)
		e.Probe(false, &Failure{Kind: KindStatus, Message: "health check answered 500"})
		wantStatus(t, e, Unavailable)
	})
}

func TestRateSharedTripReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newRateEntry(t, rateSettings(time.Minute))
		var got []Trip
		e.SetShared(&SharedHooks{Tripped: func(_ *Entry, tr Trip) { got = append(got, tr) }})
		calls(e, 10, fail)
		if len(got) != 1 || got[0].Reason != "failure rate 100% of 10 calls in 30s ≥ 50%" {
			t.Fatalf("got trips %+v; want one naming the rate", got)
		}
		if v := e.SharedView(); v.Reason != got[0].Reason {
			t.Fatalf("got shared view reason %q; want %q", v.Reason, got[0].Reason)
		}
	})
}

func TestSettingsOfRate(t *testing.T) {
	h := config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2,
		TripRule: config.TripRate, FailureRate: 0.25, MinRequests: 40, Window: time.Minute}
	s := SettingsOf(h)
	if s.TripRule != config.TripRate || s.FailureRate != 0.25 || s.MinRequests != 40 || s.Window != time.Minute {
		t.Fatalf("got %+v; want the rate rule's settings", s)
	}
	h.TripRule = ""
	if s := SettingsOf(h); s.TripRule != "" || s.MinRequests != 0 {
		t.Fatalf("got %+v; want the count rule without rate settings", s)
	}
	// zero values take config's defaults
	n := Settings{Cooldown: time.Second, TripRule: config.TripRate}.normalized()
	if n.FailureRate != config.DefaultFailureRate || n.MinRequests != config.DefaultMinRequests || n.Window != config.DefaultTripWindow {
		t.Fatalf("got %+v; want config's defaults", n)
	}
}

func BenchmarkCallSuccessRate(b *testing.B) {
	s := rateSettings(time.Minute)
	e := New("bench", s, Options{})
	for b.Loop() {
		e.Call(ok)
	}
}
