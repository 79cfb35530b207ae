package proxy

// Persistent health state (docs/behaviour.md, "Reload and state"): servers
// built with New and a config whose StatePath is in t.TempDir(), closed
// (or not: a crash) and built again on the same file. Model tests run real
// plugin subprocesses (see main_test.go). No test sleeps for an effect:
// each waits for a condition with a deadline.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/store"
)

// persistServer is one life of a healproxy on a state file.
type persistServer struct {
	t     *testing.T
	s     *Server
	ts    *httptest.Server
	logs  *proxytest.LogBuffer
	close func() // a clean shutdown: Server.Close saves the state once more
}

// startPersist serves New(cfg) over loopback with its log captured (shown
// if the test fails). The test may close it (close); whatever it did not
// close is closed at the end.
func startPersist(t *testing.T, cfg *config.Config) *persistServer {
	t.Helper()
	log, buf := proxytest.CaptureLogs()
	ps := &persistServer{t: t, logs: buf}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("healproxy log:\n%s", buf)
		}
	})
	ps.s, ps.ts = startServer(t, cfg, withLogger(log), closedBy(&ps.close))
	return ps
}

func (ps *persistServer) upstream(id string, i int) api.Upstream {
	ps.t.Helper()
	p := fetchProvider(ps.t, ps.ts.URL, id)
	if i >= len(p.Upstreams) {
		ps.t.Fatalf("provider %s has %d upstreams; want an upstream %d", id, len(p.Upstreams), i)
	}
	return p.Upstreams[i]
}

// hit sends n GETs to provider id and returns the last status code.
func (ps *persistServer) hit(id string, n int) int {
	ps.t.Helper()
	code := 0
	for range n {
		resp, _ := proxytest.Get(ps.t, ps.ts.Client(), ps.ts.URL+"/providers/"+id+"/x")
		code = resp.StatusCode
	}
	return code
}

// durable is what of an upstream's health must survive a restart, as the
// health document shows it.
func durable(u api.Upstream) string {
	return fmt.Sprintf("status=%s error_count=%d success_count=%d last_success=%s last_error=%s last_error_message=%s cooldown_until=%s in_cooldown=%v recent_failures=%d",
		u.Status, u.ErrorCount, u.SuccessCount, stampOrNil(u.LastSuccess), stampOrNil(u.LastError),
		stampOrNil(u.LastErrorMessage), stampOrNil(u.CooldownUntil), u.InCooldown, len(u.RecentFailures))
}

func statePath(t *testing.T) string { return filepath.Join(t.TempDir(), "state", "health.db") }

