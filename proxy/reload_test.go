package proxy

// Hot reload (docs/behaviour.md, "Reload and state"): Server.Reload with
// configs the tests build, and POST /api/admin/reload with an
// Options.ConfigSource whose answer the test sets. Model tests run real
// plugin subprocesses (see main_test.go). No test sleeps for an effect:
// each waits for a condition with a deadline.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/statecfg"
	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/plugins"
)

// ---- helpers shared by reload_test.go, operator_test.go, report_test.go ----

// configSource is an Options.ConfigSource whose answer the test sets.
type configSource struct {
	mu    sync.Mutex
	cfg   *config.Config
	diags hcl.Diagnostics
	calls int
}

func (c *configSource) set(cfg *config.Config, diags hcl.Diagnostics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg, c.diags = cfg, diags
}

func (c *configSource) load() (*config.Config, hcl.Diagnostics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.cfg, c.diags
}

func (c *configSource) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// call sends an admin (or any) request with an optional JSON body and
// Bearer token.
func adminCall(t *testing.T, ts *httptest.Server, method, path, body, token string) (*http.Response, string) {
	t.Helper()
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	var r io.Reader
	if body != "" {
		hdr.Set("Content-Type", "application/json")
		r = strings.NewReader(body)
	}
	return proxytest.Do(t, ts.Client(), method, ts.URL+path, r, hdr)
}

// metricLines are the sample lines of GET /metrics that hold all of
// the label pairs given as `name="value"`.
func metricLines(t *testing.T, ts *httptest.Server, pairs ...string) []string {
	t.Helper()
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got status %d", resp.StatusCode)
	}
	var out []string
lines:
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range pairs {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		out = append(out, line)
	}
	return out
}

// upstreamOf is the upstream of a provider's health entry with URL u.
func stampOrNil(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// ---- model helpers (the ones of models_test.go live in package proxy_test) ----

// reloadHealth: no automatic reinit, so a pid changes only when a test
// makes it.
var reloadHealth = config.Health{ErrorThreshold: 3, Cooldown: 2 * time.Second, RecoveryCount: 1,
	ReinitCooldown: time.Second, MaxConcurrentReinit: 5}

func builtinModel(key string) config.Model {
	return config.Model{Key: key, Name: key, Plugin: "sentiment", Timeout: 5 * time.Second, Health: reloadHealth}
}

func commandModel(key, plugin string, timeout time.Duration) config.Model {
	return config.Model{Key: key, Name: key, Command: []string{os.Args[0], "plugin", plugin}, Timeout: timeout, Health: reloadHealth}
}

// modelDocOf is model key's entry in the health document.
func modelDocOf(s *Server, key string) (api.Model, bool) {
	for _, e := range s.healthDocument().Models.Entries {
		if e.ModelKey == key {
			return e, true
		}
	}
	return api.Model{}, false
}

// waitModelPid waits until model key is healthy and loaded with a pid
// other than not, and returns the pid.
func waitModelPid(t *testing.T, s *Server, key string, not int) int {
	t.Helper()
	var pid int
	proxytest.Eventually(t, 20*time.Second, fmt.Sprintf("model %s healthy with a pid other than %d", key, not), func() bool {
		e, ok := modelDocOf(s, key)
		if ok && e.Loaded && e.Pid != nil && *e.Pid != not && e.Status == "healthy" {
			pid = *e.Pid
			return true
		}
		return false
	})
	return pid
}

// isChild: pid is a child of this test binary, running or a zombie.
func isChild(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(stat[i+1:]))
	return len(f) >= 2 && f[1] == fmt.Sprint(os.Getpid())
}

func waitReaped(t *testing.T, pid int, what string) {
	t.Helper()
	proxytest.Eventually(t, 15*time.Second, fmt.Sprintf("%s (pid %d) stopped and reaped", what, pid), func() bool { return !isChild(pid) })
}

// predictCall posts {"inputs": text} to model key; safe from any goroutine.
func predictCall(c *http.Client, base, key, text string) (int, string, error) {
	b, _ := json.Marshal(map[string]any{"inputs": text})
	resp, err := c.Post(base+"/models/"+key+"/predict", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), err
}

