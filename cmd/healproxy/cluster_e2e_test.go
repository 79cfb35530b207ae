package main

// End-to-end tests of health shared between replicas: several healproxy
// processes (this test binary, see TestMain) on one real redis-server,
// driven over loopback. Each waits for conditions with deadlines.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/redistest"
)

// countingUpstream counts the requests it gets and answers by mode:
// "fail" (500), "hang" (until released), anything else 200.
type countingUpstream struct {
	*httptest.Server
	hits    atomic.Int32
	mode    atomic.Value // string
	release chan struct{}
	once    sync.Once
}

func newCountingUpstream(t *testing.T, mode string) *countingUpstream {
	u := &countingUpstream{release: make(chan struct{})}
	u.mode.Store(mode)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		switch u.mode.Load().(string) {
		case "fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "hang":
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "ok")
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(func() { u.Release(); u.Close() })
	return u
}

func (u *countingUpstream) Release() { u.once.Do(func() { close(u.release) }) }

// startReplica runs healproxy on config as replica id.
func startReplica(t *testing.T, config, id string) *healproxyProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &healproxyProc{t: t, logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "run", "-config", config, "-listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), e2eMainEnv+"=1", "HEALPROXY_REPLICA="+id)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting healproxy %s: %v", id, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("healproxy %s (pid %d) output:\n%s", id, p.cmd.Process.Pid, p.logs)
		}
	})
	waitFor(t, 30*time.Second, "healproxy "+id+" to listen", func() bool {
		if !p.running() {
			t.Fatalf("healproxy %s exited before listening: %v\n%s", id, p.err, p.logs)
		}
		m := listeningRE.FindStringSubmatch(p.logs.String())
		if m == nil {
			return false
		}
		p.base = "http://" + m[1]
		return true
	})
	return p
}

// clusterHealth is p's health document.
func clusterHealth(t *testing.T, p *healproxyProc) api.Health {
	t.Helper()
	code, body := httpGet(t, p.base+"/api/diagnostics/health")
	if code != http.StatusOK {
		t.Fatalf("health: %d %s", code, body)
	}
	var d api.Health
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("health document %s: %v", body, err)
	}
	return d
}

// providerStatus is provider id's status and reason on p.
func providerStatus(t *testing.T, p *healproxyProc, id string) (string, string) {
	t.Helper()
	for _, e := range clusterHealth(t, p).Providers.Entries {
		if e.ProviderID == id {
			return e.Status, e.Reason
		}
	}
	t.Fatalf("no provider %q", id)
	return "", ""
}

func connected(t *testing.T, p *healproxyProc) bool {
	d := clusterHealth(t, p)
	return d.SharedState != nil && d.SharedState.Connected
}

func clusterConfigFile(t *testing.T, redisURL string, ups map[string]string, cooldowns map[string]string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state {\n  redis = %q\n  key_prefix = \"e2e:\"\n}\n", redisURL)
	for _, id := range []string{"trip", "trial", "later", "ok"} {
		if ups[id] == "" {
			continue
		}
		fmt.Fprintf(&b, "provider %q {\n  upstreams = [%q]\n  timeout = \"5s\"\n  health {\n    error_threshold = 2\n    cooldown = %q\n    success_recovery_count = 2\n    cooldown_multiplier = 1\n  }\n}\n",
			id, ups[id], cooldowns[id])
	}
	path := filepath.Join(t.TempDir(), "cluster.hcl")
	writeConfig(t, path, b.String())
	return path
}

func get(t *testing.T, u string) int {
	t.Helper()
	code, _ := httpGet(t, u)
	return code
}

