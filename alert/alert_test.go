package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// notifyBound is how long one Notify may take at most. Notify takes
// microseconds; the bound only catches one that waits for the network.
const notifyBound = 50 * time.Millisecond

// TestDownSlowUp is the scenario: the webhook is down (503s, then
// a dropped connection), then slow (longer than the client's timeout), then
// up. Every event arrives once, in order, and Notify is never slowed.
func TestDownSlowUp(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, up, down503, down503, reset, slow, slow)
	logger, logs := proxytest.CaptureLogs()
	var sl sleeps
	client := &http.Client{Timeout: 100 * time.Millisecond}
	n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), time.Minute)}, Options{
		Logger: logger, Client: client, MaxAttempts: 10, Sleep: sl.Sleep, Version: "1.2.3",
	})

	var want []string
	var worst time.Duration
	notify := func(i int) {
		e := ev(Unavailable, fmt.Sprintf("p%d", i))
		want = append(want, Unavailable+"/"+e.Key)
		worst = max(worst, timedNotify(n, e))
	}
	notify(0)
	// While the first event is stuck on a slow attempt, queue the rest.
	proxytest.Eventually(t, 10*time.Second, "a slow attempt", func() bool { return rcv.hitCount() >= 4 })
	for i := 1; i < 5; i++ {
		notify(i)
	}
	rcv.waitEvents(len(want))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("got Close error %v; want nil", err)
	}
	got := rcv.events()
	if !reflect.DeepEqual(keys(got), want) {
		t.Errorf("got events %v; want %v, once each, in order", keys(got), want)
	}
	if worst > notifyBound {
		t.Errorf("got a Notify taking %v; want it never to wait for the webhook (bound %v)", worst, notifyBound)
	}
	s := stats(t, n, "ops")
	if s.Sent != 5 || s.Failed != 5 || s.GivenUp != 0 || s.Dropped != 0 || s.Queued != 0 {
		t.Errorf("got stats %+v; want 5 sent after 5 failed attempts, nothing lost", s)
	}
	if got := len(sl.all()); got != 5 {
		t.Errorf("got %d waits between attempts; want 5", got)
	}
	out := logs.String()
	checkNoSecret(t, out)
	if !strings.Contains(out, "webhook="+rcv.srv.URL) || !strings.Contains(out, "attempts=6") {
		t.Errorf("got logs\n%s\nwant the redacted webhook and the delivery after 6 attempts", out)
	}
	if !strings.Contains(out, "timeout") {
		t.Errorf("got logs\n%s\nwant the slow attempts logged as timeouts", out)
	}
}

// TestRefusedThenUp: nothing listens at the webhook's address until the
// first retry.
func TestRefusedThenUp(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	rcv := &receiver{t: t, mode: up, changed: make(chan struct{}, 1), release: make(chan struct{})}
	rcv.srv = httptest.NewUnstartedServer(http.HandlerFunc(rcv.serve))
	var once sync.Once
	var listenErr error
	started := false
	tried := make(chan struct{})
	t.Cleanup(func() {
		close(rcv.release)
		if started {
			rcv.srv.Close()
		} else {
			rcv.srv.Listener.Close()
		}
	})
	startServer := func(ctx context.Context, d time.Duration) error {
		once.Do(func() {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				listenErr = err
				return
			}
			rcv.srv.Listener.Close()
			rcv.srv.Listener = l
			rcv.srv.Start()
			started = true
		})
		select {
		case <-tried:
		default:
			close(tried)
		}
		return ctx.Err()
	}
	u, _ := url.Parse("http://" + addr + secretPath + "?" + secretQuery)
	logger, logs := proxytest.CaptureLogs()
	n := newNotifier(t, []config.Alert{testAlert("ops", u, time.Minute)}, Options{
		Logger: logger, Sleep: startServer, MaxAttempts: 3,
	})
	n.Notify(ev(Unavailable, "p1"))
	n.Notify(ev(Degraded, "p2"))
	select {
	case <-tried:
	case <-time.After(10 * time.Second):
		t.Fatal("got no retry after 10s")
	}
	if listenErr != nil {
		t.Skipf("cannot listen again on %s: %v", addr, listenErr)
	}
	got := rcv.waitEvents(2)
	if want := []string{"unavailable/p1", "degraded/p2"}; !reflect.DeepEqual(keys(got), want) {
		t.Errorf("got %v; want %v", keys(got), want)
	}
	out := logs.String()
	checkNoSecret(t, out)
	if !strings.Contains(out, "connection refused") {
		t.Errorf("got logs\n%s\nwant the refused connection logged", out)
	}
}

