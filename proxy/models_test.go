package proxy_test

// Model tests (docs/behaviour.md: the state machine, models, self-heal).
// Every test runs real
// plugin subprocesses: the built-in sentiment plugin, re-executed from this
// test binary, and the test plugins of main_test.go. None uses a fixed
// sleep: each waits for a condition of the health document with a deadline.
// None runs in parallel, since several count the plugin processes of this
// test binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/plugins/sentiment"
	"github.com/healproxy/healproxy/proxy"
)

// ---- configuration ----

// testHealth is a health block with short settings; auto_reinit as given.
func testHealth(autoReinit bool) config.Health {
	return config.Health{
		ErrorThreshold:      3,
		Cooldown:            2 * time.Second,
		RecoveryCount:       1,
		AutoReinit:          autoReinit,
		ReinitCooldown:      time.Second,
		MaxConcurrentReinit: 5,
	}
}

// sentimentModel is a model served by the built-in sentiment plugin.
func sentimentModel(key string, h config.Health) config.Model {
	return config.Model{Key: key, Name: key, Plugin: "sentiment", Timeout: 5 * time.Second, Health: h}
}

// testPluginModel is a model served by a test plugin of main_test.go.
func testPluginModel(key, plugin string, timeout time.Duration, h config.Health) config.Model {
	return config.Model{Key: key, Name: key, Command: []string{os.Args[0], "plugin", plugin}, Timeout: timeout, Health: h}
}

func modelConfig(h config.Health, models ...config.Model) *config.Config {
	return &config.Config{Listen: "127.0.0.1:0", Health: h, Models: models}
}

// ---- the proxy under test ----

type modelProxy struct {
	tb     testing.TB
	srv    *proxy.Server
	url    string
	client *http.Client
}

// newModelProxy serves proxy.New(cfg) on a test server. At the end of the
// test it closes the proxy and checks that no plugin process outlives it.
// env is passed to the plugins (Options.PluginEnv).
func newModelProxy(tb testing.TB, cfg *config.Config, env ...string) *modelProxy {
	tb.Helper()
	logger, logs := proxytest.CaptureLogs()
	if _, ok := tb.(*testing.B); ok {
		logger = proxytest.DiscardLogger()
	}
	srv, err := proxy.New(proxytest.Normalized(cfg), proxy.Options{Logger: logger, PluginEnv: env})
	if err != nil {
		tb.Fatalf("proxy.New: %v", err)
	}
	ts := httptest.NewServer(srv)
	tr := &http.Transport{MaxIdleConnsPerHost: 256, Proxy: nil}
	mp := &modelProxy{tb: tb, srv: srv, url: ts.URL, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			tb.Errorf("Server.Close: %v", err)
		}
		ts.Close()
		tr.CloseIdleConnections()
		if left := pluginChildren(""); len(left) > 0 {
			tb.Errorf("plugin processes outlived Server.Close: %v", left)
		}
		if tb.Failed() {
			tb.Logf("proxy log:\n%s", logs)
		}
	})
	return mp
}

// ---- HTTP helpers ----

type labelScore struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

type predictReply struct {
	Code         int
	RetryAfter   string
	Raw          string
	Status       string         `json:"status"`
	ModelKey     string         `json:"model_key"`
	FallbackFrom string         `json:"fallback_from"`
	Data         [][]labelScore `json:"data"`
	Error        string         `json:"error"`
}

func (mp *modelProxy) predictBody(key string, body []byte) predictReply {
	mp.tb.Helper()
	resp, err := mp.client.Post(mp.url+"/models/"+url.PathEscape(key)+"/predict", "application/json", bytes.NewReader(body))
	if err != nil {
		mp.tb.Fatalf("predict %s: %v", key, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		mp.tb.Fatalf("predict %s: reading the body: %v", key, err)
	}
	r := predictReply{Code: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r); err != nil {
			mp.tb.Fatalf("predict %s: %d with a body that is not JSON: %v\n%s", key, resp.StatusCode, err, raw)
		}
	}
	return r
}

// predict sends {"inputs": inputs}.
func (mp *modelProxy) predict(key string, inputs any) predictReply {
	mp.tb.Helper()
	body, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		mp.tb.Fatal(err)
	}
	return mp.predictBody(key, body)
}

// wantPredictOK checks a 200 answer of model key for n inputs.
func wantPredictOK(tb testing.TB, r predictReply, key string, n int) {
	tb.Helper()
	if r.Code != http.StatusOK || r.Status != "success" || r.ModelKey != key || len(r.Data) != n {
		tb.Fatalf("predict: got %d %s; want 200 success from %q with %d predictions", r.Code, r.Raw, key, n)
	}
}

// healReport is a self-heal answer with its status code and raw body.
type healReport struct {
	Code int
	Raw  string
	api.Heal
}

