package breaker

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var errBoom = &Failure{Kind: KindStatus, StatusCode: 500, Message: "upstream answered 500"}

func ok() (time.Duration, error)   { return time.Millisecond, nil }
func fail() (time.Duration, error) { return 2 * time.Millisecond, errBoom }

// newEntry must run inside the synctest bubble: gobreaker reads time.Now.
func newEntry(t *testing.T, threshold int, cooldown time.Duration, recovery int) (*Entry, *[]string) {
	t.Helper()
	var changes []string
	var mu sync.Mutex
	e := New("test", Settings{ErrorThreshold: threshold, Cooldown: cooldown, RecoveryCount: recovery},
		Options{OnChange: func(_ *Entry, from, to Status) {
			mu.Lock()
			changes = append(changes, from.String()+"->"+to.String())
			mu.Unlock()
		}, PreciseStamps: true})
	return e, &changes
}

func wantState(t *testing.T, e *Entry, status Status, errors int64) Snapshot {
	t.Helper()
	s := e.Snapshot()
	if s.Status != status || s.ErrorCount != errors {
		t.Fatalf("got status %v error_count %d; want %v and %d (reason %q)", s.Status, s.ErrorCount, status, errors, s.Reason)
	}
	return s
}

// TestContractTable walks every row of the state machine's table in
// docs/behaviour.md, in order.
func TestContractTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const T, C, R = 4, time.Minute, 2
		e, changes := newEntry(t, T, C, R)

		// no call yet → unknown
		wantState(t, e, Unknown, 0)

		// success, error_count 0 → healthy
		if err := e.Call(ok); err != nil {
			t.Fatal(err)
		}
		s := wantState(t, e, Healthy, 0)
		if s.SuccessCount != 1 || s.LastSuccess.IsZero() {
			t.Fatalf("success not counted: %+v", s)
		}

		// failure → +1; degraded once error_count >= max(1, T/2) = 2
		if err := e.Call(fail); err != errBoom {
			t.Fatalf("got %v; want the function's own error", err)
		}
		wantState(t, e, Healthy, 1)
		e.Call(fail)
		s = wantState(t, e, Degraded, 2)
		if s.LastErrorMessage != "upstream answered 500" || len(s.RecentFailures) != 2 || s.RecentFailures[0].StatusCode != 500 {
			t.Fatalf("failure details lost: %+v", s)
		}

		// success while not unavailable → −1, status by the rule
		e.Call(ok)
		wantState(t, e, Healthy, 1)
		e.Call(ok)
		e.Call(ok) // not below 0
		wantState(t, e, Healthy, 0)

		// error_count reaches T → unavailable, cooldown_until = now + C
		for range T {
			e.Call(fail)
		}
		start := time.Now()
		s = wantState(t, e, Unavailable, T)
		if !s.InCooldown || !s.CooldownUntil.Equal(start.Add(C)) || !s.NextTrialAt.Equal(start.Add(C)) {
			t.Fatalf("got cooldown %v (in %v); want until %v", s.CooldownUntil, s.InCooldown, start.Add(C))
		}
		// … and calls are refused
		ran := false
		if err := e.Call(func() (time.Duration, error) { ran = true; return 0, nil }); err != ErrCooldown || ran {
			t.Fatalf("got %v (ran %v); want ErrCooldown without running the call", err, ran)
		}

		// cooldown over → half-open, shown degraded, not in cooldown
		time.Sleep(C + time.Nanosecond)
		s = e.Snapshot()
		if s.Status != Degraded || s.InCooldown || !s.HalfOpen {
			t.Fatalf("after the cooldown: %+v; want degraded, half-open, not in cooldown", s)
		}

		// a trial failure → unavailable again, new cooldown
		e.Call(fail)
		s = wantState(t, e, Unavailable, T+1)
		if !s.CooldownUntil.Equal(time.Now().Add(C)) {
			t.Fatalf("got cooldown until %v; want a new one until %v", s.CooldownUntil, time.Now().Add(C))
		}

		// R consecutive trial successes → healthy, error_count 0, no cooldown
		time.Sleep(C + time.Nanosecond)
		e.Call(ok)
		s = e.Snapshot()
		if s.Status != Degraded || s.TrialSuccesses != 1 || s.ErrorCount != T {
			t.Fatalf("after 1 of %d trials: %+v; want degraded, error_count %d (a trial success takes one off)", R, s, T)
		}
		e.Call(ok)
		s = wantState(t, e, Healthy, 0)
		if s.InCooldown || !s.CooldownUntil.IsZero() {
			t.Fatalf("cooldown not cleared: %+v", s)
		}

		// self-heal → healthy, counters reset, cooldown cleared
		for range T {
			e.Call(fail)
		}
		wantState(t, e, Unavailable, T)
		e.Reset()
		s = wantState(t, e, Healthy, 0)
		if s.InCooldown {
			t.Fatal("Reset left a cooldown")
		}
		if err := e.Call(ok); err != nil {
			t.Fatalf("after Reset: %v", err)
		}

		want := []string{"unknown->healthy", "healthy->degraded", "degraded->healthy",
			"healthy->degraded", "degraded->unavailable", "unavailable->degraded", "degraded->healthy",
			"healthy->degraded", "degraded->unavailable", "unavailable->healthy"}
		if got := *changes; !slices.Equal(got, want) {
			t.Fatalf("got changes %v; want %v", got, want)
		}
	})
}