// TestNotifyNeverBlocks calls Notify 10,000 times while the webhook hangs.
func TestNotifyNeverBlocks(t *testing.T) {
	noLeaks(t)
	hung := newReceiver(t, slow)
	other := newReceiver(t, up)
	logger, logs := proxytest.CaptureLogs()
	clock := newFakeClock()
	client := &http.Client{Timeout: time.Minute}
	n := New([]config.Alert{
		testAlert("ops", hung.url(), 0, Unavailable),
		testAlert("other", other.url(), 0, ReinitFailed),
	}, Options{Logger: logger, Client: client, Now: clock.Now})
	t.Cleanup(client.CloseIdleConnections)

	// A Notify that waited for the webhook would take the client's timeout
	// (a minute), every one of the ~9,000 after the queue is full. On a
	// loaded machine the scheduler can pause any goroutine for a while, so
	// a few calls over notifyBound are tolerated, none over a second.
	const calls = 10000
	var worst, total time.Duration
	slowCalls := 0
	for i := range calls {
		d := timedNotify(n, ev(Unavailable, fmt.Sprintf("p%d", i)))
		worst = max(worst, d)
		total += d
		if d > notifyBound {
			slowCalls++
		}
		if i == calls/2 {
			n.Notify(Event{Type: ReinitFailed, Kind: KindModel, Key: "m1", Message: "exit status 1"})
		}
	}
	if slowCalls > 5 || worst > time.Second {
		t.Errorf("got %d Notify calls over %v, the slowest %v, with the webhook hung; want (almost) none", slowCalls, notifyBound, worst)
	}
	t.Logf("%d Notify calls: %v in all, %v at worst", calls, total, worst)

	// One slow webhook does not delay another.
	if got := other.waitEvents(1); got[0].Event.Key != "m1" || got[0].Alert != "other" {
		t.Errorf("got %v on the other webhook; want the reinit failure of m1", keys(got))
	}

	proxytest.Eventually(t, 10*time.Second, "the first attempt", func() bool { return hung.hitCount() == 1 })
	s := stats(t, n, "ops")
	if s.Dropped < calls-DefaultQueueSize-1 || s.Dropped+uint64(s.Queued)+1 != calls {
		t.Errorf("got stats %+v; want a full queue of %d, one event in flight and the rest dropped", s, DefaultQueueSize)
	}
	if got := strings.Count(logs.String(), "alert queue full"); got != 1 {
		t.Errorf("got %d queue-full logs; want 1 a minute:\n%s", got, logs.String())
	}
	clock.Add(time.Minute)
	// The first may take the slot of the event in flight; the second is
	// dropped.
	n.Notify(ev(Unavailable, "again"))
	n.Notify(ev(Unavailable, "again2"))
	if got := strings.Count(logs.String(), "alert queue full"); got != 2 {
		t.Errorf("got %d queue-full logs a minute later; want 2", got)
	}

	// Close gives up on the hung webhook when its context ends; whatever
	// was not delivered is counted as dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got Close error %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("got Close taking %v; want it to stop soon after its context ends", d)
	}
	s = stats(t, n, "ops")
	if s.Sent != 0 || s.Dropped != calls+2 || s.Queued != 0 {
		t.Errorf("got stats %+v after Close; want all %d events dropped", s, calls+2)
	}
	if d := timedNotify(n, ev(Unavailable, "late")); d > notifyBound {
		t.Errorf("got a Notify after Close taking %v", d)
	}
	checkNoSecret(t, logs.String())
}