// selfHeal posts to /api/diagnostics/self-heal with query (may be "").
// It is safe to call from several goroutines.
func (mp *modelProxy) selfHeal(query string) (healReport, error) {
	u := mp.url + "/api/diagnostics/self-heal"
	if query != "" {
		u += "?" + query
	}
	resp, err := mp.client.Post(u, "", nil)
	if err != nil {
		return healReport{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return healReport{}, err
	}
	rep := healReport{Code: resp.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fmt.Errorf("self-heal: %d with a body that is not JSON: %v\n%s", resp.StatusCode, err, raw)
	}
	return rep, nil
}

func (mp *modelProxy) mustSelfHeal(query string) healReport {
	mp.tb.Helper()
	rep, err := mp.selfHeal(query)
	if err != nil {
		mp.tb.Fatal(err)
	}
	if rep.Code != http.StatusOK || rep.Status != "completed" {
		mp.tb.Fatalf("self-heal?%s: got %d %s; want 200 completed", query, rep.Code, rep.Raw)
	}
	return rep
}

// modelEntry is a model entry of the health document, with helpers.
type modelEntry api.Model

func (e modelEntry) pid() int {
	if e.Pid == nil {
		return 0
	}
	return *e.Pid
}

func (e modelEntry) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

func (mp *modelProxy) health() api.Health {
	mp.tb.Helper()
	resp, err := mp.client.Get(mp.url + "/api/diagnostics/health")
	if err != nil {
		mp.tb.Fatalf("health: %v", err)
	}
	defer resp.Body.Close()
	var doc api.Health
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		mp.tb.Fatalf("health: %d, %v", resp.StatusCode, err)
	}
	return doc
}

func (mp *modelProxy) model(key string) modelEntry {
	mp.tb.Helper()
	for _, e := range mp.health().Models.Entries {
		if e.ModelKey == key {
			return modelEntry(e)
		}
	}
	mp.tb.Fatalf("model %q is not in the health document", key)
	return modelEntry{}
}

// waitModel polls the health document until cond holds for model key, and
// fails the test if it does not within d.
func (mp *modelProxy) waitModel(key, what string, d time.Duration, cond func(modelEntry) bool) modelEntry {
	mp.tb.Helper()
	deadline := time.Now().Add(d)
	for {
		e := mp.model(key)
		if cond(e) {
			return e
		}
		if time.Now().After(deadline) {
			mp.tb.Fatalf("model %q: not %s within %s; last entry: %s", key, what, d, e)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for an effect
	}
}

func healthy(e modelEntry) bool { return e.Loaded && e.Pid != nil && e.Status == "healthy" }

func deadAndUnavailable(e modelEntry) bool {
	return !e.Loaded && e.Pid == nil && e.Status == "unavailable"
}

// waitHealthy waits for a healthy, loaded model whose pid is none of not.
func (mp *modelProxy) waitHealthy(key string, d time.Duration, not ...int) modelEntry {
	mp.tb.Helper()
	return mp.waitModel(key, fmt.Sprintf("healthy with a pid other than %v", not), d, func(e modelEntry) bool {
		return healthy(e) && !slices.Contains(not, e.pid())
	})
}

// startupWait bounds a plugin start under the race detector on a busy box.
const startupWait = 15 * time.Second

// ---- processes ----

type procInfo struct {
	Pid, PPid int
	State     string
	Args      []string
}

// readProc reads /proc/PID; ok is false when there is no such process.
func readProc(pid int) (procInfo, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	// "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	info := procInfo{Pid: pid, PPid: ppid, State: f[0]}
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		info.Args = strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	}
	return info, true
}

// children lists the child processes of this test binary, zombies
// included.
func children() []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && p.PPid == self {
			out = append(out, p)
		}
	}
	return out
}

// pluginChildren lists the child processes of this test binary that run
// `plugin NAME` (any NAME when name is ""), and every zombie child (a
// zombie's cmdline is empty).
func pluginChildren(name string) []procInfo {
	var out []procInfo
	for _, p := range children() {
		isPlugin := len(p.Args) >= 3 && p.Args[1] == "plugin" && (name == "" || p.Args[2] == name)
		if isPlugin || p.State == "Z" {
			out = append(out, p)
		}
	}
	return out
}

// wantReaped fails unless pid is gone: no longer a child of this process
// (neither running nor a zombie).
func wantReaped(tb testing.TB, pid int) {
	tb.Helper()
	if p, ok := readProc(pid); ok && p.PPid == os.Getpid() {
		tb.Errorf("old plugin pid %d is still a child of the test (state %s, %q): not reaped", pid, p.State, p.Args)
	}
}

