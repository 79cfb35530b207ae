package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a small Redis Cluster: three primaries on loopback, no
// replicas, the 16384 slots split between them, stopped when the test
// ends.
type Cluster struct {
	Nodes []*Server
	IDs   []string // each node's cluster id
}

// StartCluster starts three cluster-enabled servers, gives each a third
// of the slots, joins them and waits until the cluster is ok everywhere.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	cl := &Cluster{}
	for i := range 3 {
		dir := tb.TempDir()
		s := StartWith(tb, Options{Args: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("%s/nodes-%d.conf", dir, i), "--cluster-node-timeout", "2000"}})
		id, err := command(s.Addr(), "CLUSTER", "MYID")
		if err != nil || len(id) != 1 {
			tb.Fatalf("CLUSTER MYID on %s: %v %q", s.Addr(), err, id)
		}
		cl.Nodes, cl.IDs = append(cl.Nodes, s), append(cl.IDs, id[0])
	}
	const slots = 16384
	for i, s := range cl.Nodes {
		lo, hi := i*slots/3, (i+1)*slots/3-1
		if _, err := command(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			tb.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr(), err)
		}
		if i > 0 {
			if _, err := command(s.Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(cl.Nodes[0].Port())); err != nil {
				tb.Fatalf("CLUSTER MEET: %v", err)
			}
		}
	}
	WaitFor(tb, 20*time.Second, "the cluster to be ok on every node", func() bool {
		for _, s := range cl.Nodes {
			info, err := command(s.Addr(), "CLUSTER", "INFO")
			if err != nil || !strings.Contains(strings.Join(info, "\n"), "cluster_state:ok") ||
				!strings.Contains(strings.Join(info, "\n"), "cluster_known_nodes:3") {
				return false
			}
		}
		return true
	})
	return cl
}

// URL is redis-cluster://node1,node2,node3.
func (cl *Cluster) URL() string {
	addrs := make([]string, len(cl.Nodes))
	for i, s := range cl.Nodes {
		addrs[i] = s.Addr()
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// Owner is the index of the node serving key's slot.
func (cl *Cluster) Owner(tb testing.TB, key string) (node, slot int) {
	tb.Helper()
	out, err := command(cl.Nodes[0].Addr(), "CLUSTER", "KEYSLOT", key)
	if err != nil || len(out) != 1 {
		tb.Fatalf("CLUSTER KEYSLOT: %v %q", err, out)
	}
	slot, _ = strconv.Atoi(out[0])
	for i := range 3 { // the ranges StartCluster gave
		if slot <= (i+1)*16384/3-1 {
			return i, slot
		}
	}
	return 2, slot
}

// MigrateSlot moves slot from node src to node dst as redis-cli
// --cluster reshard does: IMPORTING on dst, MIGRATING on src, then
// between (called with the slot half-moved, its keys still on src) the
// keys are moved with MIGRATE, and the slot is given to dst everywhere.
func (cl *Cluster) MigrateSlot(tb testing.TB, slot, src, dst int, between func()) {
	tb.Helper()
	s := strconv.Itoa(slot)
	do := func(node int, args ...string) []string {
		tb.Helper()
		out, err := command(cl.Nodes[node].Addr(), args...)
		if err != nil {
			tb.Fatalf("%s on node %d: %v", strings.Join(args, " "), node, err)
		}
		return out
	}
	do(dst, "CLUSTER", "SETSLOT", s, "IMPORTING", cl.IDs[src])
	do(src, "CLUSTER", "SETSLOT", s, "MIGRATING", cl.IDs[dst])
	if between != nil {
		between()
	}
	for {
		keys := do(src, "CLUSTER", "GETKEYSINSLOT", s, "100")
		if len(keys) == 0 {
			break
		}
		args := append([]string{"MIGRATE", "127.0.0.1", strconv.Itoa(cl.Nodes[dst].Port()), "", "0", "5000", "KEYS"}, keys...)
		do(src, args...)
	}
	for i := range cl.Nodes {
		do(i, "CLUSTER", "SETSLOT", s, "NODE", cl.IDs[dst])
	}
}