// TestDedupe: the same event of the same entry goes out at most once per
// MinInterval, and the next one says how many were suppressed.
func TestDedupe(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, up)
	clock := newFakeClock()
	t0 := clock.Now()
	n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), time.Minute)}, Options{Now: clock.Now})

	n.Notify(ev(Unavailable, "p1")) // sent
	clock.Add(10 * time.Second)
	n.Notify(ev(Unavailable, "p1")) // suppressed
	clock.Add(10 * time.Second)
	n.Notify(ev(Unavailable, "p1")) // suppressed
	n.Notify(ev(Unavailable, "p2")) // another entry: sent
	other := ev(Unavailable, "p1")
	other.Upstream = "https://p1-mirror.example/api"
	n.Notify(other) // another upstream of the same provider: sent
	clock.Add(40 * time.Second)
	n.Notify(ev(Unavailable, "p1")) // 60s after the first: sent, "2 more"
	clock.Add(30 * time.Second)
	n.Notify(ev(Unavailable, "p1")) // 30s after that: suppressed

	rcv.waitEvents(4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := rcv.events()
	want := []string{"unavailable/p1", "unavailable/p2", "unavailable/p1", "unavailable/p1"}
	if !reflect.DeepEqual(keys(got), want) {
		t.Fatalf("got %v; want %v", keys(got), want)
	}
	if got[2].Event.Upstream != other.Upstream || got[2].Event.Suppressed != 0 {
		t.Errorf("got %+v; want the other upstream's first event", got[2].Event)
	}
	last := got[3]
	if last.Event.Suppressed != 2 || last.Event.SuppressedSince == nil || !last.Event.SuppressedSince.Equal(t0) {
		t.Errorf("got suppressed %d since %v; want 2 since %v", last.Event.Suppressed, last.Event.SuppressedSince, t0)
	}
	if !strings.HasSuffix(last.Text, "(2 more since 12:00:00 UTC)") {
		t.Errorf("got text %q; want it to end with (2 more since 12:00:00 UTC)", last.Text)
	}
	if s := stats(t, n, "ops"); s.Sent != 4 || s.Deduplicated != 3 {
		t.Errorf("got stats %+v; want 4 sent and 3 deduplicated", s)
	}
}

// TestDedupeZeroInterval: MinInterval 0 sends everything.
func TestDedupeZeroInterval(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, up)
	n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), 0)}, Options{Now: newFakeClock().Now})
	for range 3 {
		n.Notify(ev(Unavailable, "p1"))
	}
	if got := rcv.waitEvents(3); len(got) != 3 || got[2].Event.Suppressed != 0 {
		t.Errorf("got %v; want 3 events, none suppressed", keys(got))
	}
	if s := stats(t, n, "ops"); s.Deduplicated != 0 {
		t.Errorf("got stats %+v; want nothing deduplicated", s)
	}
}

// TestFlapping: a flapping entry is reported at most once per interval per
// event, and its last state is reported when the interval is over if the
// webhook was last told something else.
func TestFlapping(t *testing.T) {
	noLeaks(t)
	const interval = 200 * time.Millisecond
	recovered := func(key string) Event {
		e := ev(Recovered, key)
		e.From, e.To = "degraded", "healthy"
		return e
	}

	t.Run("ends unavailable", func(t *testing.T) {
		rcv := newReceiver(t, up)
		n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), interval)}, Options{})
		for _, e := range []Event{ev(Unavailable, "p"), recovered("p"), ev(Unavailable, "p"), recovered("p"), ev(Unavailable, "p")} {
			n.Notify(e)
		}
		rcv.waitEvents(3)
		time.Sleep(3 * interval)
		got := rcv.events()
		if want := []string{"unavailable/p", "recovered/p", "unavailable/p"}; !reflect.DeepEqual(keys(got), want) {
			t.Fatalf("got %v; want %v", keys(got), want)
		}
		if got[2].Event.Suppressed != 1 || !strings.Contains(got[2].Text, "(1 more since ") {
			t.Errorf("got %+v, %q; want 1 more suppressed", got[2].Event, got[2].Text)
		}
		if s := stats(t, n, "ops"); s.Sent != 3 || s.Deduplicated != 2 {
			t.Errorf("got stats %+v; want 3 sent, 2 deduplicated", s)
		}
	})

	t.Run("ends as last told", func(t *testing.T) {
		rcv := newReceiver(t, up)
		n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), interval)}, Options{})
		for _, e := range []Event{ev(Unavailable, "p"), recovered("p"), ev(Unavailable, "p"), recovered("p")} {
			n.Notify(e)
		}
		rcv.waitEvents(2)
		time.Sleep(3 * interval)
		if got, want := keys(rcv.events()), []string{"unavailable/p", "recovered/p"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v; want %v", got, want)
		}
		// The counts go out with the next event sent.
		n.Notify(ev(Unavailable, "p"))
		got := rcv.waitEvents(3)
		if got[2].Event.Suppressed != 1 {
			t.Errorf("got %+v; want 1 more suppressed", got[2].Event)
		}
	})
}