func kill(tb testing.TB, pid int, sig syscall.Signal) {
	tb.Helper()
	if pid <= 0 {
		tb.Fatalf("kill: bad pid %d", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		tb.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// stop SIGSTOPs pid and waits until every thread of it is stopped.
func stop(tb testing.TB, pid int) {
	tb.Helper()
	kill(tb, pid, syscall.SIGSTOP)
	proctest.WaitStopped(tb, pid)
}

func retryAfterSeconds(tb testing.TB, r predictReply) int {
	tb.Helper()
	n, err := strconv.Atoi(r.RetryAfter)
	if err != nil {
		tb.Fatalf("Retry-After %q is not whole seconds (answer %d %s)", r.RetryAfter, r.Code, r.Raw)
	}
	return n
}

// ---- predict ----

func TestPredictSingleAndBatch(t *testing.T) {
	mp := newModelProxy(t, modelConfig(testHealth(false), sentimentModel("sent", testHealth(false))))
	mp.waitHealthy("sent", startupWait)

	texts := []string{
		"Bitcoin is bullish! To the moon, buying more",
		"ETH crashed hard, massive liquidations, this is a rug pull",
		"The ETF decision is scheduled for Thursday",
	}
	wantTop := []string{"bullish", "bearish", "neutral"}
	check := func(t *testing.T, text string, got []labelScore) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%q: %d labels, want 3: %v", text, len(got), got)
		}
		want := sentiment.Analyze(text) // the same model, in process
		var sum float64
		seen := map[string]bool{}
		for i, ls := range got {
			if !slices.Contains([]string{"bullish", "bearish", "neutral"}, ls.Label) || seen[ls.Label] {
				t.Errorf("%q: label %q unknown or repeated: %v", text, ls.Label, got)
			}
			seen[ls.Label] = true
			if i > 0 && ls.Score > got[i-1].Score {
				t.Errorf("%q: not best first: %v", text, got)
			}
			if ls.Label != want[i].Label || math.Abs(ls.Score-want[i].Score) > 1e-9 {
				t.Errorf("%q: [%d] = %v through the plugin, %v in process", text, i, ls, want[i])
			}
			sum += ls.Score
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("%q: scores sum to %v, want 1", text, sum)
		}
	}

	t.Run("single", func(t *testing.T) {
		for i, text := range texts {
			r := mp.predict("sent", text)
			wantPredictOK(t, r, "sent", 1)
			check(t, text, r.Data[0])
			if r.Data[0][0].Label != wantTop[i] {
				t.Errorf("%q labelled %s, want %s", text, r.Data[0][0].Label, wantTop[i])
			}
		}
	})
	t.Run("batch", func(t *testing.T) {
		r := mp.predict("sent", texts)
		wantPredictOK(t, r, "sent", len(texts))
		for i, text := range texts {
			check(t, text, r.Data[i])
			if r.Data[i][0].Label != wantTop[i] {
				t.Errorf("batch[%d] %q labelled %s, want %s (predictions out of order?)", i, text, r.Data[i][0].Label, wantTop[i])
			}
		}
	})
	e := mp.model("sent")
	if e.SuccessCount != int64(len(texts)+1) || e.ErrorCount != 0 || e.Status != "healthy" {
		t.Errorf("after %d good predicts: %s; want success_count %d, error_count 0, healthy", len(texts)+1, e, len(texts)+1)
	}
}

func TestPredictBadRequestsLeaveHealthAlone(t *testing.T) {
	mp := newModelProxy(t, modelConfig(testHealth(false), sentimentModel("sent", testHealth(false))))
	mp.waitHealthy("sent", startupWait)
	wantPredictOK(t, mp.predict("sent", "warm up"), "sent", 1)
	before := mp.model("sent")

	tooMany := make([]string, proxy.MaxPredictInputs+1)
	for i := range tooMany {
		tooMany[i] = "btc"
	}
	tooManyBody, _ := json.Marshal(map[string]any{"inputs": tooMany})
	bigBody := append([]byte(`{"inputs": "`), bytes.Repeat([]byte("a"), proxy.MaxPredictBody)...)
	bigBody = append(bigBody, `"}`...)

	tests := []struct {
		name     string
		key      string
		body     []byte
		wantCode int
	}{
		{"bad JSON", "sent", []byte(`{"inputs": "unterminated`), 400},
		{"not an object", "sent", []byte(`"just a string"`), 400},
		{"empty body", "sent", nil, 400},
		{"missing inputs", "sent", []byte(`{"text": "btc"}`), 400},
		{"null inputs", "sent", []byte(`{"inputs": null}`), 400},
		{"empty list", "sent", []byte(`{"inputs": []}`), 400},
		{"number", "sent", []byte(`{"inputs": 42}`), 400},
		{"list of numbers", "sent", []byte(`{"inputs": [1, 2]}`), 400},
		{"mixed list", "sent", []byte(`{"inputs": ["btc", 2]}`), 400},
		{"object", "sent", []byte(`{"inputs": {"text": "btc"}}`), 400},
		{"body over the limit", "sent", bigBody, 413},
		{"too many inputs", "sent", tooManyBody, 413},
		{"unknown model", "no_such_model", []byte(`{"inputs": "btc"}`), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mp.predictBody(tt.key, tt.body)
			if r.Code != tt.wantCode {
				t.Fatalf("got %d %s; want %d", r.Code, r.Raw, tt.wantCode)
			}
			if r.Status != "error" || r.Error == "" || r.ModelKey != tt.key {
				t.Errorf("body %s; want status error, model_key %q and an error message", r.Raw, tt.key)
			}
		})
	}

	after := mp.model("sent")
	if after.ErrorCount != 0 || after.SuccessCount != before.SuccessCount || after.Status != "healthy" ||
		after.LastErrorMessage != nil || after.pid() != before.pid() {
		t.Errorf("bad requests touched the model's health:\nbefore %s\nafter  %s", before, after)
	}
}

// ---- crash, self-heal, auto-reinit ----