// TestPersistRestartWithState: a provider upstream in cooldown is still in
// cooldown after a restart, until the same instant, and refuses requests
// without sending them; another upstream's counters and a model's
// counters, restarts and last reinit are kept, and the model runs again.
func TestPersistRestartWithState(t *testing.T) {
	bad, good := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	bad.Code.Store(500)
	cfg := &config.Config{
		StatePath: statePath(t),
		Health:    reloadHealth,
		Providers: []config.Provider{
			proxytest.WithHealth(proxytest.Provider(t, "bad", bad.URL), 3, 30*time.Second, 1),
			proxytest.Provider(t, "good", good.URL),
		},
		// slow times out on every predict: its failure must survive too
		// (the restored first start keeps the health, a reinit would reset it).
		Models: []config.Model{builtinModel("m"), commandModel("slow", "test-hangctx", 300*time.Millisecond)},
	}

	one := startPersist(t, cfg)
	firstPid := waitModelPid(t, one.s, "m", 0)
	resp, body := proxytest.Do(t, one.ts.Client(), http.MethodPost, one.ts.URL+"/api/diagnostics/self-heal?model_key=m", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"success"`) {
		t.Fatalf("self-heal of m: %d %s", resp.StatusCode, body)
	}
	healedPid := waitModelPid(t, one.s, "m", firstPid)
	for range 3 {
		wantPredict(t, one.ts, "m", http.StatusOK)
	}
	if code := one.hit("bad", 3); code != http.StatusInternalServerError {
		t.Fatalf("third request to bad: got %d; want the upstream's 500", code)
	}
	one.hit("good", 4)
	waitModelPid(t, one.s, "slow", 0)
	wantPredict(t, one.ts, "slow", http.StatusGatewayTimeout)
	slowBefore, _ := modelDocOf(one.s, "slow")
	if slowBefore.ErrorCount != 1 || slowBefore.Status != "degraded" {
		t.Fatalf("slow before the restart: error_count %d, %s; want 1, degraded", slowBefore.ErrorCount, slowBefore.Status)
	}

	badBefore, goodBefore := one.upstream("bad", 0), one.upstream("good", 0)
	if badBefore.Status != "unavailable" || !badBefore.InCooldown || badBefore.CooldownUntil == nil {
		t.Fatalf("bad before the restart: %s; want unavailable in cooldown", durable(badBefore))
	}
	if goodBefore.Status != "healthy" || goodBefore.SuccessCount != 4 {
		t.Fatalf("good before the restart: %s; want healthy with 4 successes", durable(goodBefore))
	}
	mBefore, _ := modelDocOf(one.s, "m")
	if mBefore.Restarts != 1 || mBefore.SuccessCount != 3 || mBefore.LastReinit == nil {
		t.Fatalf("model before the restart: restarts %d, success_count %d, last_reinit %s; want 1, 3, a time",
			mBefore.Restarts, mBefore.SuccessCount, stampOrNil(mBefore.LastReinit))
	}
	one.close()
	waitReaped(t, healedPid, "the plugin of the closed server")
	hitsBefore := bad.Hits.Load()

	two := startPersist(t, cfg)
	if !strings.Contains(two.logs.String(), "health state restored") {
		t.Errorf("the log does not say the state was restored:\n%s", two.logs)
	}
	if got, want := durable(two.upstream("bad", 0)), durable(badBefore); got != want {
		t.Errorf("bad after the restart:\n got %s\nwant %s", got, want)
	}
	if got, want := durable(two.upstream("good", 0)), durable(goodBefore); got != want {
		t.Errorf("good after the restart:\n got %s\nwant %s", got, want)
	}
	newPid := waitModelPid(t, two.s, "m", healedPid)
	mAfter, _ := modelDocOf(two.s, "m")
	if mAfter.SuccessCount != mBefore.SuccessCount || mAfter.ErrorCount != mBefore.ErrorCount ||
		mAfter.Restarts != mBefore.Restarts || stampOrNil(mAfter.LastReinit) != stampOrNil(mBefore.LastReinit) ||
		stampOrNil(mAfter.LastSuccess) != stampOrNil(mBefore.LastSuccess) {
		t.Errorf("model after the restart: success_count %d, error_count %d, restarts %d, last_reinit %s, last_success %s; want %d, %d, %d, %s, %s",
			mAfter.SuccessCount, mAfter.ErrorCount, mAfter.Restarts, stampOrNil(mAfter.LastReinit), stampOrNil(mAfter.LastSuccess),
			mBefore.SuccessCount, mBefore.ErrorCount, mBefore.Restarts, stampOrNil(mBefore.LastReinit), stampOrNil(mBefore.LastSuccess))
	}
	if !mAfter.Loaded || mAfter.Status != "healthy" || newPid == healedPid {
		t.Errorf("model after the restart: loaded %v, status %s, pid %d; want loaded, healthy, a new process", mAfter.Loaded, mAfter.Status, newPid)
	}
	wantPredict(t, two.ts, "m", http.StatusOK)
	proxytest.Eventually(t, 20*time.Second, "slow's plugin to run again", func() bool {
		d, _ := modelDocOf(two.s, "slow")
		return d.Loaded
	})
	if d, _ := modelDocOf(two.s, "slow"); d.ErrorCount != 1 || d.Status != "degraded" ||
		stampOrNil(d.LastError) != stampOrNil(slowBefore.LastError) || len(d.RecentFailures) != 1 {
		t.Errorf("slow after the restart: error_count %d, %s, last_error %s, %d recent failures; want 1, degraded, %s, 1",
			d.ErrorCount, d.Status, stampOrNil(d.LastError), len(d.RecentFailures), stampOrNil(slowBefore.LastError))
	}

	resp, body = proxytest.Get(t, two.ts.Client(), two.ts.URL+"/providers/bad/x")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("request to bad after the restart: got %d %s; want 503", resp.StatusCode, body)
	}
	if e := decodeError(t, body); e.CooldownRemaining == nil || *e.CooldownRemaining <= 0 || *e.CooldownRemaining > 30 {
		t.Errorf("503 body %s; want cooldown_remaining in (0, 30]", body)
	}
	if n := bad.Hits.Load(); n != hitsBefore {
		t.Errorf("the upstream in cooldown got %d requests after the restart; want none", n-hitsBefore)
	}
}

// TestPersistCooldownEndedWhileDown: a cooldown that ended while healproxy
// was down is over after the restart: the upstream is half-open
// (degraded), and trials make it healthy.
func TestPersistCooldownEndedWhileDown(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	cfg := &config.Config{StatePath: statePath(t),
		Providers: []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, 300*time.Millisecond, 2)}}

	one := startPersist(t, cfg)
	one.hit("p", 1)
	before := one.upstream("p", 0)
	until := parseStamp(t, "cooldown_until", before.CooldownUntil)
	one.close()
	proxytest.Eventually(t, 5*time.Second, "the cooldown to end while healproxy is down", func() bool { return time.Now().After(until) })
	up.Code.Store(200)

	two := startPersist(t, cfg)
	after := two.upstream("p", 0)
	if after.Status != "degraded" || after.InCooldown || after.CooldownUntil != nil {
		t.Fatalf("after the restart: %s; want degraded (half-open), not in cooldown", durable(after))
	}
	if after.ErrorCount != before.ErrorCount || stampOrNil(after.LastError) != stampOrNil(before.LastError) {
		t.Errorf("after the restart: %s; want the counters of %s", durable(after), durable(before))
	}
	if code := two.hit("p", 1); code != 200 {
		t.Fatalf("first trial: got %d; want 200", code)
	}
	if g := two.upstream("p", 0); g.Status != "degraded" || g.Recovery == nil || g.Recovery.TrialSuccesses != 1 {
		t.Errorf("after one trial of two: %s (recovery %+v); want degraded with 1 trial success", durable(g), g.Recovery)
	}
	two.hit("p", 1)
	if g := two.upstream("p", 0); g.Status != "healthy" || g.ErrorCount != 0 {
		t.Errorf("after two trials: %s; want healthy, error_count 0", durable(g))
	}
}

// TestPersistDropsRemovedEntries: a provider that left the config is
// dropped from the state file, so when it comes back it starts fresh.
func TestPersistDropsRemovedEntries(t *testing.T) {
	a, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	b.Code.Store(500)
	pa := proxytest.WithHealth(proxytest.Provider(t, "a", a.URL), 1, time.Minute, 1)
	pb := proxytest.WithHealth(proxytest.Provider(t, "b", b.URL), 1, time.Minute, 1)
	path := statePath(t)
	both := &config.Config{StatePath: path, Providers: []config.Provider{pa, pb}}
	onlyA := &config.Config{StatePath: path, Providers: []config.Provider{pa}}

	one := startPersist(t, both)
	one.hit("a", 2)
	one.hit("b", 1)
	if g := one.upstream("b", 0); g.Status != "unavailable" {
		t.Fatalf("b: %s; want unavailable", durable(g))
	}
	aBefore := one.upstream("a", 0)
	bKey := upstreamKey("b", one.s.state.Load().providers["b"].Upstreams[0])
	one.close()

	two := startPersist(t, onlyA)
	if got, want := durable(two.upstream("a", 0)), durable(aBefore); got != want {
		t.Errorf("a after a restart without b:\n got %s\nwant %s", got, want)
	}
	two.close()
	st, err := store.Open(path, proxytest.DiscardLogger())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	entries, err := st.Entries()
	st.Close()
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	if _, ok := entries[bKey]; ok || len(entries) != 1 {
		t.Errorf("state file after a run without b holds %v; want only a's entry", keys(entries))
	}

	three := startPersist(t, both)
	if g := three.upstream("b", 0); g.Status != "unknown" || g.ErrorCount != 0 || g.LastError != nil || g.InCooldown {
		t.Errorf("b back in the config: %s; want a fresh (unknown) entry", durable(g))
	}
	if got, want := durable(three.upstream("a", 0)), durable(aBefore); got != want {
		t.Errorf("a after the third start:\n got %s\nwant %s", got, want)
	}
	if code := three.hit("b", 1); code != http.StatusInternalServerError {
		t.Errorf("request to the fresh b: got %d; want the upstream's own 500 (not a 503 from an old cooldown)", code)
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPersistBackgroundSave: the state is written while healproxy runs,
// not only at Close: a copy of the file taken while it runs (as a crash
// would leave it) restores the cooldown.
func TestPersistBackgroundSave(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(503)
	cfg := &config.Config{StatePath: statePath(t),
		Providers: []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 2, time.Minute, 1)}}
	one := startPersist(t, cfg)
	one.hit("p", 2)
	before := one.upstream("p", 0)
	if before.Status != "unavailable" {
		t.Fatalf("p: %s; want unavailable", durable(before))
	}
	key := upstreamKey("p", one.s.state.Load().providers["p"].Upstreams[0])

	copies := t.TempDir()
	var copyPath string
	n := 0
	proxytest.Eventually(t, 10*time.Second, "a background save holding the cooldown", func() bool {
		n++
		copyPath = filepath.Join(copies, fmt.Sprintf("copy-%d.db", n))
		if err := copyFile(cfg.StatePath, copyPath); err != nil {
			t.Fatalf("copying the state file: %v", err)
		}
		st, err := store.Open(copyPath, proxytest.DiscardLogger())
		if err != nil {
			t.Fatalf("store.Open(copy): %v", err)
		}
		defer st.Close()
		entries, err := st.Entries()
		if err != nil {
			return false
		}
		var p persisted
		if json.Unmarshal(entries[key], &p) != nil || !p.Health.Open {
			return false
		}
		return stampOrNil(api.Stamp(p.Health.CooldownUntil)) == stampOrNil(before.CooldownUntil)
	})
	if g := one.upstream("p", 0); g.Status != "unavailable" {
		t.Fatalf("p while copying: %s; the original server must still be running", durable(g))
	}

	crashed := *cfg
	crashed.StatePath = copyPath
	two := startPersist(t, &crashed)
	if got, want := durable(two.upstream("p", 0)), durable(before); got != want {
		t.Errorf("restored from the file of a running healproxy:\n got %s\nwant %s", got, want)
	}
	if m, _ := filepath.Glob(copyPath + ".corrupt-*"); len(m) != 0 {
		t.Errorf("the copy was set aside: %v", m)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestPersistCorruptStateFile: random bytes where the state file should be
// are set aside with a warning and healproxy starts fresh, persisting again.
func TestPersistCorruptStateFile(t *testing.T) {
	up := proxytest.NewUpstream(t)
	path := statePath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{StatePath: path,
		Providers: []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, time.Minute, 1)}}

	one := startPersist(t, cfg)
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("set-aside files: %v; want one %s.corrupt-*", aside, path)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(b, junk) {
		t.Errorf("%s does not hold the corrupt file's bytes (err %v)", aside[0], err)
	}
	logs := one.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "set aside") || !strings.Contains(logs, aside[0]) {
		t.Errorf("the log does not warn that the file was set aside:\n%s", logs)
	}
	if g := one.upstream("p", 0); g.Status != "unknown" || g.SuccessCount != 0 {
		t.Errorf("p on a fresh state: %s; want unknown", durable(g))
	}
	if one.s.store == nil {
		t.Fatal("no store after setting the corrupt file aside; want a fresh one")
	}

	// The fresh file persists.
	up.Code.Store(500)
	one.hit("p", 1)
	before := one.upstream("p", 0)
	one.close()
	two := startPersist(t, cfg)
	if got, want := durable(two.upstream("p", 0)), durable(before); got != want {
		t.Errorf("after a restart on the fresh file:\n got %s\nwant %s", got, want)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Errorf("set-aside files after the second start: %v; want still one", m)
	}
}

// TestPersistUnwritableStatePath: a state path that cannot be created
// (under a regular file) leaves healproxy running without persistence,
// and the log says so.
func TestPersistUnwritableStatePath(t *testing.T) {
	up := proxytest.NewUpstream(t)
	file := filepath.Join(t.TempDir(), "regular-file")
	if err := os.WriteFile(file, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{StatePath: filepath.Join(file, "state", "health.db"),
		Providers: []config.Provider{proxytest.Provider(t, "p", up.URL)}}
	ps := startPersist(t, cfg)
	if ps.s.store != nil {
		t.Errorf("a store was opened at %s", cfg.StatePath)
	}
	logs := ps.logs.String()
	if !strings.Contains(logs, "health state will not be persisted") || !strings.Contains(logs, cfg.StatePath) {
		t.Errorf("the log does not say that state is not persisted:\n%s", logs)
	}
	if code := ps.hit("p", 3); code != http.StatusOK {
		t.Errorf("proxying without persistence: got %d; want 200", code)
	}
	ps.close()
	if strings.Contains(ps.logs.String(), "cannot save health state") {
		t.Errorf("a server without a store tried to save:\n%s", ps.logs)
	}
}

// TestPersistNoSecrets: neither an upstream URL's query or user info nor a
// header value reaches the state file, even with failures recorded and an
// operator's action audited.
func TestPersistNoSecrets(t *testing.T) {
	failing := proxytest.NewUpstream(t)
	failing.Code.Store(500)
	dead := proxytest.DeadURL(t)
	const querySecret, userSecret, headerSecret = "s3cret-query-value", "s3cret-password", "s3cret-header-value"
	withUser := strings.Replace(failing.URL, "http://", "http://user:"+userSecret+"@", 1)
	p := proxytest.WithHealth(proxytest.Provider(t, "sec", withUser+"/base?apikey="+querySecret, dead+"/v1?apikey="+querySecret), 2, time.Minute, 1)
	p.Headers = map[string]string{"X-Api-Key": headerSecret}
	cfg := &config.Config{StatePath: statePath(t), Providers: []config.Provider{p}}

	ps := startPersist(t, cfg)
	ps.hit("sec", 4)
	if n := len(failing.Requests()); n == 0 || failing.Last(t).Header.Get("X-Api-Key") != headerSecret {
		t.Fatalf("the failing upstream got %d requests, the last without the header", n)
	}
	h := fetchProvider(t, ps.ts.URL, "sec")
	for _, u := range h.Upstreams {
		if len(u.RecentFailures) == 0 {
			t.Fatalf("upstream %s has no recorded failure; the test needs some in the state", u.URL)
		}
	}
	target := h.Upstreams[0].URL
	code, body := postControl(t, ps.ts, "sec", "force-open", ctlBody(target, "maintenance "+target, "1h"))
	if code != http.StatusOK {
		t.Fatalf("force-open: %d %s", code, body)
	}
	ps.close()

	raw, err := os.ReadFile(cfg.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cfg.StatePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v (%v); want 0600: it holds the audit log", fi.Mode().Perm(), err)
	}
	if !bytes.Contains(raw, []byte("provider/sec/")) || !bytes.Contains(raw, []byte("maintenance")) {
		t.Fatalf("the state file holds no entry or audit record of provider sec; the test checks nothing")
	}
	for _, secret := range []string{querySecret, userSecret, headerSecret, "apikey"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the state file contains %q", secret)
		}
	}
}

// TestPersistDrainAndAlertsAcrossRestart: an operator's drain survives a
// restart, and an upstream restored unavailable is not announced again,
// while its later recovery still is.
func TestPersistDrainAndAlertsAcrossRestart(t *testing.T) {
	a, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	b.Code.Store(500)
	hook := newHookReceiver(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", a.URL), 1, 500*time.Millisecond, 1)
	pb := proxytest.WithHealth(proxytest.Provider(t, "q", b.URL), 1, 500*time.Millisecond, 1)
	cfg := &config.Config{StatePath: statePath(t), Providers: []config.Provider{pc, pb},
		Alerts: []config.Alert{webhookAlert(t, "ops", hook.URL, nil, 0)}}

	one := startPersist(t, cfg)
	resp, _ := proxytest.Do(t, one.ts.Client(), "POST", one.ts.URL+"/api/admin/providers/p/drain", strings.NewReader(`{"reason":"maintenance"}`), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("drain: %d", resp.StatusCode)
	}
	one.hit("q", 1) // q trips: "unavailable q" is announced
	hook.waitEvents(t, 1, 10*time.Second)
	one.close()

	two := startPersist(t, cfg)
	var doc struct {
		Providers struct {
			Entries []struct {
				ProviderID string `json:"provider_id"`
				Upstreams  []struct {
					Operator *struct {
						Action string `json:"action"`
					} `json:"operator"`
				} `json:"upstreams"`
			} `json:"entries"`
		} `json:"providers"`
	}
	_, body := proxytest.Get(t, two.ts.Client(), two.ts.URL+"/api/diagnostics/health")
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if op := doc.Providers.Entries[0].Upstreams[0].Operator; op == nil || op.Action != "drain" {
		t.Errorf("after a restart p's upstream shows operator %+v; want the drain kept", op)
	}
	before := a.Hits.Load()
	two.hit("p", 3)
	if n := a.Hits.Load() - before; n != 0 {
		t.Errorf("a drained upstream got %d requests after a restart; want 0", n)
	}
	b.Code.Store(200)
	proxytest.Eventually(t, 10*time.Second, "q to recover", func() bool {
		two.hit("q", 1)
		return two.upstream("q", 0).Status == "healthy"
	})
	got := hook.waitEvents(t, 2, 10*time.Second)
	var seq []string
	for _, e := range got {
		seq = append(seq, e.Event.Type+" "+e.Event.Key)
	}
	if want := []string{"unavailable q", "recovered q"}; !slices.Equal(seq, want) {
		t.Errorf("events %q; want %q (no second unavailable after the restart)", seq, want)
	}
}