// TestOnFilter: each alert gets the event types it listens to, and
// "recovered" only when it was told of trouble.
func TestOnFilter(t *testing.T) {
	noLeaks(t)
	down, all, ur := newReceiver(t, up), newReceiver(t, up), newReceiver(t, up)
	n := newNotifier(t, []config.Alert{
		testAlert("down", down.url(), 0, Unavailable),
		testAlert("all", all.url(), 0),
		testAlert("ur", ur.url(), 0, Unavailable, Recovered),
	}, Options{})

	recovered := func(key, from string) Event {
		e := ev(Recovered, key)
		e.From, e.To = from, "healthy"
		return e
	}
	for _, e := range []Event{
		ev(Degraded, "p1"),
		ev(Unavailable, "p1"),
		recovered("p1", "degraded"), // after unavailable: sent
		{Type: ReinitFailed, Kind: KindModel, Key: "m1"},
		ev("bogus", "p1"),
		ev(Degraded, "p2"),
		recovered("p2", "degraded"), // "ur" never heard of p2's trouble
		recovered("p3", "unavailable"),
	} {
		n.Notify(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rcv  *receiver
		want []string
	}{
		{down, []string{"unavailable/p1"}},
		{all, []string{"degraded/p1", "unavailable/p1", "recovered/p1", "reinit_failed/m1", "degraded/p2", "recovered/p2", "recovered/p3"}},
		{ur, []string{"unavailable/p1", "recovered/p1", "recovered/p3"}},
	} {
		if got := keys(tt.rcv.events()); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("got %v; want %v", got, tt.want)
		}
	}
}

// TestNotRetried: an answer other than 2xx, 429 and 5xx is final.
func TestNotRetried(t *testing.T) {
	for _, mode := range []string{rejected, redirect} {
		t.Run(mode, func(t *testing.T) {
			noLeaks(t)
			rcv := newReceiver(t, mode)
			logger, logs := proxytest.CaptureLogs()
			var sl sleeps
			n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), 0)}, Options{Logger: logger, Sleep: sl.Sleep})
			n.Notify(ev(Unavailable, "p1"))
			proxytest.Eventually(t, 10*time.Second, "the event given up", func() bool { return stats(t, n, "ops").GivenUp == 1 })
			rcv.set(up)
			n.Notify(ev(Unavailable, "p2"))
			if got := rcv.waitEvents(1); got[0].Event.Key != "p2" {
				t.Errorf("got %v; want p2 delivered after p1 was given up", keys(got))
			}
			proxytest.Eventually(t, 10*time.Second, "p2 counted", func() bool { return stats(t, n, "ops").Sent == 1 })
			if got := rcv.hitCount(); got != 2 {
				t.Errorf("got %d requests; want 2: one per event, no retry, no redirect followed", got)
			}
			if s := stats(t, n, "ops"); s.Failed != 1 || s.Sent != 1 || len(sl.all()) != 0 {
				t.Errorf("got stats %+v and waits %v; want 1 failure, 1 sent and no retry", s, sl.all())
			}
			out := logs.String()
			checkNoSecret(t, out)
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "not retrying") {
				t.Errorf("got logs\n%s\nwant a warning", out)
			}
		})
	}
}

