package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/redistest"
)

// The quorum tests run three replicas with quorum = 2 on a real
// redis-server (docs/behaviour.md, "Quorum trips").

func quorumNodes(t *testing.T, url string, o nodeOpts) (a, b, c *node) {
	t.Helper()
	o.quorum = 2
	a, b, c = newNode(t, url, "a", o), newNode(t, url, "b", o), newNode(t, url, "c", o)
	for _, n := range []*node{a, b, c} {
		n.startConnected(t)
	}
	return a, b, c
}

// votesCounted waits until n has cast want votes.
func votesCounted(t *testing.T, n *node, want uint64) {
	t.Helper()
	waitUntil(t, 5*time.Second, "replica "+n.c.Replica()+" to cast its vote", func() bool { return n.c.Status().Votes >= want })
}

func TestQuorumOneTripStaysLocal(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := quorumNodes(t, srv.URL(), nodeOpts{})
	trip(t, a.e())
	votesCounted(t, a, 1)

	// a cools down alone and says so; b and c still send
	trips := a.c.UnconfirmedTrips()
	if len(trips) != 1 || trips[0].Key != upKey || trips[0].Message != "tripped locally, not confirmed by the fleet (1 of 2)" {
		t.Fatalf("got unconfirmed trips %+v on a; want %s with the message (1 of 2)", trips, upKey)
	}
	if votes, ok := a.c.Unconfirmed(upKey); !ok || votes != 1 {
		t.Errorf("got Unconfirmed %d, %v; want 1, true", votes, ok)
	}
	if st := a.c.Status(); st.Quorum != 2 || len(st.UnconfirmedTrips) != 1 || st.Published != 0 {
		t.Errorf("got status quorum %d, unconfirmed %v, published %d; want 2, one trip, nothing published", st.Quorum, st.UnconfirmedTrips, st.Published)
	}
	if v := gaugeValue(t, a.c, "healproxy_shared_state_unconfirmed_trips"); v != 1 {
		t.Errorf("got healproxy_shared_state_unconfirmed_trips %v on a; want 1", v)
	}
	for _, n := range []*node{b, c} {
		ran := false
		if err := n.e().Call(func() (time.Duration, error) { ran = true; return 0, nil }); err != nil || !ran {
			t.Errorf("replica %s: got %v (ran %v); want the call sent: one replica's trip is not the fleet's", n.c.Replica(), err, ran)
		}
		if st := n.e().Status(); st == breaker.Unavailable {
			t.Errorf("replica %s: got %v; want not unavailable", n.c.Replica(), st)
		}
		if len(n.c.UnconfirmedTrips()) != 0 {
			t.Errorf("replica %s shows an unconfirmed trip it never made", n.c.Replica())
		}
	}

	// b trips within a's cooldown: the second vote confirms, c applies it
	trip(t, b.e())
	waitUntil(t, 5*time.Second, "the confirmed trip to reach c", func() bool { return c.e().Status() == breaker.Unavailable })
	if r := c.e().Snapshot().Reason; !strings.HasPrefix(r, "tripped on replica b;") {
		t.Errorf("c: got reason %q; want replica b named", r)
	}
	waitUntil(t, 5*time.Second, "a to learn that the fleet confirmed", func() bool { return len(a.c.UnconfirmedTrips()) == 0 })
	// b counts its confirmation after writing the trip that c applies
	waitUntil(t, 5*time.Second, "b to count the confirmed trip", func() bool { st := b.c.Status(); return st.Confirmed == 1 && len(st.UnconfirmedTrips) == 0 })
	if st := b.c.Status(); st.Confirmed != 1 || len(st.UnconfirmedTrips) != 0 {
		t.Errorf("b: got confirmed %d, unconfirmed %v; want 1 and none", st.Confirmed, st.UnconfirmedTrips)
	}
	rec := storedRecord(t, a.c)
	if !rec.Open() || rec.Replica != "b" || rec.Votes != 2 || !strings.Contains(rec.Reason, "confirmed: 2 of 2") {
		t.Errorf("got stored record %+v; want b's trip with 2 votes", rec)
	}
}

// TestQuorumVotesExpireWithTheCooldown: a trip whose cooldown ended is no
// longer a vote.
func TestQuorumVotesExpireWithTheCooldown(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := quorumNodes(t, srv.URL(), nodeOpts{cooldown: 300 * time.Millisecond})
	trip(t, a.e())
	votesCounted(t, a, 1)
	waitUntil(t, 5*time.Second, "a's cooldown to end", func() bool { return a.e().Status() == breaker.Degraded })
	trip(t, b.e())
	votesCounted(t, b, 1)
	if st := b.c.Status(); st.Confirmed != 0 || len(st.UnconfirmedTrips) != 1 || st.UnconfirmedTrips[0].Votes != 1 {
		t.Errorf("b: got %+v; want its trip unconfirmed (1 of 2): a's vote ended with its cooldown", st)
	}
	if st := c.e().Status(); st == breaker.Unavailable {
		t.Errorf("c: got %v; want the trips of a and b, a cooldown apart, not applied", st)
	}
}