func TestModelKillThenSelfHeal(t *testing.T) {
	h := testHealth(false)
	h.Cooldown = time.Second
	h.ReinitCooldown = 5 * time.Second // only checked, never waited for
	mp := newModelProxy(t, modelConfig(h, sentimentModel("sent", h)))
	first := mp.waitHealthy("sent", startupWait)
	if first.Restarts != 0 || first.LastReinit != nil {
		t.Errorf("first start counted as a reinit: %s", first)
	}
	oldPid := first.pid()

	kill(t, oldPid, syscall.SIGKILL)
	dead := mp.waitModel("sent", "unloaded and unavailable", time.Second, deadAndUnavailable)
	if dead.LastErrorMessage == nil || *dead.LastErrorMessage == "" {
		t.Errorf("dead plugin without last_error_message: %s", dead)
	}
	if doc := mp.health(); doc.Overall.ModelsOK || doc.Models.Summary.Unavailable != 1 {
		t.Errorf("models_ok %v, %d unavailable; want false, 1", doc.Overall.ModelsOK, doc.Models.Summary.Unavailable)
	}
	wantReaped(t, oldPid)

	r := mp.predict("sent", "btc")
	if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.ModelKey != "sent" || r.Error == "" {
		t.Fatalf("predict on a dead plugin: got %d %s; want 503 unavailable", r.Code, r.Raw)
	}
	// auto_reinit off: Retry-After is the cooldown, at least 1.
	if ra := retryAfterSeconds(t, r); ra != 1 {
		t.Errorf("Retry-After %d; want the cooldown of 1s", ra)
	}
	// It stays dead and unavailable, also once the cooldown is over:
	// there is nothing to send trials to, and nothing respawns it.
	for until := time.Now().Add(h.Cooldown + 500*time.Millisecond); time.Now().Before(until); {
		if e := mp.model("sent"); !deadAndUnavailable(e) || e.Restarts != 0 {
			t.Fatalf("dead plugin with auto_reinit off: %s; want unavailable, not loaded, not restarted", e)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if r := mp.predict("sent", "btc"); r.Code != http.StatusServiceUnavailable {
		t.Errorf("predict after the cooldown of a dead plugin: %d %s; want 503", r.Code, r.Raw)
	}

	rep := mp.mustSelfHeal("model_key=sent")
	if len(rep.Results) != 1 || rep.Results[0].ModelKey != "sent" || rep.Results[0].Status != "success" ||
		rep.Summary.TotalAttempts != 1 || rep.Summary.Successful != 1 || rep.Summary.Failed != 0 {
		t.Fatalf("self-heal: %s; want one success", rep.Raw)
	}
	healed := mp.model("sent")
	if !healthy(healed) || healed.pid() == oldPid || healed.Restarts != 1 || healed.LastReinit == nil ||
		healed.ErrorCount != 0 || healed.InCooldown {
		t.Errorf("after self-heal: %s; want healthy, a new pid, restarts 1, last_reinit set, counters reset", healed)
	}
	if rep.Results[0].Pid != nil && *rep.Results[0].Pid != healed.pid() {
		t.Errorf("self-heal reported pid %d, health shows %d", *rep.Results[0].Pid, healed.pid())
	}
	if _, err := time.Parse(time.RFC3339, *healed.LastReinit); err != nil {
		t.Errorf("last_reinit %q: %v", *healed.LastReinit, err)
	}
	if n := len(pluginChildren("sentiment")); n != 1 {
		t.Errorf("%d sentiment plugin processes after self-heal, want 1: %v", n, pluginChildren(""))
	}
	wantPredictOK(t, mp.predict("sent", "btc to the moon"), "sent", 1)

	// A second self-heal inside reinit_cooldown is refused, and not counted.
	rep = mp.mustSelfHeal("model_key=sent")
	if len(rep.Results) != 1 || rep.Results[0].Status != "cooldown" || rep.Results[0].CooldownRemaining == nil ||
		*rep.Results[0].CooldownRemaining <= 0 || *rep.Results[0].CooldownRemaining > 5 ||
		rep.Summary.TotalAttempts != 0 || rep.Summary.Successful != 0 || rep.Summary.Failed != 0 {
		t.Errorf("self-heal inside reinit_cooldown: %s; want cooldown with 0 < cooldown_remaining <= 5, total_attempts 0", rep.Raw)
	}
	if e := mp.model("sent"); e.pid() != healed.pid() || e.Restarts != 1 {
		t.Errorf("a refused self-heal restarted the plugin: %s", e)
	}

	rep, err := mp.selfHeal("model_key=no_such_model")
	if err != nil || rep.Code != http.StatusNotFound {
		t.Errorf("self-heal of an unknown model: %d %s %v; want 404", rep.Code, rep.Raw, err)
	}
}

func TestModelKillAutoReinit(t *testing.T) {
	h := testHealth(true)
	h.ReinitCooldown = 3 * time.Second
	mp := newModelProxy(t, modelConfig(h, sentimentModel("sent", h)))
	p0 := mp.waitHealthy("sent", startupWait).pid()

	// No reinit yet: the first crash is respawned at once.
	kill(t, p0, syscall.SIGKILL)
	e := mp.waitHealthy("sent", startupWait, p0)
	p1 := e.pid()
	if e.Restarts != 1 || e.LastReinit == nil {
		t.Errorf("after auto-reinit: %s; want restarts 1, last_reinit set", e)
	}
	wantReaped(t, p0)

	// A second crash inside reinit_cooldown waits for it; meanwhile the
	// 503 says when the next automatic reinit is due.
	kill(t, p1, syscall.SIGKILL)
	mp.waitModel("sent", "unloaded and unavailable", time.Second, deadAndUnavailable)
	r := mp.predict("sent", "btc")
	if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" {
		t.Fatalf("predict while waiting for the auto-reinit: got %d %s; want 503 unavailable", r.Code, r.Raw)
	}
	if ra := retryAfterSeconds(t, r); ra < 1 || ra > 3 {
		t.Errorf("Retry-After %d; want the seconds until the next auto-reinit (1..3)", ra)
	}
	e = mp.waitHealthy("sent", h.ReinitCooldown+startupWait, p0, p1)
	if e.Restarts != 2 {
		t.Errorf("after the second auto-reinit: %s; want restarts 2", e)
	}
	wantReaped(t, p1)
	wantPredictOK(t, mp.predict("sent", "btc"), "sent", 1)
}

// ---- hung plugins ----

// TestModelStoppedPlugin: a SIGSTOPped plugin never answers. Callers get
// 504 within the model's timeout, the model becomes unavailable after
// error_threshold timeouts, and SIGKILL (self-heal or auto-reinit) reaps the
// stopped process.
func TestModelStoppedPlugin(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const margin = 700 * time.Millisecond // the race detector on a busy box
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprintf("auto_reinit=%v", auto), func(t *testing.T) {
			h := testHealth(auto)
			h.ReinitCooldown = 300 * time.Millisecond
			m := sentimentModel("sent", h)
			m.Timeout = timeout
			mp := newModelProxy(t, modelConfig(h, m))
			p0 := mp.waitHealthy("sent", startupWait).pid()
			wantPredictOK(t, mp.predict("sent", "btc"), "sent", 1)

			stop(t, p0)
			// error_threshold concurrent callers: none hangs.
			var wg sync.WaitGroup
			replies := make([]predictReply, h.ErrorThreshold)
			took := make([]time.Duration, h.ErrorThreshold)
			for i := range replies {
				wg.Go(func() {
					start := time.Now()
					replies[i] = mp.predict("sent", "btc")
					took[i] = time.Since(start)
				})
			}
			wg.Wait()
			for i, r := range replies {
				if r.Code != http.StatusGatewayTimeout || r.Status != "error" || r.ModelKey != "sent" {
					t.Errorf("call %d to a stopped plugin: %d %s; want 504", i, r.Code, r.Raw)
				}
				if took[i] > timeout+margin {
					t.Errorf("call %d took %s; the timeout is %s", i, took[i], timeout)
				}
				t.Logf("call %d: %d after %s", i, r.Code, took[i].Round(time.Millisecond))
			}

			if !auto {
				e := mp.model("sent")
				if e.Status != "unavailable" || !e.InCooldown || e.ErrorCount < int64(h.ErrorThreshold) || e.pid() != p0 {
					t.Fatalf("after %d timeouts: %s; want unavailable, in cooldown, same pid", h.ErrorThreshold, e)
				}
				start := time.Now()
				r := mp.predict("sent", "btc")
				if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || time.Since(start) > timeout {
					t.Errorf("call while unavailable: %d %s after %s; want an immediate 503", r.Code, r.Raw, time.Since(start))
				}
				if ra := retryAfterSeconds(t, r); ra < 1 || ra > 2 {
					t.Errorf("Retry-After %d; want the cooldown (1..2)", ra)
				}
				rep := mp.mustSelfHeal("model_key=sent")
				if len(rep.Results) != 1 || rep.Results[0].Status != "success" {
					t.Fatalf("self-heal of a stopped plugin: %s", rep.Raw)
				}
			}
			e := mp.waitHealthy("sent", startupWait, p0)
			if e.Restarts != 1 {
				t.Errorf("after the reinit: %s; want restarts 1", e)
			}
			wantReaped(t, p0)
			wantPredictOK(t, mp.predict("sent", "btc"), "sent", 1)
		})
	}
}

