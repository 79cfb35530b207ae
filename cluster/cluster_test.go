package cluster

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/redistest"
)

// The tests run replicas as Cluster values in one process, on a real
// redis-server, each with its own breaker entries for the same upstream
// keys. They wait for conditions with deadlines, never for time.

const upKey = "provider/p/0123456789ab"

var errBoom = &breaker.Failure{Kind: breaker.KindStatus, StatusCode: 500, Message: "upstream answered 500"}

func okCall() (time.Duration, error)   { return time.Millisecond, nil }
func failCall() (time.Duration, error) { return time.Millisecond, errBoom }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// node is one replica: a Cluster and its entries by key.
type node struct {
	c       *Cluster
	entries map[string]*breaker.Entry
	logs    *proctest.Buffer
}

type nodeOpts struct {
	cooldown time.Duration
	recovery int
	trialTTL time.Duration
	keys     []string
	view     func() any
	hb       time.Duration
	quorum   int
}

func newNode(t *testing.T, url, replica string, o nodeOpts) *node {
	t.Helper()
	if o.cooldown == 0 {
		o.cooldown = time.Minute
	}
	if o.recovery == 0 {
		o.recovery = 2
	}
	if o.keys == nil {
		o.keys = []string{upKey}
	}
	logs := &proctest.Buffer{}
	c, err := New(Options{URL: url, KeyPrefix: "hp-test:", Replica: replica,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), View: o.view, HeartbeatInterval: o.hb,
		MaxBackoff: 500 * time.Millisecond, Quorum: o.quorum})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{c: c, entries: map[string]*breaker.Entry{}, logs: logs}
	var ms []Member
	for _, k := range o.keys {
		e := breaker.New(replica+"/"+k, breaker.Settings{ErrorThreshold: 2, Cooldown: o.cooldown, RecoveryCount: o.recovery},
			breaker.Options{PreciseStamps: true})
		n.entries[k] = e
		ms = append(ms, Member{Key: k, Upstream: "http://up.invalid/" + k, Entry: e, TrialTTL: o.trialTTL})
	}
	c.SetMembers(ms)
	t.Cleanup(func() { c.Close(t.Context()) })
	return n
}

func (n *node) startConnected(t *testing.T) {
	t.Helper()
	n.c.Start()
	if !n.c.WaitConnected(10*time.Second) && !waitConnected(n.c, 10*time.Second) {
		t.Fatalf("replica %s did not connect: %+v", n.c.Replica(), n.c.Status())
	}
}

func waitConnected(c *Cluster, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !c.Status().Connected {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	return true
}

func (n *node) e() *breaker.Entry { return n.entries[upKey] }

func trip(t *testing.T, e *breaker.Entry) {
	t.Helper()
	for range 2 {
		e.Call(failCall)
	}
	if e.Status() != breaker.Unavailable {
		t.Fatalf("got %v after 2 failures; want unavailable", e.Status())
	}
}

func TestTripReachesOtherReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL(), "a", nodeOpts{})
	b := newNode(t, srv.URL(), "b", nodeOpts{})
	c := newNode(t, srv.URL(), "c", nodeOpts{})
	for _, n := range []*node{a, b, c} {
		n.startConnected(t)
	}
	trip(t, a.e())
	want := a.e().Snapshot().CooldownUntil
	for _, n := range []*node{b, c} {
		waitUntil(t, 5*time.Second, "the trip to reach replica "+n.c.Replica(), func() bool {
			return n.e().Status() == breaker.Unavailable
		})
		s := n.e().Snapshot()
		if !s.CooldownUntil.Equal(want) || !strings.HasPrefix(s.Reason, "tripped on replica a;") {
			t.Errorf("replica %s: got cooldown_until %v reason %q; want %v and replica a named", n.c.Replica(), s.CooldownUntil, s.Reason, want)
		}
		ran := false
		if err := n.e().Call(func() (time.Duration, error) { ran = true; return 0, nil }); err != breaker.ErrCooldown || ran {
			t.Errorf("replica %s: got %v (ran %v); want ErrCooldown without a call", n.c.Replica(), err, ran)
		}
	}
	// b and c can apply the event before a's writer, back from EXEC,
	// counts it: wait for the count, then check that it is the only one
	waitUntil(t, 5*time.Second, "a to count its write", func() bool { return a.c.Status().Published >= 1 })
	if st := a.c.Status(); st.Published != 1 {
		t.Errorf("got published %d on a; want 1", st.Published)
	}
	// the stored record names the replica and the end of the cooldown
	b2, err := a.c.Store().GetData(stateName(upKey))
	if err != nil || b2 == nil {
		t.Fatalf("no stored record: %v", err)
	}
	rec, err := decodeRecord(b2)
	if err != nil || !rec.Open() || rec.Replica != "a" || !rec.CooldownUntil.Equal(want) || !rec.Expiry.Equal(want) || rec.Generation != 0 {
		t.Fatalf("got record %+v (%v); want open, by a, until %v", rec, err, want)
	}
}