// TestQuorumRecoveryNeedsNoQuorum: one replica's recovery heals all.
func TestQuorumRecoveryNeedsNoQuorum(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := quorumNodes(t, srv.URL(), nodeOpts{cooldown: 300 * time.Millisecond})
	trip(t, a.e())
	votesCounted(t, a, 1)
	trip(t, b.e())
	waitUntil(t, 5*time.Second, "c to apply the confirmed trip", func() bool { return c.e().Status() == breaker.Unavailable })
	waitUntil(t, 5*time.Second, "c's cooldown to end", func() bool { return c.e().Status() == breaker.Degraded })
	for range 2 {
		if err := c.e().Call(okCall); err != nil {
			t.Fatalf("trial on c: %v", err)
		}
	}
	for _, n := range []*node{a, b} {
		waitUntil(t, 5*time.Second, "replica "+n.c.Replica()+" to follow c's recovery", func() bool { return n.e().Status() == breaker.Healthy })
	}
}

// TestQuorumVoteCastAgainAfterALoss: Redis loses everything (a fail-over
// to a replica that had not received the vote); at the reconnection a
// votes again, so that b's later trip still makes the quorum.
func TestQuorumVoteCastAgainAfterALoss(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := quorumNodes(t, srv.URL(), nodeOpts{})
	trip(t, a.e())
	votesCounted(t, a, 1)
	srv.Restart() // no persistence: every vote and record is gone
	votesCounted(t, a, 2)
	for _, n := range []*node{b, c} {
		if !waitConnected(n.c, 10*time.Second) {
			t.Fatalf("replica %s did not reconnect", n.c.Replica())
		}
	}
	trip(t, b.e())
	waitUntil(t, 5*time.Second, "the confirmed trip to reach c", func() bool { return c.e().Status() == breaker.Unavailable })
}

// TestQuorumOneAppliesEveryTrip: the default keeps today's behaviour.
func TestQuorumOneAppliesEveryTrip(t *testing.T) {
	srv := redistest.Start(t)
	a := newNode(t, srv.URL(), "a", nodeOpts{quorum: 1})
	b := newNode(t, srv.URL(), "b", nodeOpts{})
	a.startConnected(t)
	b.startConnected(t)
	trip(t, a.e())
	waitUntil(t, 5*time.Second, "b to apply a's trip", func() bool { return b.e().Status() == breaker.Unavailable })
	if st := a.c.Status(); st.Votes != 0 || st.UnconfirmedTrips != nil || st.Quorum != 1 {
		t.Errorf("got %+v; want no votes and quorum 1", st)
	}
}

func storedRecord(t *testing.T, c *Cluster) *Record {
	t.Helper()
	b, err := c.Store().GetData(stateName(upKey))
	if err != nil || b == nil {
		t.Fatalf("no stored record: %v", err)
	}
	rec, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// gaugeValue reads metric name from c's QuorumCollector.
func gaugeValue(t *testing.T, c *Cluster, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.QuorumCollector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestQuorumCountsOtherVotes: with quorum = 3, a's unconfirmed trip
// shows the second vote once b trips too ("2 of 3"); c still sends.
func TestQuorumCountsOtherVotes(t *testing.T) {
	srv := redistest.Start(t)
	o := nodeOpts{quorum: 3}
	a, b, c := newNode(t, srv.URL(), "a", o), newNode(t, srv.URL(), "b", o), newNode(t, srv.URL(), "c", o)
	for _, n := range []*node{a, b, c} {
		n.startConnected(t)
	}
	trip(t, a.e())
	votesCounted(t, a, 1)
	trip(t, b.e())
	votesCounted(t, b, 1)
	want := "tripped locally, not confirmed by the fleet (2 of 3)"
	for _, n := range []*node{a, b} {
		waitUntil(t, 5*time.Second, "replica "+n.c.Replica()+" to count both votes", func() bool {
			trips := n.c.UnconfirmedTrips()
			return len(trips) == 1 && trips[0].Message == want
		})
	}
	if st := c.e().Status(); st == breaker.Unavailable {
		t.Errorf("c: got %v; want two votes of three not applied", st)
	}
}
