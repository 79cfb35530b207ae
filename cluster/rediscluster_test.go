package cluster

import (
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/redistest"
)

// TestRedisClusterSlotMigration: three replicas on a three-node Redis
// Cluster (real processes). A trip is shared across slots; then the slot
// holding a second upstream's record moves to another node while replica
// b trips that upstream: the record does not exist yet, so the slot's old
// node answers ASK and go-redis follows it to the new one. Every replica
// applies the trip, and the record is on the slot's new node.
func TestRedisClusterSlotMigration(t *testing.T) {
	rc := redistest.StartCluster(t)
	const tripped, later = upKey, "provider/p/later"
	o := nodeOpts{keys: []string{tripped, later}}
	nodes := []*node{newNode(t, rc.URL(), "a", o), newNode(t, rc.URL(), "b", o), newNode(t, rc.URL(), "c", o)}
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.startConnected(t)
	}
	if mode := a.c.Status().Mode; mode != "cluster" {
		t.Errorf("got mode %q; want cluster", mode)
	}
	trip(t, a.entries[tripped])
	for _, n := range nodes {
		waitUntil(t, 5*time.Second, "the trip to reach "+n.c.Replica(), func() bool { return n.entries[tripped].Status() == breaker.Unavailable })
	}

	stateKey := "hp-test:" + stateName(later)
	src, slot := rc.Owner(t, stateKey)
	dst := (src + 1) % len(rc.Nodes)
	started := time.Now()
	rc.MigrateSlot(t, slot, src, dst, func() {
		trip(t, b.entries[later]) // written while the slot is half-moved
		waitUntil(t, 5*time.Second, "b's write to end (stored or failed)", func() bool {
			st := b.c.Status()
			return st.Published >= 1 || st.Errors >= 1
		})
	})
	for _, n := range nodes {
		waitUntil(t, 10*time.Second, "b's trip to reach "+n.c.Replica(), func() bool { return n.entries[later].Status() == breaker.Unavailable })
	}
	if got, err := rc.Nodes[dst].Do("EXISTS", stateKey); err != nil || got != ":1" {
		t.Errorf("node %d (the slot's new owner): EXISTS %s = %q (%v); want the record there", dst, stateKey, got, err)
	}
	data, err := a.c.Store().GetData(stateName(later))
	rec, derr := decodeRecord(data)
	if err != nil || derr != nil || !rec.Open() || rec.Replica != "b" {
		t.Errorf("got record %s (%v, %v) through the cluster client; want b's trip", data, err, derr)
	}
	for _, n := range nodes {
		if s := n.entries[tripped].Status(); s != breaker.Unavailable {
			t.Errorf("replica %s: got %v for the first trip after the migration; want unavailable", n.c.Replica(), s)
		}
	}
	t.Logf("slot %d moved from node %d to node %d with b's trip written meanwhile; every replica had it %v after the move began; b: %+v",
		slot, src, dst, time.Since(started).Round(time.Millisecond), b.c.Status())
}