// TestModelHungPlugin: a plugin whose Predict never returns, whether or not
// it watches its context, cannot hang callers, and Close still ends it.
func TestModelHungPlugin(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const margin = 700 * time.Millisecond
	for _, plugin := range []string{"test-hang", "test-hangctx"} {
		t.Run(plugin, func(t *testing.T) {
			h := testHealth(false)
			mp := newModelProxy(t, modelConfig(h, testPluginModel("hung", plugin, timeout, h)))
			mp.waitHealthy("hung", startupWait)
			for i := range h.ErrorThreshold {
				start := time.Now()
				r := mp.predict("hung", "btc")
				if r.Code != http.StatusGatewayTimeout || time.Since(start) > timeout+margin {
					t.Errorf("call %d: %d %s after %s; want 504 within %s", i, r.Code, r.Raw, time.Since(start), timeout)
				}
			}
			if e := mp.model("hung"); e.Status != "unavailable" || e.ErrorCount != int64(h.ErrorThreshold) ||
				e.LastErrorMessage == nil || !strings.Contains(*e.LastErrorMessage, "timeout") {
				t.Errorf("after %d timeouts: %s; want unavailable with a timeout message", h.ErrorThreshold, e)
			}
		})
	}
}

// TestModelCrashOnPredict: a plugin that dies in the middle of a call makes
// the model unavailable at once; the caller gets an answer, not a hang.
func TestModelCrashOnPredict(t *testing.T) {
	h := testHealth(false)
	mp := newModelProxy(t, modelConfig(h, testPluginModel("crashy", "test-crash", 2*time.Second, h)))
	p0 := mp.waitHealthy("crashy", startupWait).pid()
	r := mp.predict("crashy", "btc")
	if r.Code < 500 || r.Status == "success" {
		t.Errorf("predict that crashed the plugin: %d %s; want a 5xx", r.Code, r.Raw)
	}
	e := mp.waitModel("crashy", "unloaded and unavailable", time.Second, deadAndUnavailable)
	if e.LastErrorMessage == nil {
		t.Errorf("no last_error_message: %s", e)
	}
	wantReaped(t, p0)
}