// TestRetryAfter: 429 and 5xx answers are retried after their Retry-After,
// capped by MaxBackoff; without one, after a jittered backoff.
func TestRetryAfter(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name, mode, header string
		min, max           time.Duration
	}{
		{"seconds", limited, "7", 7 * time.Second, 7 * time.Second},
		{"capped", limited, "120", time.Minute, time.Minute},
		{"http date", limited, clock.Now().Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, 30 * time.Second},
		{"none", limited, "", 0, time.Second},
		{"garbage", limited, "soon", 0, time.Second},
		{"503", down503, "", 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			rcv := newReceiver(t, up, tt.mode)
			rcv.retryAfter = tt.header
			var sl sleeps
			n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), 0)}, Options{Sleep: sl.Sleep, Now: clock.Now})
			n.Notify(ev(Unavailable, "p1"))
			rcv.waitEvents(1)
			waits := sl.all()
			if len(waits) != 1 || waits[0] < tt.min || waits[0] > tt.max {
				t.Errorf("got waits %v; want one in [%v, %v]", waits, tt.min, tt.max)
			}
		})
	}
}

// TestGiveUp: after MaxAttempts the event is abandoned, with backoffs that
// grow up to MaxBackoff, and the next one is delivered.
func TestGiveUp(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, down503)
	logger, logs := proxytest.CaptureLogs()
	var sl sleeps
	n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), 0)}, Options{
		Logger: logger, Sleep: sl.Sleep, MaxAttempts: 6, Backoff: time.Second, MaxBackoff: 5 * time.Second,
	})
	n.Notify(ev(Unavailable, "p1"))
	proxytest.Eventually(t, 10*time.Second, "the event given up", func() bool { return stats(t, n, "ops").GivenUp == 1 })
	waits := sl.all()
	if len(waits) != 5 {
		t.Fatalf("got waits %v; want 5 for 6 attempts", waits)
	}
	for i, w := range waits {
		if ceil := min(time.Second<<i, 5*time.Second); w < 0 || w > ceil {
			t.Errorf("got wait %d = %v; want in [0, %v]", i, w, ceil)
		}
	}
	rcv.set(up)
	n.Notify(ev(Unavailable, "p2"))
	if got := rcv.waitEvents(1); got[0].Event.Key != "p2" {
		t.Errorf("got %v; want p2", keys(got))
	}
	proxytest.Eventually(t, 10*time.Second, "p2 counted", func() bool { return stats(t, n, "ops").Sent == 1 })
	if s := stats(t, n, "ops"); s.Failed != 6 || s.Sent != 1 || s.GivenUp != 1 {
		t.Errorf("got stats %+v; want 6 failures, 1 given up, 1 sent", s)
	}
	out := logs.String()
	checkNoSecret(t, out)
	if !strings.Contains(out, "giving up") || !strings.Contains(out, "attempts=6") || !strings.Contains(out, "webhook="+rcv.srv.URL+" ") {
		t.Errorf("got logs\n%s\nwant a warning naming scheme://host", out)
	}
}