func wantPredict(t *testing.T, ts *httptest.Server, key string, want int) string {
	t.Helper()
	code, body, err := predictCall(ts.Client(), ts.URL, key, "bitcoin breaks out, bullish rally")
	if err != nil {
		t.Fatalf("predict %s: %v", key, err)
	}
	if code != want {
		t.Fatalf("predict %s: got %d %s; want %d", key, code, body, want)
	}
	return body
}

// stopProcess SIGSTOPs pid and waits until all its threads are stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	proctest.WaitStopped(t, pid)
}

// ---- providers ----

// TestReloadProviders: an added provider serves, a removed one 404s and
// leaves no metric series, an unchanged one keeps its cooldown, a changed
// one keeps the health of the upstreams whose URL stayed.
func TestReloadProviders(t *testing.T) {
	keepUp := proxytest.NewUpstream(t)
	keepUp.Code.Store(500)
	a, b, c := proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	goneUp, addedUp := proxytest.NewUpstream(t), proxytest.NewUpstream(t)

	keepCfg := func() config.Provider {
		return proxytest.WithHealth(proxytest.Provider(t, "keep", keepUp.URL), 1, time.Hour, 1)
	}
	multiCfg := func(ups ...string) config.Provider {
		return proxytest.WithHealth(proxytest.Provider(t, "multi", ups...), 1, time.Hour, 1)
	}
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{
		keepCfg(), multiCfg(a.URL, b.URL), proxytest.Provider(t, "gone", goneUp.URL)}})
	cl := ts.Client()

	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/keep/x"); resp.StatusCode != 500 {
		t.Fatalf("keep: got %d; want the upstream's 500", resp.StatusCode)
	}
	keepBefore := upstreamOf(t, fetchProvider(t, ts.URL, "keep"), keepUp.URL)
	if keepBefore.Status != "unavailable" || keepBefore.CooldownUntil == nil {
		t.Fatalf("keep: %+v; want tripped", keepBefore)
	}
	// Trip upstream a of multi; GETs fail over to b, so each answers 200.
	a.Code.Store(500)
	for i := 0; upstreamOf(t, fetchProvider(t, ts.URL, "multi"), a.URL).Status != "unavailable"; i++ {
		if i == 10 {
			t.Fatal("multi: upstream a not tripped after 10 requests")
		}
		if resp, body := proxytest.Get(t, cl, ts.URL+"/providers/multi/x"); resp.StatusCode != 200 {
			t.Fatalf("multi: got %d %s; want 200 through b", resp.StatusCode, body)
		}
	}
	aBefore := upstreamOf(t, fetchProvider(t, ts.URL, "multi"), a.URL)
	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/gone/x"); resp.StatusCode != 200 {
		t.Fatalf("gone: got %d; want 200", resp.StatusCode)
	}
	if len(metricLines(t, ts, `provider="gone"`)) == 0 {
		t.Fatal("no request metric for provider gone before the reload; the check below would prove nothing")
	}
	if len(metricLines(t, ts, `upstream="`+b.URL+`"`)) == 0 {
		t.Fatal("no metric for upstream b before the reload")
	}

	res := s.Reload(proxytest.Normalized(&config.Config{Providers: []config.Provider{
		keepCfg(), multiCfg(a.URL, c.URL), proxytest.Provider(t, "added", addedUp.URL)}}))
	if !slices.Equal(res.Added, []string{"provider added"}) || !slices.Equal(res.Removed, []string{"provider gone"}) ||
		!slices.Equal(res.Changed, []string{"provider multi"}) || len(res.Updated) != 0 || res.Unchanged != 1 {
		t.Errorf("Reload = %+v; want added [provider added], removed [provider gone], changed [provider multi], 1 unchanged", res)
	}

	// Added: serves.
	if resp, body := proxytest.Get(t, cl, ts.URL+"/providers/added/v1"); resp.StatusCode != 200 || addedUp.Hits.Load() != 1 {
		t.Errorf("added: got %d %q, upstream hits %d; want 200 from its upstream", resp.StatusCode, body, addedUp.Hits.Load())
	}
	// Removed: 404, nothing sent, no series left.
	goneHits := goneUp.Hits.Load()
	resp, body := proxytest.Get(t, cl, ts.URL+"/providers/gone/x")
	if resp.StatusCode != 404 || decodeError(t, body).ProviderID != "gone" {
		t.Errorf("gone: got %d %s; want 404 JSON", resp.StatusCode, body)
	}
	if goneUp.Hits.Load() != goneHits {
		t.Error("a removed provider's upstream still got a request")
	}
	for _, id := range fetchHealth(t, ts.URL).Providers.Entries {
		if id.ProviderID == "gone" {
			t.Error("the removed provider is still in the health document")
		}
	}
	if l := append(metricLines(t, ts, `provider="gone"`), metricLines(t, ts, `key="gone"`)...); len(l) > 0 {
		t.Errorf("/metrics still has series of the removed provider:\n%s", strings.Join(l, "\n"))
	}
	if l := metricLines(t, ts, `upstream="`+b.URL+`"`); len(l) > 0 {
		t.Errorf("/metrics still has series of the removed upstream b:\n%s", strings.Join(l, "\n"))
	}
	// Unchanged: same cooldown, still refused without a request upstream.
	keepAfter := upstreamOf(t, fetchProvider(t, ts.URL, "keep"), keepUp.URL)
	if keepAfter.Status != "unavailable" || !keepAfter.InCooldown || stampOrNil(keepAfter.CooldownUntil) != stampOrNil(keepBefore.CooldownUntil) ||
		keepAfter.ErrorCount != keepBefore.ErrorCount {
		t.Errorf("keep after reload: %s, in_cooldown %v, cooldown_until %s, error_count %d; want unavailable until %s with error_count %d",
			keepAfter.Status, keepAfter.InCooldown, stampOrNil(keepAfter.CooldownUntil), keepAfter.ErrorCount,
			stampOrNil(keepBefore.CooldownUntil), keepBefore.ErrorCount)
	}
	keepHits := keepUp.Hits.Load()
	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/keep/x"); resp.StatusCode != 503 || keepUp.Hits.Load() != keepHits {
		t.Errorf("keep after reload: got %d (upstream hits +%d); want 503 without a request", resp.StatusCode, keepUp.Hits.Load()-keepHits)
	}
	// Changed: a keeps its cooldown, c is new, b is gone.
	multi := fetchProvider(t, ts.URL, "multi")
	if len(multi.Upstreams) != 2 {
		t.Fatalf("multi after reload: %d upstreams; want a and c", len(multi.Upstreams))
	}
	aAfter := upstreamOf(t, multi, a.URL)
	if aAfter.Status != "unavailable" || stampOrNil(aAfter.CooldownUntil) != stampOrNil(aBefore.CooldownUntil) || aAfter.ErrorCount != aBefore.ErrorCount {
		t.Errorf("multi upstream a after reload: %+v; want unavailable until %s as before", aAfter, stampOrNil(aBefore.CooldownUntil))
	}
	if cAfter := upstreamOf(t, multi, c.URL); cAfter.Status != "unknown" {
		t.Errorf("multi upstream c: status %s; want unknown (new)", cAfter.Status)
	}
	aHits := a.Hits.Load()
	for range 4 {
		if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/multi/x"); resp.StatusCode != 200 {
			t.Errorf("multi after reload: got %d; want 200 from c", resp.StatusCode)
		}
	}
	if a.Hits.Load() != aHits || c.Hits.Load() != 4 {
		t.Errorf("multi after reload: a got %d, c got %d of 4 requests; want 0 and 4", a.Hits.Load()-aHits, c.Hits.Load())
	}
}

