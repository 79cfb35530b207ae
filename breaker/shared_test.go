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

// recorder collects what SharedHooks report.
type recorder struct {
	mu     sync.Mutex
	trips  []Trip
	closes int
	gens   []int64
	admit  bool
}

func (r *recorder) hooks() *SharedHooks {
	return &SharedHooks{
		Tripped: func(_ *Entry, t Trip) { r.mu.Lock(); r.trips = append(r.trips, t); r.mu.Unlock() },
		Closed:  func(*Entry, time.Time) { r.mu.Lock(); r.closes++; r.mu.Unlock() },
		TrialGate: func(_ *Entry, gen int64) bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.gens = append(r.gens, gen)
			return r.admit
		},
	}
}

func TestSharedHooksReportOwnTripsAndRecoveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const T, C, R = 2, time.Minute, 2
		e, _ := newEntry(t, T, C, R)
		rec := &recorder{admit: true}
		e.SetShared(rec.hooks())

		e.Call(fail)
		e.Call(fail)
		if len(rec.trips) != 1 {
			t.Fatalf("got %d trips reported; want 1", len(rec.trips))
		}
		tr := rec.trips[0]
		if want := time.Now().Add(C); !tr.Until.Equal(want) || !strings.Contains(tr.Reason, "error_threshold 2") || tr.ErrorCount != 2 {
			t.Fatalf("got trip %+v; want until %v, a threshold reason, error_count 2", tr, want)
		}
		if len(rec.gens) != 0 {
			t.Fatalf("the gate was asked during the cooldown (%v); want it asked only after", rec.gens)
		}
		time.Sleep(C + time.Second)
		e.Call(ok)
		e.Call(ok)
		if rec.closes != 1 {
			t.Fatalf("got %d recoveries reported; want 1", rec.closes)
		}
		if len(rec.gens) != 2 || rec.gens[0] != tr.Until.UnixNano() || rec.gens[1] != tr.Until.UnixNano() {
			t.Fatalf("got gate calls %v; want two, for generation %d", rec.gens, tr.Until.UnixNano())
		}
		// closed: the gate is never asked
		e.Call(ok)
		if len(rec.gens) != 2 {
			t.Fatalf("the gate was asked while closed")
		}
		// a failed trial is reported as such
		e.Call(fail)
		e.Call(fail)
		time.Sleep(2 * C)
		e.Call(fail)
		if len(rec.trips) != 3 || rec.trips[2].Reason != "a recovery trial failed" {
			t.Fatalf("got trips %+v; want a third, a failed trial", rec.trips)
		}
		e.Reset()
		if rec.closes != 2 {
			t.Fatalf("a Reset was not reported as a recovery")
		}
	})
}

func TestTrialGateRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 1, time.Minute, 1)
		rec := &recorder{admit: false}
		e.SetShared(rec.hooks())
		e.Call(fail)
		time.Sleep(2 * time.Minute)
		ran := false
		if err := e.Call(func() (time.Duration, error) { ran = true; return 0, nil }); err != ErrTrialsBusy || ran {
			t.Fatalf("got %v (ran %v); want ErrTrialsBusy without running", err, ran)
		}
		rec.admit = true
		if err := e.Call(ok); err != nil {
			t.Fatalf("got %v; want the trial admitted", err)
		}
		wantState(t, e, Healthy, 0)
	})
}

func TestApplyTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, changes := newEntry(t, 3, time.Minute, 2)
		rec := &recorder{admit: true}
		e.SetShared(rec.hooks())
		e.Call(ok)
		until := time.Now().Add(90 * time.Second)
		if !e.ApplyTrip(until, time.Now(), "b") {
			t.Fatal("ApplyTrip on a healthy entry changed nothing")
		}
		s := wantState(t, e, Unavailable, 0)
		if !s.CooldownUntil.Equal(until) || !strings.HasPrefix(s.Reason, "tripped on replica b;") {
			t.Fatalf("got cooldown %v reason %q; want %v and the replica named", s.CooldownUntil, s.Reason, until)
		}
		if len(rec.trips) != 0 {
			t.Fatal("an applied trip was reported as the entry's own")
		}
		if got := (*changes)[len(*changes)-1]; got != "healthy->unavailable" {
			t.Fatalf("got change %q; want healthy->unavailable", got)
		}
		if err := e.Call(ok); err != ErrCooldown {
			t.Fatalf("got %v; want ErrCooldown", err)
		}
		// an earlier end changes nothing; a later one extends
		if e.ApplyTrip(until.Add(-time.Second), time.Now(), "c") {
			t.Fatal("a shorter trip shortened the cooldown")
		}
		if !e.ApplyTrip(until.Add(time.Second), time.Now(), "c") {
			t.Fatal("a longer trip did not extend the cooldown")
		}
		v := e.SharedView()
		if !v.Open || !v.Until.Equal(until.Add(time.Second)) || v.Remote != "c" {
			t.Fatalf("got view %+v; want open until the later end, from c", v)
		}
		// an operator's decision stands
		e.ForceOpen(time.Time{}, "maintenance")
		if e.ApplyTrip(until.Add(time.Hour), time.Now(), "b") || e.ApplyClose(time.Now()) {
			t.Fatal("a remote change overrode an operator's forced open")
		}
	})
}

func TestApplyClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 2, time.Minute, 2)
		rec := &recorder{admit: true}
		e.SetShared(rec.hooks())
		before := time.Now()
		time.Sleep(time.Second)
		e.Call(fail)
		e.Call(fail)
		if e.ApplyClose(before) {
			t.Fatal("a recovery older than the trip closed the entry")
		}
		time.Sleep(time.Second)
		if !e.ApplyClose(time.Now()) {
			t.Fatal("a newer recovery did not close the entry")
		}
		wantState(t, e, Healthy, 0)
		if rec.closes != 0 {
			t.Fatal("an applied recovery was reported as the entry's own")
		}
		if e.ApplyClose(time.Now()) {
			t.Fatal("closing a closed entry reported a change")
		}
		// a trip older than the recovery is stale
		if e.ApplyTrip(time.Now().Add(time.Minute), before, "b") {
			t.Fatal("a trip older than the recovery was applied")
		}
		if err := e.Call(ok); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRestoredTripDoesNotBlockRemoteClose: a trip restored from the state
// file has no known time, so the cluster's newer recovery wins.
func TestRestoredTripDoesNotBlockRemoteClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := newEntry(t, 2, time.Minute, 2)
		e.Restore(State{Called: true, ErrorCount: 2, Open: true, CooldownUntil: time.Now().Add(time.Minute)})
		wantState(t, e, Unavailable, 2)
		if !e.ApplyClose(time.Now().Add(-time.Hour)) {
			t.Fatal("a restored trip refused the cluster's recovery")
		}
		wantState(t, e, Healthy, 0)
	})
}

func TestStatusTextRoundTrip(t *testing.T) {
	for _, s := range []Status{Unknown, Healthy, Degraded, Unavailable} {
		b, _ := s.MarshalText()
		var got Status
		if err := got.UnmarshalText(b); err != nil || got != s {
			t.Errorf("got %v, %v from %q; want %v", got, err, b, s)
		}
	}
	var s Status
	if s.UnmarshalText([]byte("fine")) == nil {
		t.Error("an unknown status decoded without error")
	}
}

// TestApplyTripShowsOnlyTheAppliedTrip: while ApplyTrip runs, a reader on
// another goroutine never sees the entry cooling down until anything but
// the applied end, nor for any reason but the other replica's trip. (The
// gobreaker transition that ApplyTrip drives used to show, for a moment,
// a local trip: this entry's own cooldown and the threshold as the reason.)
func TestApplyTripShowsOnlyTheAppliedTrip(t *testing.T) {
	type applied struct {
		e     *Entry
		until time.Time
	}
	var cur atomic.Pointer[applied]
	stop := make(chan struct{})
	bad := make(chan string, 1)
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			a := cur.Load()
			if a == nil {
				continue
			}
			e, want := a.e, a.until
			if got, cooling := e.CooldownUntil(); cooling && !got.Equal(want) {
				select {
				case bad <- "cooling down until " + got.String() + "; want " + want.String():
				default:
				}
				return
			}
			if s := e.Snapshot(); s.InCooldown && (!s.CooldownUntil.Equal(want) || !strings.HasPrefix(s.Reason, "tripped on replica b;")) {
				select {
				case bad <- "snapshot until " + s.CooldownUntil.String() + " reason " + s.Reason + "; want " + want.String() + " and replica b named":
				default:
				}
				return
			}
		}
	})
	defer func() { close(stop); reader.Wait() }()
	for i := range 2000 {
		e := New("e", Settings{ErrorThreshold: 2, Cooldown: time.Minute, RecoveryCount: 2}, Options{PreciseStamps: true})
		u := time.Now().Add(time.Hour)
		cur.Store(&applied{e, u})
		runtime.Gosched() // let the reader look at the closed entry first
		if !e.ApplyTrip(u, time.Now(), "b") {
			t.Fatalf("run %d: ApplyTrip on a fresh entry changed nothing", i)
		}
		select {
		case msg := <-bad:
			t.Fatalf("run %d: a reader saw %s", i, msg)
		default:
		}
	}
}