// TestPayload checks the JSON body and headers.
func TestPayload(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, up)
	at := time.Date(2026, 5, 4, 14, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	n := newNotifier(t, []config.Alert{testAlert("ops", rcv.url(), 0)}, Options{Version: "v1.2.3"})
	n.Notify(Event{
		Type: Unavailable, Kind: KindProvider, Key: "binance", Upstream: "https://api1.binance.com/api/v3",
		From: "degraded", To: "unavailable", Reason: "error_count reached 3", Message: "dial tcp: <refused> & gone",
		Time: at,
	})
	rcv.waitEvents(1)
	rcv.mu.Lock()
	h := rcv.headers[0]
	rcv.mu.Unlock()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q; want application/json", ct)
	}
	if ua := h.Get("User-Agent"); ua != "healproxy/v1.2.3" {
		t.Errorf("got User-Agent %q", ua)
	}

	// The raw JSON, field by field.
	rcv.mu.Lock()
	raw := rcv.raw[0]
	rcv.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	id, _ := m["id"].(string)
	delete(m, "id")
	want := map[string]any{
		"text":  ":x: provider binance upstream https://api1.binance.com/api/v3 is unavailable: error_count reached 3 (dial tcp: &lt;refused&gt; &amp; gone)",
		"alert": "ops",
		"event": map[string]any{
			"type": "unavailable", "kind": "provider", "key": "binance", "upstream": "https://api1.binance.com/api/v3",
			"from": "degraded", "to": "unavailable", "reason": "error_count reached 3", "message": "dial tcp: <refused> & gone",
			"time": "2026-05-04T12:00:00Z",
		},
		"healproxy": map[string]any{"version": "v1.2.3"},
	}
	if id == "" || !reflect.DeepEqual(m, want) {
		t.Errorf("got id %q and\n%v\nwant an id and\n%v", id, m, want)
	}
}