// TestReloadHealthSettings: a lower threshold and a longer cooldown apply
// to the running entry, without a restart and without losing its counts.
func TestReloadHealthSettings(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{
		proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 5, time.Minute, 1)}})
	cl := ts.Client()
	proxytest.Get(t, cl, ts.URL+"/providers/p/x")
	if u := fetchProvider(t, ts.URL, "p").Upstreams[0]; u.Status != "healthy" || u.ErrorCount != 1 {
		t.Fatalf("after one failure with threshold 5: %s, error_count %d; want healthy, 1", u.Status, u.ErrorCount)
	}

	res := s.Reload(proxytest.Normalized(&config.Config{Providers: []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, 10*time.Minute, 1)}}))
	if !slices.Equal(res.Updated, []string{"provider p"}) || len(res.Changed) != 0 {
		t.Errorf("Reload = %+v; want provider p updated in place", res)
	}
	if u := fetchProvider(t, ts.URL, "p").Upstreams[0]; u.ErrorCount != 1 || u.Status == "unavailable" {
		t.Errorf("after the reload: %s, error_count %d; want the count kept, not tripped yet", u.Status, u.ErrorCount)
	}
	proxytest.Get(t, cl, ts.URL+"/providers/p/x")
	tripped := time.Now()
	u := fetchProvider(t, ts.URL, "p").Upstreams[0]
	if u.Status != "unavailable" || !u.InCooldown {
		t.Fatalf("next failure with threshold 1: %s; want unavailable", u.Status)
	}
	if d := parseStamp(t, "cooldown_until", u.CooldownUntil).Sub(tripped); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Errorf("cooldown_until is %v after the trip; want the new cooldown of 10m", d)
	}
	hits := up.Hits.Load()
	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/p/x"); resp.StatusCode != 503 || up.Hits.Load() != hits {
		t.Errorf("got %d; want 503 without a request upstream", resp.StatusCode)
	}
}