func TestRecoveryReachesOtherReplicas(t *testing.T) {
	srv := redistest.Start(t)
	o := nodeOpts{cooldown: 200 * time.Millisecond}
	a := newNode(t, srv.URL(), "a", o)
	b := newNode(t, srv.URL(), "b", o)
	a.startConnected(t)
	b.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "b to follow the trip", func() bool { return b.e().Status() == breaker.Unavailable })
	waitUntil(t, 5*time.Second, "the cooldown to end", func() bool { return a.e().Status() == breaker.Degraded })
	for range 2 {
		if err := a.e().Call(okCall); err != nil {
			t.Fatalf("trial on a: %v", err)
		}
	}
	if a.e().Status() != breaker.Healthy {
		t.Fatalf("a: got %v after 2 trial successes; want healthy", a.e().Status())
	}
	waitUntil(t, 5*time.Second, "b to follow the recovery", func() bool { return b.e().Status() == breaker.Healthy })
	if err := b.e().Call(okCall); err != nil {
		t.Fatalf("b after the recovery: %v", err)
	}
}

// TestTrialsBoundedClusterWide: after a cooldown, three replicas each try
// four concurrent trials; R = 2 run in the whole cluster.
func TestTrialsBoundedClusterWide(t *testing.T) {
	srv := redistest.Start(t)
	const R = 2
	o := nodeOpts{cooldown: 300 * time.Millisecond, recovery: R}
	nodes := []*node{newNode(t, srv.URL(), "a", o), newNode(t, srv.URL(), "b", o), newNode(t, srv.URL(), "c", o)}
	for _, n := range nodes {
		n.startConnected(t)
	}
	trip(t, nodes[0].e())
	for _, n := range nodes {
		waitUntil(t, 5*time.Second, "every replica to cool down, then be half-open", func() bool {
			return n.e().Status() == breaker.Degraded
		})
	}
	release := make(chan struct{})
	var admitted, refused atomic.Int32
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range 4 {
			wg.Go(func() {
				err := n.e().Call(func() (time.Duration, error) {
					admitted.Add(1)
					<-release
					return time.Millisecond, nil
				})
				if errors.Is(err, breaker.ErrTrialsBusy) {
					refused.Add(1)
				}
			})
		}
	}
	waitUntil(t, 5*time.Second, "every call to be admitted or refused", func() bool {
		return admitted.Load()+refused.Load() == 12
	})
	if got := admitted.Load(); got != R {
		t.Errorf("got %d trials admitted across 3 replicas; want R = %d", got, R)
	}
	close(release)
	wg.Wait()
	for _, n := range nodes {
		waitUntil(t, 5*time.Second, "replica "+n.c.Replica()+" to recover", func() bool { return n.e().Status() == breaker.Healthy })
	}
}

// TestTrialOwnerGoneAnotherTakesOver: the replica that won a cooldown's
// trials goes away before any outcome; once its slot expires another
// replica runs the trials.
func TestTrialOwnerGoneAnotherTakesOver(t *testing.T) {
	srv := redistest.Start(t)
	o := nodeOpts{cooldown: 200 * time.Millisecond, recovery: 1, trialTTL: 2 * time.Second}
	a := newNode(t, srv.URL(), "a", o)
	b := newNode(t, srv.URL(), "b", o)
	a.startConnected(t)
	b.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "both half-open", func() bool {
		return a.e().Status() == breaker.Degraded && b.e().Status() == breaker.Degraded
	})
	hold := make(chan struct{})
	started := make(chan struct{})
	go a.e().Call(func() (time.Duration, error) { close(started); <-hold; return 0, errors.New("never answered") })
	<-started
	defer close(hold)
	if err := b.e().Call(okCall); !errors.Is(err, breaker.ErrTrialsBusy) {
		t.Fatalf("got %v on b while a holds the trials; want ErrTrialsBusy", err)
	}
	a.c.Close(t.Context()) // a dies holding the slot
	waitUntil(t, 5*time.Second, "b to take the trials over", func() bool {
		return b.e().Call(okCall) == nil
	})
	if b.e().Status() != breaker.Healthy {
		t.Fatalf("b: got %v; want healthy after its trial", b.e().Status())
	}
}