// ---- crash loops, missing binaries ----

// TestModelCrashLoopThrottled: a plugin that dies on every start is
// retried at most once per reinit_cooldown, while the proxy keeps serving
// a provider and another model.
func TestModelCrashLoopThrottled(t *testing.T) {
	upstream := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	})
	upURL, _ := url.Parse(upstream.URL)

	falseCmd := "/bin/false"
	if _, err := os.Stat(falseCmd); err != nil {
		falseCmd = ""
	}
	cases := []struct {
		name    string
		command []string
	}{
		{"exits before the handshake", []string{os.Args[0], "plugin", "test-exit"}},
		{"exits after the handshake", []string{os.Args[0], "plugin", "test-crashsoon"}},
		{"/bin/false", []string{falseCmd}},
	}
	const reinitCooldown = 300 * time.Millisecond
	const window = 2 * time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.command[0] == "" {
				t.Skip("no /bin/false here")
			}
			h := testHealth(true)
			h.ReinitCooldown = reinitCooldown
			cfg := modelConfig(h,
				config.Model{Key: "loop", Name: "loop", Command: tc.command, Timeout: time.Second, Health: h},
				sentimentModel("sent", h))
			cfg.Providers = []config.Provider{{ID: "up", Name: "up", Upstreams: []*url.URL{upURL}, Timeout: 2 * time.Second, Health: h}}
			mp := newModelProxy(t, cfg)
			mp.waitHealthy("sent", startupWait)
			mp.waitModel("loop", "restarted at least once", startupWait, func(e modelEntry) bool { return e.Restarts >= 1 })

			t0 := time.Now() // before r0 is read and r1 after elapsed is: no start is missed
			r0 := mp.model("loop").Restarts
			maxProcs := 0
			for time.Since(t0) < window { // serve traffic through the window
				if resp, err := mp.client.Get(mp.url + "/providers/up/ping"); err != nil || resp.StatusCode != 200 {
					t.Fatalf("provider request during the crash loop: %v %v", resp, err)
				} else {
					resp.Body.Close()
				}
				wantPredictOK(t, mp.predict("sent", "btc"), "sent", 1)
				if r := mp.predict("loop", "btc"); r.Code != http.StatusServiceUnavailable && r.Code != http.StatusOK {
					t.Errorf("predict on the crashing model: %d %s; want 503 (or 200 in a lucky moment)", r.Code, r.Raw)
				}
				maxProcs = max(maxProcs, countArgs(tc.command))
			}
			e := mp.model("loop")
			elapsed := time.Since(t0)
			grew := e.Restarts - r0
			limit := int(elapsed/reinitCooldown) + 1
			t.Logf("restarts +%d in %s (reinit_cooldown %s, limit %d); at most %d processes at once", grew, elapsed.Round(time.Millisecond), reinitCooldown, limit, maxProcs)
			if grew > limit {
				t.Errorf("restarts grew by %d in %s; with reinit_cooldown %s at most %d", grew, elapsed, reinitCooldown, limit)
			}
			if grew < 1 {
				t.Errorf("restarts did not grow in %s; the loop stopped retrying", elapsed)
			}
			if maxProcs > 1 {
				t.Errorf("%d processes of the crashing model at once", maxProcs)
			}
			if e.LastErrorMessage == nil {
				t.Errorf("crash-looping model without last_error_message: %s", e)
			}
		})
	}
}

// countArgs counts the live children of this test binary running argv.
func countArgs(argv []string) int {
	n := 0
	for _, p := range children() {
		if p.State != "Z" && slices.Equal(p.Args, argv) {
			n++
		}
	}
	return n
}

func TestModelMissingPluginBinary(t *testing.T) {
	h := testHealth(false)
	mp := newModelProxy(t, modelConfig(h,
		config.Model{Key: "missing", Name: "missing", Command: []string{"./does-not-exist"}, Timeout: time.Second, Health: h},
		sentimentModel("sent", h)))
	e := mp.waitModel("missing", "unavailable", startupWait, deadAndUnavailable)
	msg := ""
	if e.LastErrorMessage != nil {
		msg = *e.LastErrorMessage
	}
	if !strings.Contains(msg, "does-not-exist") || !strings.Contains(msg, "not found") && !strings.Contains(msg, "no such file") {
		t.Errorf("last_error_message %q does not name the missing command", msg)
	}
	if !strings.Contains(e.Reason, "does-not-exist") {
		t.Logf("reason %q does not name the missing command", e.Reason)
	}

	// The proxy keeps serving.
	mp.waitHealthy("sent", startupWait)
	wantPredictOK(t, mp.predict("sent", "btc"), "sent", 1)
	if resp, err := mp.client.Get(mp.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if r := mp.predict("missing", "btc"); r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" {
		t.Errorf("predict on the missing plugin: %d %s; want 503", r.Code, r.Raw)
	}
	rep := mp.mustSelfHeal("model_key=missing")
	if len(rep.Results) != 1 || rep.Results[0].Status != "failed" || !strings.Contains(rep.Results[0].Message, "does-not-exist") ||
		rep.Summary.TotalAttempts != 1 || rep.Summary.Failed != 1 {
		t.Errorf("self-heal of the missing plugin: %s; want one failed attempt naming the command", rep.Raw)
	}
	if e := mp.model("missing"); e.Restarts != 1 || e.Loaded {
		t.Errorf("after a failed self-heal: %s; want restarts 1, not loaded", e)
	}
}

