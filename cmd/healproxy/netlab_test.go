package main

// netLab: real Linux network namespaces joined by veth pairs, for the
// partition tests (partition_e2e_test.go). Every namespace, and with it
// every veth, is deleted when the test ends, failed or not. Nothing is
// added to the test's own namespace: the test reaches into a namespace
// by opening its sockets there (inNetns).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netLab is one test's namespaces.
type netLab struct {
	t      *testing.T
	id     string // unique per test: in every name
	octet  int    // 10.octet.0.0/16 holds the test's addresses
	spaces []string
}

// newNetLab checks that namespaces can be made (root, the ip binary):
// otherwise it skips with a clear message, or fails with CI=true.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	problem := ""
	if os.Geteuid() != 0 {
		problem = "not root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		problem = "no ip binary (Debian package iproute2)"
	} else if _, err := exec.LookPath("tc"); err != nil {
		problem = "no tc binary (Debian package iproute2)"
	}
	if problem != "" {
		msg := "partition tests need root and iproute2 to make network namespaces: " + problem + "; SKIPPED (scripts/install-test-deps.sh installs iproute2; run as root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("!!! " + msg)
	}
	var b [3]byte
	rand.Read(b[:])
	l := &netLab{t: t, id: hex.EncodeToString(b[:2]), octet: 100 + int(b[2])%100}
	t.Cleanup(func() {
		for _, ns := range l.spaces {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("deleting namespace %s: %v %s", ns, err, out)
			}
		}
	})
	return l
}

// ip runs the ip or tc command and fails the test on an error.
func (l *netLab) cmd(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// ns makes a namespace, named hq<id>-<short>, with its loopback up.
func (l *netLab) ns(short string) string {
	l.t.Helper()
	name := "hq" + l.id + "-" + short
	l.cmd("ip", "netns", "add", name)
	l.spaces = append(l.spaces, name)
	l.cmd("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// link is a veth pair between a replica and a service namespace.
type link struct {
	lab          *netLab
	what         string
	nsA, devA    string
	nsB, devB    string
	cut, delayed bool
}

// svcIP is service s's address, the same on all its links, so that every
// replica has the same config (and the same shared upstream keys).
func (l *netLab) svcIP(s int) string { return fmt.Sprintf("10.%d.%d.254", l.octet, s) }

// join links replica namespace rns (number k) to service s's namespace
// sns. The replica reaches the service at svcIP(s); the service answers
// the replica at 10.octet.s.k.
func (l *netLab) join(rns string, k int, sns string, s int, what string) *link {
	l.t.Helper()
	a, b := fmt.Sprintf("hq%s%d%dr", l.id, k, s), fmt.Sprintf("hq%s%d%ds", l.id, k, s)
	l.cmd("ip", "link", "add", a, "type", "veth", "peer", "name", b)
	l.cmd("ip", "link", "set", a, "netns", rns)
	l.cmd("ip", "link", "set", b, "netns", sns)
	rip := fmt.Sprintf("10.%d.%d.%d", l.octet, s, k)
	l.cmd("ip", "-n", rns, "addr", "add", rip+"/32", "dev", a)
	l.cmd("ip", "-n", sns, "addr", "add", l.svcIP(s)+"/32", "dev", b)
	l.cmd("ip", "-n", rns, "link", "set", a, "up")
	l.cmd("ip", "-n", sns, "link", "set", b, "up")
	l.cmd("ip", "-n", rns, "route", "add", l.svcIP(s)+"/32", "dev", a)
	l.cmd("ip", "-n", sns, "route", "add", rip+"/32", "dev", b)
	return &link{lab: l, what: what, nsA: rns, devA: a, nsB: sns, devB: b}
}

// Cut drops every packet both ways, silently, as a partition does (a
// queue of length 0 on both ends): connections hang, nothing is refused.
func (ln *link) Cut() {
	ln.lab.t.Helper()
	ln.lab.cmd("ip", "netns", "exec", ln.nsA, "tc", "qdisc", "replace", "dev", ln.devA, "root", "pfifo", "limit", "0")
	ln.lab.cmd("ip", "netns", "exec", ln.nsB, "tc", "qdisc", "replace", "dev", ln.devB, "root", "pfifo", "limit", "0")
	ln.cut = true
}

// Heal undoes Cut.
func (ln *link) Heal() {
	ln.lab.t.Helper()
	ln.lab.cmd("ip", "netns", "exec", ln.nsA, "tc", "qdisc", "del", "dev", ln.devA, "root")
	ln.lab.cmd("ip", "netns", "exec", ln.nsB, "tc", "qdisc", "del", "dev", ln.devB, "root")
	ln.cut = false
}

// Delay adds d to each direction with tc netem; false when this kernel
// has no netem (then the caller uses a delaying relay).
func (ln *link) Delay(d time.Duration) bool {
	ln.lab.t.Helper()
	ms := fmt.Sprintf("%dms", d.Milliseconds())
	out, err := exec.Command("ip", "netns", "exec", ln.nsA, "tc", "qdisc", "replace", "dev", ln.devA, "root", "netem", "delay", ms).CombinedOutput()
	if err != nil {
		ln.lab.t.Logf("tc netem is not available here (%v: %s)", err, strings.TrimSpace(string(out)))
		return false
	}
	ln.lab.cmd("ip", "netns", "exec", ln.nsB, "tc", "qdisc", "replace", "dev", ln.devB, "root", "netem", "delay", ms)
	ln.delayed = true
	return true
}

// inNetns runs fn on a thread inside namespace ns: sockets it opens live
// there (a listener keeps serving in ns after fn returns).
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // unlocked only once back home; else the thread ends with the goroutine
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if setns(home) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// listenIn listens on addr inside ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := inNetns(ns, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// clientIn is an HTTP client whose connections start inside ns.
func clientIn(ns string, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() (err error) {
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16}}
}