// TestJoinPullsAndPushes: a replica that connects applies the cluster's
// trips and pushes its own.
func TestJoinPullsAndPushes(t *testing.T) {
	srv := redistest.Start(t)
	const other = "provider/q/ba9876543210"
	o := nodeOpts{keys: []string{upKey, other}}
	a := newNode(t, srv.URL(), "a", o)
	a.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "a's trip to be written", func() bool { return a.c.Status().Published == 1 })

	b := newNode(t, srv.URL(), "b", o)
	trip(t, b.entries[other]) // before b connects: only local
	b.startConnected(t)
	if b.e().Status() != breaker.Unavailable {
		t.Errorf("b: got %v after joining; want a's trip applied by the pull", b.e().Status())
	}
	waitUntil(t, 5*time.Second, "b's own trip to reach a", func() bool { return a.entries[other].Status() == breaker.Unavailable })
}

func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	const second = "provider/q/ba9876543210"
	o := nodeOpts{keys: []string{upKey, second}}
	a := newNode(t, srv.URL(), "a", o)
	b := newNode(t, srv.URL(), "b", o)
	a.startConnected(t)
	b.startConnected(t)

	srv.Stop()
	for _, n := range []*node{a, b} {
		waitUntil(t, 10*time.Second, "replica "+n.c.Replica()+" to notice", func() bool { return !n.c.Status().Connected })
	}
	// local health goes on
	trip(t, a.e())
	if err := b.e().Call(okCall); err != nil {
		t.Fatalf("b without redis: %v", err)
	}
	st := a.c.Status()
	if st.LastError == "" || st.Connected {
		t.Errorf("got status %+v; want disconnected with the error", st)
	}

	srv.Restart()
	for _, n := range []*node{a, b} {
		waitUntil(t, 15*time.Second, "replica "+n.c.Replica()+" to rejoin", func() bool { return n.c.Status().Connected })
	}
	waitUntil(t, 5*time.Second, "a's trip made while redis was down to reach b", func() bool {
		return b.e().Status() == breaker.Unavailable
	})
	trip(t, a.entries[second])
	waitUntil(t, 5*time.Second, "a new trip to reach b", func() bool { return b.entries[second].Status() == breaker.Unavailable })

	for _, n := range []*node{a, b} {
		logs := n.logs.String()
		if c := strings.Count(logs, "redis unreachable"); c != 1 {
			t.Errorf("replica %s logged the outage %d times; want once:\n%s", n.c.Replica(), c, logs)
		}
		if c := strings.Count(logs, "rejoined redis"); c != 1 {
			t.Errorf("replica %s logged the rejoin %d times; want once:\n%s", n.c.Replica(), c, logs)
		}
	}
}

// TestGateWithoutRedisDecidesLocally: a replica that never reached Redis
// admits its trials itself.
func TestGateWithoutRedisDecidesLocally(t *testing.T) {
	n := newNode(t, "redis://:s3cret@127.0.0.1:1/0", "a", nodeOpts{cooldown: 50 * time.Millisecond, recovery: 1})
	n.c.Start()
	waitUntil(t, 10*time.Second, "the failed connection to be reported", func() bool { return n.c.Status().LastError != "" })
	trip(t, n.e())
	waitUntil(t, 5*time.Second, "the cooldown to end", func() bool { return n.e().Status() == breaker.Degraded })
	if err := n.e().Call(okCall); err != nil {
		t.Fatalf("got %v; want the trial admitted locally", err)
	}
	st := n.c.Status()
	if b := mustJSON(t, st); strings.Contains(string(b), "s3cret") || strings.Contains(n.logs.String(), "s3cret") {
		t.Errorf("the password shows in the status or logs: %s\n%s", b, n.logs)
	}
}