// ---- models ----

// TestReloadModels: an unchanged model keeps its process, a changed
// command gets a new one (the old one is stopped), a removed model's
// plugin stops and it 404s, a timeout or fallback change applies in place.
func TestReloadModels(t *testing.T) {
	tune := commandModel("tune", "test-hangctx", 5*time.Second) // Predict waits for its deadline
	cfg := &config.Config{Health: reloadHealth, Models: []config.Model{
		builtinModel("keep"), builtinModel("change"), builtinModel("remove"), tune}}
	s, ts := startServer(t, cfg)
	pids := map[string]int{}
	for _, k := range []string{"keep", "change", "remove", "tune"} {
		pids[k] = waitModelPid(t, s, k, 0)
	}
	for _, k := range []string{"keep", "change", "remove"} {
		wantPredict(t, ts, k, 200)
	}

	if len(metricLines(t, ts, `kind="model"`, `key="remove"`)) == 0 {
		t.Fatal("no metric for model remove before the reload; the check below would prove nothing")
	}

	changed := builtinModel("change")
	changed.Plugin, changed.Command = "", plugins.BuiltinCommand("sentiment") // same program, now as a command
	tuned := tune
	tuned.Timeout, tuned.Fallback = 300*time.Millisecond, "keep"
	res := s.Reload(proxytest.Normalized(&config.Config{Health: reloadHealth, Models: []config.Model{builtinModel("keep"), changed, tuned}}))
	if !slices.Equal(res.Changed, []string{"model change"}) || !slices.Equal(res.Removed, []string{"model remove"}) ||
		!slices.Equal(res.Updated, []string{"model tune"}) || res.Unchanged != 1 || len(res.Added) != 0 {
		t.Errorf("Reload = %+v; want change changed, remove removed, tune updated, keep unchanged", res)
	}

	// removed: 404 at once, its plugin stopped and reaped
	wantPredict(t, ts, "remove", 404)
	if _, ok := modelDocOf(s, "remove"); ok {
		t.Error("the removed model is still in the health document")
	}
	waitReaped(t, pids["remove"], "the removed model's plugin")
	if l := metricLines(t, ts, `key="remove"`); len(l) > 0 {
		t.Errorf("/metrics still has series of the removed model:\n%s", strings.Join(l, "\n"))
	}
	// changed: a new process, the old one gone
	newPid := waitModelPid(t, s, "change", pids["change"])
	waitReaped(t, pids["change"], "the changed model's old plugin")
	wantPredict(t, ts, "change", 200)
	if !isChild(newPid) {
		t.Errorf("changed model's new pid %d is not a child of the test", newPid)
	}
	// unchanged: same process
	if e, _ := modelDocOf(s, "keep"); e.Pid == nil || *e.Pid != pids["keep"] || !isChild(pids["keep"]) {
		t.Errorf("unchanged model: pid %v; want the same process %d", e.Pid, pids["keep"])
	}
	wantPredict(t, ts, "keep", 200)
	// tuned: same process, the new timeout and fallback in force
	start := time.Now()
	body := wantPredict(t, ts, "tune", 200)
	var got struct {
		ModelKey     string `json:"model_key"`
		FallbackFrom string `json:"fallback_from"`
	}
	json.Unmarshal([]byte(body), &got)
	if got.ModelKey != "keep" || got.FallbackFrom != "tune" {
		t.Errorf("predict tune after the reload: %s; want the answer of fallback keep", body)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("predict tune took %v; want about the new timeout of 300ms", d)
	}
	e, _ := modelDocOf(s, "tune")
	if e.Pid == nil || *e.Pid != pids["tune"] || e.Fallback == nil || *e.Fallback != "keep" {
		t.Errorf("tuned model: pid %v, fallback %v; want pid %d kept and fallback keep", e.Pid, e.Fallback, pids["tune"])
	}
	if e.LastErrorMessage == nil || !strings.Contains(*e.LastErrorMessage, "300ms") {
		t.Errorf("tuned model's last error %q; want a timeout of 300ms", stampOrNil(e.LastErrorMessage))
	}
}