// ---- fallback ----

func TestModelFallback(t *testing.T) {
	h := testHealth(false)
	primary := sentimentModel("primary", h)
	primary.Fallback = "backup"
	mp := newModelProxy(t, modelConfig(h, primary, sentimentModel("backup", h)))
	pp := mp.waitHealthy("primary", startupWait).pid()
	bp := mp.waitHealthy("backup", startupWait).pid()

	r := mp.predict("primary", "btc to the moon")
	wantPredictOK(t, r, "primary", 1)
	if r.FallbackFrom != "" {
		t.Errorf("healthy primary answered with fallback_from %q", r.FallbackFrom)
	}

	kill(t, pp, syscall.SIGKILL)
	mp.waitModel("primary", "unloaded", time.Second, deadAndUnavailable)
	r = mp.predict("primary", []string{"btc to the moon", "eth dumps"})
	wantPredictOK(t, r, "backup", 2)
	if r.FallbackFrom != "primary" {
		t.Errorf("fallback answer: %s; want fallback_from primary", r.Raw)
	}
	if got := mp.model("backup").SuccessCount; got < 1 {
		t.Errorf("backup success_count %d after answering", got)
	}

	kill(t, bp, syscall.SIGKILL)
	mp.waitModel("backup", "unloaded", time.Second, deadAndUnavailable)
	r = mp.predict("primary", "btc")
	if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.ModelKey != "primary" || r.RetryAfter == "" {
		t.Errorf("both dead: %d %s (Retry-After %q); want 503 unavailable for primary with Retry-After", r.Code, r.Raw, r.RetryAfter)
	}
}

// ---- self-heal of every failed model, concurrency ----