func TestText(t *testing.T) {
	since := time.Date(2026, 5, 4, 12, 1, 5, 0, time.UTC)
	long := strings.Repeat("é", 400)
	tests := []struct {
		e          Event
		suppressed int
		want       string
	}{
		{Event{Type: Unavailable, Kind: "provider", Key: "binance", Upstream: "https://api1.binance.com/api/v3", Reason: "error_count reached 3"}, 3,
			":x: provider binance upstream https://api1.binance.com/api/v3 is unavailable: error_count reached 3 (3 more since 12:01:05 UTC)"},
		{Event{Type: Degraded, Kind: "provider", Key: "cg"}, 0, ":warning: provider cg is degraded"},
		{Event{Type: Recovered, Kind: "model", Key: "m"}, 0, ":white_check_mark: model m recovered"},
		{Event{Type: ReinitFailed, Kind: "model", Key: "m", Message: "plugin exited:\n  exit status 1"}, 0,
			":rotating_light: model m could not be reinitialised: plugin exited: exit status 1"},
		{Event{Type: ReinitFailed, Kind: "model", Key: "m", Message: long}, 0,
			":rotating_light: model m could not be reinitialised: " + strings.Repeat("é", 150) + "…"},
	}
	for _, tt := range tests {
		if got := Text(tt.e, tt.suppressed, since); got != tt.want {
			t.Errorf("got\n%q\nwant\n%q", got, tt.want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"healthy", "unavailable", Unavailable},
		{"degraded", "unavailable", Unavailable},
		{"unknown", "unavailable", Unavailable},
		{"healthy", "degraded", Degraded},
		{"unknown", "degraded", Degraded},
		{"unavailable", "degraded", ""},
		{"degraded", "healthy", Recovered},
		{"unavailable", "healthy", Recovered},
		{"unknown", "healthy", ""},
		{"healthy", "unknown", ""},
		{"unavailable", "unavailable", ""},
	}
	for _, tt := range tests {
		if got := TypeOf(tt.from, tt.to); got != tt.want {
			t.Errorf("got TypeOf(%q, %q) = %q; want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

// TestClose: Close delivers what is queued (even through failures and the
// last state of a flapping entry), then stops every goroutine.
func TestClose(t *testing.T) {
	noLeaks(t)
	rcv := newReceiver(t, up, down503, down503, down503)
	var sl sleeps
	client := &http.Client{Timeout: 2 * time.Second}
	n := New([]config.Alert{testAlert("ops", rcv.url(), time.Hour)}, Options{
		Client: client, Sleep: sl.Sleep, Logger: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(client.CloseIdleConnections)

	var want []string
	for i := range 20 {
		e := ev(Degraded, fmt.Sprintf("p%d", i))
		n.Notify(e)
		want = append(want, "degraded/"+e.Key)
	}
	// A flap: its last state is still pending (min_interval 1h) at Close.
	n.Notify(ev(Unavailable, "f"))
	n.Notify(Event{Type: Recovered, Kind: KindProvider, Key: "f", Upstream: "https://f.example/api", From: "unavailable", To: "healthy"})
	n.Notify(ev(Unavailable, "f"))
	want = append(want, "unavailable/f", "recovered/f", "unavailable/f")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("got Close error %v; want nil", err)
	}
	if got := keys(rcv.events()); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
	n.Notify(ev(Unavailable, "after"))
	if err := n.Close(ctx); err != nil {
		t.Errorf("got second Close error %v; want nil", err)
	}
	if s := stats(t, n, "ops"); s.Sent != uint64(len(want)) || s.Queued != 0 || s.Dropped != 0 {
		t.Errorf("got stats %+v; want %d sent and nothing after Close", s, len(want))
	}
}

// TestNoAlerts: a nil Notifier and one without alerts do nothing.
func TestNoAlerts(t *testing.T) {
	noLeaks(t)
	var nilN *Notifier
	nilN.Notify(ev(Unavailable, "p"))
	if err := nilN.Close(context.Background()); err != nil || len(nilN.Stats().Alerts) != 0 {
		t.Errorf("got %v, %v from a nil Notifier", err, nilN.Stats())
	}
	n := New(nil, Options{})
	n.Notify(ev(Unavailable, "p"))
	if err := n.Close(context.Background()); err != nil || len(n.Stats().Alerts) != 0 {
		t.Errorf("got %v, %v from a Notifier without alerts", err, n.Stats())
	}
}

// TestDefaults: the default client times out and New fills every option.
func TestDefaults(t *testing.T) {
	noLeaks(t)
	u, _ := url.Parse("https://hooks.example/services/SECRET")
	n := New([]config.Alert{testAlert("ops", u, 0)}, Options{})
	defer n.Close(context.Background())
	o := n.opts
	if o.Client.Timeout != DefaultTimeout || o.QueueSize != DefaultQueueSize || o.MaxAttempts != DefaultMaxAttempts ||
		o.Backoff != DefaultBackoff || o.MaxBackoff != DefaultMaxBackoff || o.Now == nil || o.Sleep == nil || o.Logger == nil {
		t.Errorf("got options %+v; want the defaults", o)
	}
	if s := stats(t, n, "ops"); s.Webhook != "https://hooks.example" {
		t.Errorf("got webhook %q in stats; want it redacted", s.Webhook)
	}
}

// TestSecretsNeverLogged goes through every failure with debug logs on.
func TestSecretsNeverLogged(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed, _ := url.Parse("http://user:SECRETPW@" + ln.Addr().String() + secretPath + "?" + secretQuery)
	ln.Close()
	// p0: 503, reset, slow: given up; p1: 429, 400: given up; p2: 302:
	// given up; p3, p4: sent.
	rcv := newReceiver(t, up, down503, reset, slow, limited, rejected, redirect)
	rcv.retryAfter = "1"
	logger, logs := proxytest.CaptureLogs()
	var sl sleeps
	client := &http.Client{
		Timeout:       100 * time.Millisecond,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	n := newNotifier(t, []config.Alert{
		testAlert("refused", closed, 0),
		testAlert("rcv", rcv.url(), 0),
	}, Options{Logger: logger, Client: client, Sleep: sl.Sleep, MaxAttempts: 3})
	for i := range 5 {
		n.Notify(ev(Unavailable, fmt.Sprintf("p%d", i)))
	}
	proxytest.Eventually(t, 10*time.Second, "every event handled", func() bool {
		s := n.Stats()
		a, b := s.Alerts[0], s.Alerts[1]
		return a.GivenUp == 5 && b.GivenUp == 3 && b.Sent == 2
	})
	out := logs.String()
	checkNoSecret(t, out)
	for _, want := range []string{"connection refused", "timeout", "answered 503", "answered 429", "answered 400", "answered 302"} {
		if !strings.Contains(out, want) {
			t.Errorf("got logs without %q:\n%s", want, out)
		}
	}
}