// TestE2EClusterTripAndTrials: three replicas on one Redis. A trip on a
// is in cooldown on b and c, which answer 503 without calling the
// upstream; after a cooldown, at most R trials reach the upstream from
// the whole cluster, and their success heals every replica.
func TestE2EClusterTripAndTrials(t *testing.T) {
	srv := redistest.Start(t)
	tripUp := newCountingUpstream(t, "fail")
	trialUp := newCountingUpstream(t, "fail")
	cfg := clusterConfigFile(t, srv.URL(), map[string]string{"trip": tripUp.URL, "trial": trialUp.URL},
		map[string]string{"trip": "5m", "trial": "2s"})
	a, b, c := startReplica(t, cfg, "a"), startReplica(t, cfg, "b"), startReplica(t, cfg, "c")
	all := []*healproxyProc{a, b, c}
	for _, p := range all {
		waitFor(t, 10*time.Second, "replica connected", func() bool { return connected(t, p) })
	}

	// trip on a → b and c answer 503 without calling the upstream
	for range 2 {
		if code := get(t, a.base+"/providers/trip/x"); code != 500 {
			t.Fatalf("a: got %d from the failing upstream; want its 500", code)
		}
	}
	for _, p := range []*healproxyProc{b, c} {
		waitFor(t, 5*time.Second, "the trip to reach another replica", func() bool {
			st, _ := providerStatus(t, p, "trip")
			return st == "unavailable"
		})
		if _, reason := providerStatus(t, p, "trip"); !strings.Contains(reason, "tripped on replica a") {
			t.Errorf("got reason %q; want it to name replica a", reason)
		}
	}
	hits := tripUp.hits.Load()
	for _, p := range []*healproxyProc{b, c} {
		if code := get(t, p.base+"/providers/trip/x"); code != http.StatusServiceUnavailable {
			t.Errorf("got %d; want 503 on a replica that learnt the trip", code)
		}
	}
	if got := tripUp.hits.Load(); got != hits {
		t.Errorf("the upstream got %d more requests after the trip; want none", got-hits)
	}

	// trials: R = 2 for the whole cluster
	for range 2 {
		get(t, b.base+"/providers/trial/x")
	}
	for _, p := range all {
		waitFor(t, 5*time.Second, "every replica to cool down", func() bool {
			st, _ := providerStatus(t, p, "trial")
			return st == "unavailable"
		})
	}
	trialUp.mode.Store("hang")
	trialUp.hits.Store(0)
	for _, p := range all {
		waitFor(t, 10*time.Second, "the cooldown to end everywhere", func() bool {
			st, _ := providerStatus(t, p, "trial")
			return st == "degraded"
		})
	}
	var done, refused atomic.Int32
	var wg sync.WaitGroup
	for _, p := range all {
		for range 4 {
			wg.Go(func() {
				resp, err := client.Get(p.base + "/providers/trial/x")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable {
						refused.Add(1)
					}
				}
				done.Add(1)
			})
		}
	}
	waitFor(t, 10*time.Second, "all but the admitted trials to be refused", func() bool {
		return done.Load() == 10 && trialUp.hits.Load() == 2
	})
	if got := trialUp.hits.Load(); got != 2 {
		t.Errorf("got %d trial requests at the upstream from 3 replicas; want R = 2", got)
	}
	if refused.Load() != 10 {
		t.Errorf("got %d refusals; want 10 (503)", refused.Load())
	}
	trialUp.mode.Store("ok")
	trialUp.Release()
	wg.Wait()
	for _, p := range all {
		waitFor(t, 10*time.Second, "every replica to recover", func() bool {
			st, _ := providerStatus(t, p, "trial")
			return st == "healthy"
		})
	}
	if got := trialUp.hits.Load(); got != 2 {
		t.Errorf("got %d requests at the upstream by the end; want the 2 trials only", got)
	}

	// scope=cluster shows the three replicas
	code, body := httpGet(t, c.base+"/api/diagnostics/health?scope=cluster")
	var cd struct {
		Complete bool `json:"complete"`
		Replicas []struct {
			Replica string `json:"replica"`
		} `json:"replicas"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &cd) != nil || !cd.Complete || len(cd.Replicas) != 3 {
		t.Errorf("scope=cluster: %d %s; want three replicas", code, body)
	}
}

// TestE2EClusterRedisOutage: Redis killed mid-run → the replicas keep
// serving on local health and say so → Redis back on the same port →
// shared again: the trip a made meanwhile reaches b, and so does a new one.
func TestE2EClusterRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	tripUp := newCountingUpstream(t, "fail")
	laterUp := newCountingUpstream(t, "fail")
	okUp := newCountingUpstream(t, "ok")
	cfg := clusterConfigFile(t, srv.URL(), map[string]string{"trip": tripUp.URL, "later": laterUp.URL, "ok": okUp.URL},
		map[string]string{"trip": "5m", "later": "5m", "ok": "5m"})
	a, b := startReplica(t, cfg, "a"), startReplica(t, cfg, "b")
	for _, p := range []*healproxyProc{a, b} {
		waitFor(t, 10*time.Second, "replica connected", func() bool { return connected(t, p) })
	}

	srv.Stop()
	for _, p := range []*healproxyProc{a, b} {
		waitFor(t, 10*time.Second, "the outage to show", func() bool {
			d := clusterHealth(t, p)
			return d.SharedState != nil && !d.SharedState.Connected && d.SharedState.LastError != ""
		})
	}
	for _, p := range []*healproxyProc{a, b} {
		if code := get(t, p.base+"/providers/ok/x"); code != 200 {
			t.Fatalf("got %d without redis; want 200", code)
		}
	}
	for range 2 {
		get(t, a.base+"/providers/trip/x")
	}
	if st, _ := providerStatus(t, a, "trip"); st != "unavailable" {
		t.Fatalf("a: got %q; want its local trip", st)
	}
	if st, _ := providerStatus(t, b, "trip"); st == "unavailable" {
		t.Fatalf("b learnt a's trip without redis")
	}

	srv.Restart()
	for _, p := range []*healproxyProc{a, b} {
		waitFor(t, 15*time.Second, "the replica to rejoin", func() bool { return connected(t, p) })
	}
	waitFor(t, 5*time.Second, "a's trip from the outage to reach b", func() bool {
		st, _ := providerStatus(t, b, "trip")
		return st == "unavailable"
	})
	for range 2 {
		get(t, a.base+"/providers/later/x")
	}
	waitFor(t, 5*time.Second, "a new trip to reach b", func() bool {
		st, _ := providerStatus(t, b, "later")
		return st == "unavailable"
	})
	for _, p := range []*healproxyProc{a, b} {
		logs := p.logs.String()
		if n := strings.Count(logs, "redis unreachable"); n != 1 {
			t.Errorf("the outage was logged %d times; want once", n)
		}
		if n := strings.Count(logs, "rejoined redis"); n != 1 {
			t.Errorf("the rejoin was logged %d times; want once", n)
		}
	}
}