// TestReloadModelRemovedInFlight: a predict in flight on a model that a
// reload removes completes; then the plugin stops.
func TestReloadModelRemovedInFlight(t *testing.T) {
	s, ts := startServer(t, &config.Config{Health: reloadHealth, Models: []config.Model{builtinModel("m"), builtinModel("other")}})
	pid := waitModelPid(t, s, "m", 0)
	waitModelPid(t, s, "other", 0)
	m := s.state.Load().models["m"]

	stopProcess(t, pid) // the call waits in the plugin until SIGCONT
	continued := false
	defer func() {
		if !continued {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	type answer struct {
		code int
		body string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, body, err := predictCall(ts.Client(), ts.URL, "m", "eth dumps hard, bearish")
		done <- answer{code, body, err}
	}()
	proxytest.Eventually(t, 10*time.Second, "the predict call in flight", func() bool { return m.InFlight() == 1 })

	res := s.Reload(proxytest.Normalized(&config.Config{Health: reloadHealth, Models: []config.Model{builtinModel("other")}}))
	if !slices.Equal(res.Removed, []string{"model m"}) {
		t.Errorf("Reload = %+v; want model m removed", res)
	}
	wantPredict(t, ts, "m", 404) // new requests see the new config
	if !isChild(pid) {
		t.Fatal("the plugin was stopped with a call in flight")
	}
	syscall.Kill(pid, syscall.SIGCONT)
	continued = true
	select {
	case a := <-done:
		if a.err != nil || a.code != 200 || !strings.Contains(a.body, `"status":"success"`) {
			t.Errorf("predict in flight across the reload: %d %s %v; want 200 success", a.code, a.body, a.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("predict in flight did not complete")
	}
	waitReaped(t, pid, "the removed model's plugin")
	wantPredict(t, ts, "other", 200)
}

// ---- POST /api/admin/reload ----

const validHCL = `provider "p" {
  upstreams = [%q]
  health {
    error_threshold = 1
    cooldown        = "1h"
  }
}
%s`

// TestReloadEndpoint: a real file through config.Load: valid edits apply,
// an invalid file is refused with FILE:LINE:COL diagnostics (answer and
// log) and the running config keeps serving with its health.
func TestReloadEndpoint(t *testing.T) {
	up, q := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	path := filepath.Join(t.TempDir(), "healproxy.hcl")
	write := func(src string) {
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(validHCL, up.URL, ""))
	load := func() (*config.Config, hcl.Diagnostics) { return config.Load(path, config.LoadOptions{}) }
	cfg, diags := load()
	if diags.HasErrors() {
		t.Fatalf("config: %s", config.FormatDiagnostics(diags))
	}
	log, logs := proxytest.CaptureLogs()
	_, ts := startServer(t, cfg, withOptions(Options{Logger: log, ConfigSource: load}))
	cl := ts.Client()
	up.Code.Store(500)
	proxytest.Get(t, cl, ts.URL+"/providers/p/x") // trips p (threshold 1)
	before := fetchProvider(t, ts.URL, "p")
	up.Code.Store(0)

	// invalid: unknown attribute on line 3, column 3
	write("provider \"p\" {\n  upstreams = [\"" + up.URL + "\"]\n  colour = \"red\"\n}\n")
	resp, body := adminCall(t, ts, "POST", "/api/admin/reload", "", "")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid file: got %d %s; want 422", resp.StatusCode, body)
	}
	var refused struct {
		Status      string   `json:"status"`
		Error       string   `json:"error"`
		Diagnostics []string `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(body), &refused); err != nil {
		t.Fatalf("422 body %q: %v", body, err)
	}
	if refused.Status != "error" || len(refused.Diagnostics) == 0 || !strings.HasPrefix(refused.Diagnostics[0], path+":3:3: ") {
		t.Errorf("422 body %s; want diagnostics starting with %s:3:3: ", body, path)
	}
	if !strings.Contains(logs.String(), path+":3:3") {
		t.Errorf("the log lacks the diagnostics:\n%s", logs)
	}
	after := fetchProvider(t, ts.URL, "p")
	if after.Status != "unavailable" || stampOrNil(after.CooldownUntil) != stampOrNil(before.CooldownUntil) {
		t.Errorf("after a refused reload: %s until %s; want the running health (unavailable until %s)",
			after.Status, stampOrNil(after.CooldownUntil), stampOrNil(before.CooldownUntil))
	}
	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/p/x"); resp.StatusCode != 503 {
		t.Errorf("after a refused reload: got %d; want the running config's 503", resp.StatusCode)
	}

	// valid again, with provider q added
	write(fmt.Sprintf(validHCL, up.URL, fmt.Sprintf("provider \"q\" {\n  upstreams = [%q]\n}\n", q.URL)))
	resp, body = adminCall(t, ts, "POST", "/api/admin/reload", "", "")
	var ok struct {
		Status string   `json:"status"`
		Added  []string `json:"added"`
	}
	json.Unmarshal([]byte(body), &ok)
	if resp.StatusCode != 200 || ok.Status != "success" || !slices.Equal(ok.Added, []string{"provider q"}) {
		t.Fatalf("valid file: got %d %s; want 200 success adding provider q", resp.StatusCode, body)
	}
	if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/q/x"); resp.StatusCode != 200 || q.Hits.Load() != 1 {
		t.Errorf("q after the reload: got %d; want 200 from its upstream", resp.StatusCode)
	}
	if p := fetchProvider(t, ts.URL, "p"); stampOrNil(p.CooldownUntil) != stampOrNil(before.CooldownUntil) {
		t.Errorf("p after a reload that kept it: cooldown_until %s; want %s", stampOrNil(p.CooldownUntil), stampOrNil(before.CooldownUntil))
	}
}

// TestReloadEndpointSource: the endpoint with a ConfigSource the test sets:
// error diagnostics give 422 with FILE:LINE:COL lines; a source answering
// no config is refused too; admin protection applies.
func TestReloadEndpointSource(t *testing.T) {
	const token = "reload-s3cret"
	up, added := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	cfg := &config.Config{AdminToken: token, Providers: []config.Provider{proxytest.Provider(t, "p", up.URL)}}
	src := &configSource{}
	s, ts := startServer(t, cfg, withOptions(Options{ConfigSource: src.load}))

	for _, auth := range []string{"", "wrong"} {
		if resp, body := adminCall(t, ts, "POST", "/api/admin/reload", "", auth); resp.StatusCode != 401 {
			t.Errorf("token %q: got %d %s; want 401", auth, resp.StatusCode, body)
		}
	}
	if src.callCount() != 0 {
		t.Errorf("an unauthorised reload read the config source %d times", src.calls)
	}

	src.set(nil, hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Unsupported argument", Detail: `An argument named "colour" is not expected here.`,
			Subject: &hcl.Range{Filename: "/etc/healproxy.hcl", Start: hcl.Pos{Line: 7, Column: 3}, End: hcl.Pos{Line: 7, Column: 9}}},
		{Severity: hcl.DiagError, Summary: "Invalid duration",
			Subject: &hcl.Range{Filename: "/etc/healproxy.hcl", Start: hcl.Pos{Line: 12, Column: 15}, End: hcl.Pos{Line: 12, Column: 20}}},
	})
	resp, body := adminCall(t, ts, "POST", "/api/admin/reload", "", token)
	var refused struct {
		Diagnostics []string `json:"diagnostics"`
	}
	json.Unmarshal([]byte(body), &refused)
	want := []string{`/etc/healproxy.hcl:7:3: Unsupported argument; An argument named "colour" is not expected here.`,
		"/etc/healproxy.hcl:12:15: Invalid duration"}
	if resp.StatusCode != http.StatusUnprocessableEntity || !slices.Equal(refused.Diagnostics, want) {
		t.Errorf("got %d %s; want 422 with diagnostics %q", resp.StatusCode, body, want)
	}
	if s.state.Load().cfg != cfg {
		t.Error("a refused reload replaced the running config")
	}
	// A source that answers neither a config nor an error is refused too.
	src.set(nil, nil)
	if resp, body := adminCall(t, ts, "POST", "/api/admin/reload", "", token); resp.StatusCode/100 == 2 || s.state.Load().cfg != cfg {
		t.Errorf("nil config without diagnostics: got %d %s; want a refusal", resp.StatusCode, body)
	}
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
		t.Errorf("after refused reloads: got %d; want 200", resp.StatusCode)
	}

	next := &config.Config{AdminToken: token, Providers: []config.Provider{proxytest.Provider(t, "p", up.URL), proxytest.Provider(t, "added", added.URL)}}
	src.set(next, nil)
	if resp, body := adminCall(t, ts, "POST", "/api/admin/reload", "", token); resp.StatusCode != 200 {
		t.Fatalf("valid: got %d %s; want 200", resp.StatusCode, body)
	}
	if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/added/x"); resp.StatusCode != 200 {
		t.Errorf("added: got %d; want 200", resp.StatusCode)
	}
	if resp, _ := adminCall(t, ts, "GET", "/api/admin/reload", "", token); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET reload: got %d; want 405", resp.StatusCode)
	}
}

// TestReloadEndpointLoopbackOnly: without a token only loopback clients
// may reload; without a ConfigSource reloads are refused.
func TestReloadEndpointLoopbackOnly(t *testing.T) {
	s := newAdminTestServer(t, "") // no ConfigSource
	if w := serveRecorded(s, "POST", "/api/admin/reload", "192.0.2.1:1234", nil); w.Code != 403 {
		t.Errorf("remote: got %d; want 403", w.Code)
	}
	if w := serveRecorded(s, "POST", "/api/admin/reload", "127.0.0.1:1234", nil); w.Code/100 != 4 || w.Code == 403 {
		t.Errorf("loopback, no config source: got %d %s; want a 4xx refusal", w.Code, w.Body)
	}
}

// ---- in flight ----

// TestReloadInFlight: 20 requests held by a slow upstream all complete with
// 200 across reloads that add a provider, change an unrelated one, change
// their provider's health settings and then its upstream list.
func TestReloadInFlight(t *testing.T) {
	slow, other, other2, extra, added := proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	slow.Hold()
	slowCfg := proxytest.Provider(t, "slow", slow.URL)
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{slowCfg, proxytest.Provider(t, "other", other.URL)}})
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	const n = 20
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := cl.Get(ts.URL + fmt.Sprintf("/providers/slow/req/%d", i))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	proxytest.Eventually(t, 10*time.Second, "20 requests held upstream", func() bool { return slow.InFlight.Load() == n })

	steps := []struct {
		name string
		cfg  []config.Provider
	}{
		{"add a provider, change an unrelated one", []config.Provider{slowCfg, proxytest.Provider(t, "other", other2.URL), proxytest.Provider(t, "added", added.URL)}},
		{"change this provider's health settings", []config.Provider{proxytest.WithHealth(slowCfg, 7, 2*time.Minute, 3), proxytest.Provider(t, "other", other2.URL), proxytest.Provider(t, "added", added.URL)}},
		{"change this provider's upstream list", []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "slow", slow.URL, extra.URL), 7, 2*time.Minute, 3), proxytest.Provider(t, "added", added.URL)}},
	}
	for _, st := range steps {
		res := s.Reload(proxytest.Normalized(&config.Config{Providers: st.cfg}))
		t.Logf("%s: %+v", st.name, res)
		if resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/added/x"); resp.StatusCode != 200 {
			t.Errorf("%s: the added provider answered %d while requests are in flight", st.name, resp.StatusCode)
		}
	}
	if g := slow.InFlight.Load(); g != n {
		t.Errorf("after the reloads %d requests are still upstream; want %d", g, n)
	}
	slow.Release()
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d across the reloads: got %d; want 200", i, c)
		}
	}
	// They were counted on the upstream's health, which the reloads kept.
	if u := upstreamOf(t, fetchProvider(t, ts.URL, "slow"), slow.URL); u.SuccessCount != n || u.Status != "healthy" {
		t.Errorf("slow upstream after the reloads: %s with %d successes; want healthy with %d", u.Status, u.SuccessCount, n)
	}
}

// TestReloadConcurrent: reloads racing with traffic and diagnostics (run
// with -race).
func TestReloadConcurrent(t *testing.T) {
	a, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	cfgs := []*config.Config{
		{Providers: []config.Provider{proxytest.Provider(t, "p", a.URL), proxytest.Provider(t, "q", b.URL)}},
		{Providers: []config.Provider{proxytest.WithHealth(proxytest.Provider(t, "p", a.URL), 9, time.Minute, 1), proxytest.Provider(t, "q", b.URL, a.URL)}},
		{Providers: []config.Provider{proxytest.Provider(t, "p", a.URL, b.URL)}},
	}
	s, ts := startServer(t, cfgs[0])
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := ts.Client().Get(ts.URL + "/providers/p/x")
				if err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("GET p during reloads: %d", resp.StatusCode)
				}
				s.healthDocument()
			}
		})
	}
	for i := range 60 {
		s.Reload(proxytest.Normalized(cfgs[i%len(cfgs)]))
		metricLines(t, ts, "healproxy_health_status")
	}
	close(stop)
	wg.Wait()
}

// Settings read only at start-up are named in the reload's warnings.
func TestReloadWarnsOfRestartOnlySettings(t *testing.T) {
	up := proxytest.NewUpstream(t)
	cfg := &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", up.URL)}}
	s, _ := startServer(t, cfg)
	next := *cfg
	next.Listen = "127.0.0.1:1"
	next.Shared = &statecfg.SharedState{RedisURL: "redis://127.0.0.1:1/0", Redacted: "redis://127.0.0.1:1/0", KeyPrefix: "hp:"}
	res := s.Reload(proxytest.Normalized(&next))
	got := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"listen changed", "state.redis, key_prefix, quorum or replica changed"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q; want one saying %q", res.Warnings, want)
		}
	}
	if s.Reload(proxytest.Normalized(&next)).Warnings != nil {
		t.Errorf("a second reload of the same config warned: %q", s.Reload(proxytest.Normalized(&next)).Warnings)
	}
}