// TestGateRedisErrorAdmitsLocally: Redis failing at the trial-slot call
// (here: it vanished after the replica connected) admits the trial.
func TestGateRedisErrorAdmitsLocally(t *testing.T) {
	mr := miniredis.RunT(t)
	n := newNode(t, "redis://"+mr.Addr()+"/0", "a", nodeOpts{cooldown: 50 * time.Millisecond, recovery: 1})
	n.startConnected(t)
	trip(t, n.e())
	waitUntil(t, 5*time.Second, "the cooldown to end", func() bool { return n.e().Status() == breaker.Degraded })
	mr.Close()
	if err := n.e().Call(okCall); err != nil {
		t.Fatalf("got %v; want the trial admitted locally when Redis fails", err)
	}
}

// TestQueueFullDropsAndCounts: the request path never blocks on a full
// queue; the change is counted and left to the next resync.
func TestQueueFullDropsAndCounts(t *testing.T) {
	c, err := New(Options{URL: "redis://127.0.0.1:1/0", Replica: "a", QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	c.connected.Store(true) // not started: nothing drains the queue
	c.enqueue(closeRecord(upKey, "a", time.Now()))
	c.enqueue(closeRecord(upKey, "a", time.Now()))
	if st := c.Status(); st.Dropped != 1 || st.Queued != 1 || !c.dirty.Load() {
		t.Fatalf("got %+v dirty %v; want 1 dropped, 1 queued, a resync asked for", st, c.dirty.Load())
	}
}

func TestViews(t *testing.T) {
	srv := redistest.Start(t)
	view := func(id string) func() any { return func() any { return map[string]string{"replica": id} } }
	a := newNode(t, srv.URL(), "a", nodeOpts{view: view("a"), hb: 50 * time.Millisecond})
	b := newNode(t, srv.URL(), "b", nodeOpts{view: view("b"), hb: 50 * time.Millisecond})
	a.startConnected(t)
	b.startConnected(t)
	var got []string
	waitUntil(t, 5*time.Second, "both views", func() bool {
		vs, err := a.c.Views(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, v := range vs {
			var m map[string]string
			json.Unmarshal(v, &m)
			got = append(got, m["replica"])
		}
		return len(got) == 2
	})
	b.c.Close(t.Context())
	waitUntil(t, 5*time.Second, "b's view to go with it", func() bool {
		vs, _ := a.c.Views(t.Context())
		return len(vs) == 1
	})
}

// TestStaleEventIgnored: a change older than the stored one is neither
// written nor published.
func TestStaleEventIgnored(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL(), "a", nodeOpts{})
	a.startConnected(t)
	now := time.Now()
	if err := a.c.write(closeRecord(upKey, "a", now)); err != nil {
		t.Fatal(err)
	}
	if err := a.c.write(tripRecord(upKey, "b", now.Add(-time.Second), now.Add(time.Minute), "x", 2)); err != nil {
		t.Fatal(err)
	}
	b, _ := a.c.Store().GetData(stateName(upKey))
	rec, _ := decodeRecord(b)
	if rec.Open() || a.c.stale.Load() != 1 {
		t.Fatalf("got record %+v, %d stale; want the newer close kept", rec, a.c.stale.Load())
	}
}

// TestSameChangeWrittenOnce: the writer and a resync's push can both carry
// a fresh trip (the pull ran before the writer stored it); the second
// write is neither stored again nor published.
func TestSameChangeWrittenOnce(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL(), "a", nodeOpts{})
	a.startConnected(t)
	now := time.Now()
	for range 2 {
		if err := a.c.write(tripRecord(upKey, "a", now, now.Add(time.Minute), "x", 2)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := a.c.Store().GetData(stateName(upKey))
	rec, _ := decodeRecord(b)
	if st := a.c.Status(); st.Published != 1 || rec == nil || rec.Generation != 0 {
		t.Fatalf("got %d published, record %+v; want the trip written once", st.Published, rec)
	}
	// a later change by the same replica is written
	if err := a.c.write(closeRecord(upKey, "a", now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if st := a.c.Status(); st.Published != 2 {
		t.Fatalf("got %d published; want the recovery written too", st.Published)
	}
}