// TestModelSelfHealAll: self-heal without a parameter restarts exactly the
// failed models, at most max_concurrent_reinit at once. The slow-start test
// plugin counts how many of its kind are starting at the same moment (see
// slowStart in main_test.go), so the bound is checked without timing.
func TestModelSelfHealAll(t *testing.T) {
	const limit = 2
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := testHealth(false)
	h.MaxConcurrentReinit = limit
	models := []config.Model{sentimentModel("good", h)}
	var failing []string
	for i := range 5 {
		key := fmt.Sprintf("slow%d", i)
		failing = append(failing, key)
		models = append(models, testPluginModel(key, "test-slowstart", 2*time.Second, h))
	}
	mp := newModelProxy(t, modelConfig(h, models...),
		proxy.TestPluginDirEnv+"="+dir, proxy.TestPluginDelayEnv+"=300ms")
	good := mp.waitHealthy("good", startupWait)
	for _, key := range failing {
		mp.waitModel(key, "failed to start", startupWait, deadAndUnavailable)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}

	rep := mp.mustSelfHeal("")
	var healed []string
	for _, r := range rep.Results {
		healed = append(healed, r.ModelKey)
		if r.Status != "success" {
			t.Errorf("self-heal of %s: %s %s", r.ModelKey, r.Status, r.Message)
		}
	}
	slices.Sort(healed)
	if !slices.Equal(healed, failing) {
		t.Errorf("self-heal restarted %v; want exactly the failed models %v", healed, failing)
	}
	if rep.Summary.TotalAttempts != len(failing) || rep.Summary.Successful != len(failing) || rep.Summary.Failed != 0 {
		t.Errorf("summary %+v; want %d attempts, all successful", rep.Summary, len(failing))
	}

	peak := 0
	files, _ := filepath.Glob(filepath.Join(dir, "peak-*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n, _ := strconv.Atoi(string(b))
		peak = max(peak, n)
	}
	t.Logf("%d starts, at most %d at once (max_concurrent_reinit %d)", len(files), peak, limit)
	if len(files) != len(failing) {
		t.Errorf("%d slow starts recorded, want %d", len(files), len(failing))
	}
	if peak > limit {
		t.Errorf("%d plugins started at once; max_concurrent_reinit is %d", peak, limit)
	}
	for _, key := range failing {
		if e := mp.model(key); !healthy(e) || e.Restarts != 1 {
			t.Errorf("%s after self-heal: %s; want healthy, restarts 1", key, e)
		}
	}
	if e := mp.model("good"); e.pid() != good.pid() || e.Restarts != 0 {
		t.Errorf("self-heal restarted a healthy model: before %s, after %s", good, e)
	}

	// Nothing failed any more: nothing to do.
	rep = mp.mustSelfHeal("")
	if len(rep.Results) != 0 || rep.Summary.TotalAttempts != 0 {
		t.Errorf("self-heal with nothing failed: %s; want no results", rep.Raw)
	}
}

// TestModelConcurrentSelfHeal: many self-heals of one model at once never
// leave two plugin processes for it, and each gets success or cooldown.
func TestModelConcurrentSelfHeal(t *testing.T) {
	for _, rc := range []time.Duration{0, 5 * time.Second} {
		t.Run("reinit_cooldown="+rc.String(), func(t *testing.T) {
			h := testHealth(false)
			h.ReinitCooldown = rc
			mp := newModelProxy(t, modelConfig(h, sentimentModel("sent", h)))
			p0 := mp.waitHealthy("sent", startupWait).pid()

			// Sample the plugin processes while the heals run.
			var maxProcs atomic.Int32
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					n := int32(len(pluginChildren("sentiment")))
					if n > maxProcs.Load() {
						maxProcs.Store(n)
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()

			const callers = 10
			reports := make([]healReport, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() { reports[i], errs[i] = mp.selfHeal("model_key=sent") })
			}
			wg.Wait()
			close(stop)
			<-sampled

			successes := 0
			for i, rep := range reports {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if rep.Code != 200 || len(rep.Results) != 1 {
					t.Fatalf("caller %d: %d %s", i, rep.Code, rep.Raw)
				}
				switch rep.Results[0].Status {
				case "success":
					successes++
				case "cooldown":
				default:
					t.Errorf("caller %d: %s; want success or cooldown", i, rep.Raw)
				}
			}
			if successes == 0 {
				t.Errorf("no caller got success")
			}
			if m := maxProcs.Load(); m > 2 { // a warm reinit runs the new process beside the old one
				t.Errorf("%d sentiment plugin processes existed at once for one model; want at most 2", m)
			}
			e := mp.waitHealthy("sent", startupWait, p0)
			if rc > 0 && e.Restarts != 1 {
				t.Errorf("restarts %d with reinit_cooldown %s; want exactly 1", e.Restarts, rc)
			}
			t.Logf("restarts %d, %d/%d callers got success", e.Restarts, successes, callers)
			left := pluginChildren("sentiment")
			if len(left) != 1 || left[0].Pid != e.pid() {
				t.Errorf("plugin processes %v; want exactly pid %d", left, e.pid())
			}
			wantReaped(t, p0)
		})
	}
}

// ---- shutdown ----

// waitGlob polls until pattern matches a file.
func waitGlob(tb testing.TB, pattern string, d time.Duration) {
	tb.Helper()
	proxytest.Eventually(tb, d, "a file matching "+pattern, func() bool {
		m, _ := filepath.Glob(pattern)
		return len(m) > 0
	})
}

// TestModelCloseKillsPlugins: Close ends every plugin, including one busy
// with a call that never returns and one being restarted, and callers in
// flight get an answer.
func TestModelCloseKillsPlugins(t *testing.T) {
	dir := t.TempDir()
	h := testHealth(false)
	h.ReinitCooldown = 0
	cfg := modelConfig(h,
		sentimentModel("a", h),
		testPluginModel("hung", "test-hang", time.Minute, h),
		testPluginModel("slow", "test-slowstart", 5*time.Second, h),
	)
	srv, err := proxy.New(proxytest.Normalized(cfg), proxy.Options{Logger: proxytest.DiscardLogger(),
		PluginEnv: []string{proxy.TestPluginDirEnv + "=" + dir, proxy.TestPluginDelayEnv + "=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	mp := &modelProxy{tb: t, srv: srv, url: ts.URL, client: &http.Client{Timeout: 30 * time.Second}}
	for _, key := range []string{"a", "hung", "slow"} {
		mp.waitHealthy(key, startupWait)
	}
	if n := len(pluginChildren("")); n != 3 {
		t.Errorf("%d plugin processes, want 3: %v", n, pluginChildren(""))
	}

	// A call stuck in the hung plugin.
	type reply struct {
		code int
		body string
	}
	inFlight := make(chan reply, 1)
	go func() {
		resp, err := mp.client.Post(mp.url+"/models/hung/predict", "application/json", strings.NewReader(`{"inputs":"btc"}`))
		if err != nil {
			inFlight <- reply{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inFlight <- reply{resp.StatusCode, string(b)}
	}()
	waitGlob(t, filepath.Join(dir, "hung-*"), 10*time.Second)

	// A restart in progress: the new slow plugin is starting.
	slowPid := mp.model("slow").pid()
	healed := make(chan healReport, 1)
	go func() {
		rep, _ := mp.selfHeal("model_key=slow")
		healed <- rep
	}()
	mp.waitModel("slow", "being restarted", 10*time.Second, func(e modelEntry) bool { return e.Restarts == 1 })
	waitGlob(t, filepath.Join(dir, "active", "*"), 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %s", time.Since(start).Round(time.Millisecond))
	if left := pluginChildren(""); len(left) != 0 {
		t.Errorf("plugin processes left after Close: %v", left)
	}
	wantReaped(t, slowPid)
	select {
	case r := <-inFlight:
		if r.code == http.StatusOK {
			t.Errorf("predict in flight during Close: %d %s; want an error", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("a predict in flight did not end after Close")
	}
	select {
	case rep := <-healed:
		if len(rep.Results) != 1 {
			t.Errorf("self-heal during Close: %d %s", rep.Code, rep.Raw)
		}
		t.Logf("self-heal during Close: %s", strings.TrimSpace(rep.Raw))
	case <-time.After(10 * time.Second):
		t.Errorf("a self-heal in progress did not end after Close")
	}
	// Closing twice is harmless.
	if err := srv.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := pluginChildren(""); len(left) != 0 {
		t.Errorf("plugin processes left after the self-heal ended: %v", left)
	}
}