func TestDegradedThreshold(t *testing.T) {
	tests := []struct {
		threshold, degradedAfter int
	}{
		{1, 1}, // T=1: the first failure trips it (checked below)
		{2, 1},
		{3, 1},
		{5, 2},
		{10, 5},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			e, _ := newEntry(t, tt.threshold, time.Minute, 1)
			e.Call(ok)
			for i := 1; i <= tt.threshold; i++ {
				e.Call(fail)
				var want Status
				switch {
				case i >= tt.threshold:
					want = Unavailable
				case i >= tt.degradedAfter:
					want = Degraded
				default:
					want = Healthy
				}
				if got := e.Status(); got != want {
					t.Fatalf("T=%d after %d failures: got %v; want %v", tt.threshold, i, got, want)
				}
			}
		})
	}
}

// TestTrialsAtOnce: at most R trial calls pass at once in half-open.
func TestTrialsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const R = 3
		e, _ := newEntry(t, 1, time.Second, R)
		e.Call(fail)
		time.Sleep(time.Second + time.Nanosecond)

		release := make(chan struct{})
		var admitted, refused atomic.Int32
		var wg sync.WaitGroup
		for range R + 2 {
			wg.Go(func() {
				err := e.Call(func() (time.Duration, error) { admitted.Add(1); <-release; return 0, nil })
				if errors.Is(err, ErrTrialsBusy) {
					refused.Add(1)
				}
			})
		}
		synctest.Wait()
		if admitted.Load() != R || refused.Load() != 2 {
			t.Fatalf("got %d admitted, %d refused; want %d and 2", admitted.Load(), refused.Load(), R)
		}
		close(release)
		wg.Wait()
		if got := e.Status(); got != Healthy {
			t.Fatalf("after %d trial successes: got %v; want healthy", R, got)
		}
	})
}

func TestExcludedCountsForNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 1, time.Second, 1)
		excluded := func() (time.Duration, error) { return 0, Excluded() }
		for range 5 {
			e.Call(excluded)
		}
		s := wantState(t, e, Unknown, 0)
		if s.SuccessCount != 0 {
			t.Fatalf("got success_count %d; want 0", s.SuccessCount)
		}
		// an excluded trial frees its slot and does not end recovery
		e.Call(fail)
		time.Sleep(time.Second + time.Nanosecond)
		e.Call(excluded)
		if err := e.Call(ok); err != nil {
			t.Fatalf("trial after an excluded one: %v", err)
		}
		wantState(t, e, Healthy, 0)
	})
}

func TestPlainErrorIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 1, time.Second, 1)
		e.Call(func() (time.Duration, error) { return 0, errors.New("plain") })
		s := wantState(t, e, Unavailable, 1)
		if s.RecentFailures[0].Kind != KindError || s.LastErrorMessage != "plain" {
			t.Fatalf("got %+v", s.RecentFailures[0])
		}
	})
}

func TestHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, changes := newEntry(t, 4, time.Second, 1)
		e.Call(ok)
		e.Hold("plugin process exited")
		s := wantState(t, e, Unavailable, 0)
		if s.Reason != "plugin process exited" {
			t.Fatalf("got reason %q", s.Reason)
		}
		if err := e.Call(ok); err != ErrHeld {
			t.Fatalf("got %v; want ErrHeld", err)
		}
		e.Fail(&Failure{Kind: KindCrash, Message: "exit status 2"})
		wantState(t, e, Unavailable, 1)
		e.Release()
		wantState(t, e, Healthy, 1)
		if got := *changes; len(got) != 3 || got[1] != "healthy->unavailable" || got[2] != "unavailable->healthy" {
			t.Fatalf("got changes %v", got)
		}
		e.Hold("again")
		e.Reset()
		wantState(t, e, Healthy, 0)
	})
}

func TestHoldFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []Snapshot
		var e *Entry
		e = New("h", Settings{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1}, Options{PreciseStamps: true,
			OnChange: func(*Entry, Status, Status) { seen = append(seen, e.Snapshot()) }})
		e.Call(ok)
		e.HoldFailed("process exited", &Failure{Kind: KindCrash, Message: "exit status 2"})
		s := wantState(t, e, Unavailable, 1)
		if s.Reason != "process exited" || s.LastErrorMessage != "exit status 2" {
			t.Fatalf("got %+v", s)
		}
		last := seen[len(seen)-1]
		if last.Status != Unavailable || last.LastErrorMessage != "exit status 2" {
			t.Fatalf("the change to unavailable was published before the failure was recorded: %+v", last)
		}
	})
}

func TestFailTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 2, time.Second, 1)
		e.Fail(&Failure{Kind: KindCrash, Message: "crashed"})
		e.Fail(&Failure{Kind: KindCrash, Message: "crashed"})
		wantState(t, e, Unavailable, 2)
	})
}

func TestSetSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 5, time.Minute, 1)
		e.Call(fail)
		e.SetSettings(Settings{ErrorThreshold: 2, Cooldown: time.Second, RecoveryCount: 1})
		wantState(t, e, Degraded, 1) // counters kept, new degraded mark 1
		e.Call(fail)
		s := wantState(t, e, Unavailable, 2)
		if !s.CooldownUntil.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("new cooldown not applied: %v", s.CooldownUntil)
		}
	})
}

func TestOnChangeOncePerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, changes := newEntry(t, 2, time.Second, 1)
		e.Call(ok)
		e.Call(ok)
		e.Call(fail) // degraded (mark 1)
		e.Call(fail) // unavailable
		time.Sleep(time.Second + time.Nanosecond)
		e.Poll() // cooldown over: degraded
		e.Poll()
		e.Call(ok) // healthy
		want := []string{"unknown->healthy", "healthy->degraded", "degraded->unavailable", "unavailable->degraded", "degraded->healthy"}
		got := *changes
		if len(got) != len(want) {
			t.Fatalf("got %v; want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("got %v; want %v", got, want)
			}
		}
	})
}

func TestRecentFailuresBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 100, time.Second, 1)
		for i := range 3 * maxFailures {
			e.Call(func() (time.Duration, error) {
				return 0, &Failure{Kind: KindStatus, StatusCode: 500 + i%10, Message: "x"}
			})
		}
		s := e.Snapshot()
		if len(s.RecentFailures) != maxFailures || s.RecentFailures[0].StatusCode != 500+(3*maxFailures-1)%10 {
			t.Fatalf("got %d failures, newest %d", len(s.RecentFailures), s.RecentFailures[0].StatusCode)
		}
		if s.FailureTotal != 3*maxFailures {
			t.Fatalf("got failure total %d", s.FailureTotal)
		}
	})
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Unknown: "unknown", Healthy: "healthy", Degraded: "degraded", Unavailable: "unavailable", 9: "Status(9)"} {
		if s.String() != want {
			t.Errorf("got %q; want %q", s.String(), want)
		}
	}
}

// BenchmarkCallSuccess is the request path's breaker cost: admission plus
// recording a success. It must not allocate.
func BenchmarkCallSuccess(b *testing.B) {
	e := New("bench", Settings{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2}, Options{})
	b.ReportAllocs()
	for b.Loop() {
		e.Call(ok)
	}
}

func BenchmarkCallSuccessParallel(b *testing.B) {
	e := New("bench", Settings{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2}, Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Call(ok)
		}
	})
}

func BenchmarkStatus(b *testing.B) {
	e := New("bench", Settings{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 2}, Options{})
	e.Call(ok)
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Status()
	}
}

func TestHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 100, time.Minute, 1)
		// align to the start of an interval
		time.Sleep(HistoryInterval - time.Duration(time.Now().UnixNano()%int64(HistoryInterval)))
		e.Call(ok)   // 1 ms
		e.Call(fail) // 2 ms
		time.Sleep(HistoryInterval)
		e.Call(ok)
		e.Call(func() (time.Duration, error) { return 0, Excluded() }) // not counted
		pts := e.History()
		if len(pts) != HistoryBuckets {
			t.Fatalf("got %d points; want %d", len(pts), HistoryBuckets)
		}
		prev, cur := pts[len(pts)-2], pts[len(pts)-1]
		if prev.Requests != 2 || prev.Errors != 1 || prev.LatencyMS != 1.5 {
			t.Fatalf("previous interval: got %+v; want 2 requests, 1 error, 1.5 ms", prev)
		}
		if cur.Requests != 1 || cur.Errors != 0 || !cur.Start.Equal(prev.Start.Add(HistoryInterval)) {
			t.Fatalf("current interval: got %+v", cur)
		}
		// a full ring later, old buckets read as empty, not as stale data
		time.Sleep(HistoryBuckets * HistoryInterval)
		for _, p := range e.History() {
			if p.Requests != 0 {
				t.Fatalf("stale bucket after a full ring: %+v", p)
			}
		}
	})
}

func TestSum(t *testing.T) {
	const U, H, D, X = Unknown, Healthy, Degraded, Unavailable
	for _, tc := range []struct {
		in      []Status
		want    Status
		healthy int
	}{
		{nil, U, 0}, {[]Status{U, U}, U, 0}, {[]Status{U, H}, H, 1}, {[]Status{H, X}, D, 1},
		{[]Status{X, U, X}, X, 0}, {[]Status{D, H}, D, 1}, {[]Status{D, D}, D, 0},
	} {
		got, healthy := Sum(len(tc.in), func(i int) Status { return tc.in[i] })
		if got != tc.want || healthy != tc.healthy {
			t.Errorf("Sum(%v) = %v, %d; want %v, %d", tc.in, got, healthy, tc.want, tc.healthy)
		}
	}
}
