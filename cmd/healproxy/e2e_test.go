package main

// End-to-end tests of the real binary: this test binary acts as healproxy
// (see TestMain) and is started as a child process with a config file, then
// driven over loopback and with signals: kill -9 during heavy state writes,
// SIGHUP reloads, SIGTERM. No test sleeps for an effect: each waits for a
// condition with a deadline.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/proctest"
)

// e2eMainEnv makes the test binary run healproxy's main instead of tests.
const e2eMainEnv = "HEALPROXY_E2E_MAIN"

// TestMain lets this test binary be healproxy: with HEALPROXY_E2E_MAIN=1 it
// runs run(os.Args[1:]); as `plugin NAME` (how healproxy re-executes
// /proc/self/exe for a built-in model plugin) it serves the plugin, as
// main does.
func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		os.Exit(runPlugin(os.Args[2:]))
	}
	if os.Getenv(e2eMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// ---- the healproxy process ----

// lockedBuffer collects a process's output; safe for concurrent use.
type lockedBuffer = proctest.Buffer

// healproxyProc is one run of the binary.
type healproxyProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *lockedBuffer
	base string // http://127.0.0.1:PORT
	done chan struct{}
	err  error // of Wait, once done is closed
}

var listeningRE = regexp.MustCompile(`msg="healproxy listening" addr=(\S+)`)

// startBinary runs healproxy on config (listening on a free loopback port)
// and waits until it serves. Whatever the test leaves running is killed.
func startBinary(t *testing.T, config string) *healproxyProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &healproxyProc{t: t, logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "run", "-config", config, "-listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), e2eMainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.WaitDelay = 5 * time.Second // a leaked child holding the output must not hang Wait
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting healproxy: %v", err)
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
			t.Logf("healproxy (pid %d) output:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	waitFor(t, 30*time.Second, "healproxy to listen", func() bool {
		if !p.running() {
			t.Fatalf("healproxy exited before listening: %v\n%s", p.err, p.logs)
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

func (p *healproxyProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *healproxyProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *healproxyProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("healproxy did not exit within %v", d)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		p.t.Fatalf("waiting for healproxy: %v", p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

var client = &http.Client{Timeout: 10 * time.Second}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeConfig writes a config file the way an editor that renames does, so
// that a reload never reads half of it.
func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// switchable is an upstream whose answer the test flips between 200 and 500.
type switchable struct {
	*httptest.Server
	failing atomic.Bool
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

// ---- the health document ----

func fetchHealth(t *testing.T, base string) api.Health {
	t.Helper()
	code, body := httpGet(t, base+"/api/diagnostics/health")
	if code != http.StatusOK {
		t.Fatalf("GET /api/diagnostics/health: %d %s", code, body)
	}
	var h api.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("health document %s: %v", body, err)
	}
	return h
}

var validStatus = []string{"unknown", "healthy", "degraded", "unavailable"}

// ---- kill -9 during heavy state writes ----

// TestE2EKill9DuringStateWrites: healproxy killed with SIGKILL at a random
// moment while its state keeps changing (upstreams flipping, operator
// actions written to the audit log) restarts on the same state file: the
// file is not set aside, and every entry is there with a valid status.
// Five times on the same file.
func TestE2EKill9DuringStateWrites(t *testing.T) {
	const nProviders, perProvider = 6, 2
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	var ups []*switchable
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "state {\n  path = %q\n}\n\n", state)
	for i := range nProviders {
		var urls []string
		for range perProvider {
			u := newSwitchable(t)
			ups = append(ups, u)
			urls = append(urls, strconv.Quote(u.URL))
		}
		fmt.Fprintf(&cfg, "provider \"p%d\" {\n  upstreams = [%s]\n  timeout = \"2s\"\n  health {\n    error_threshold = 1\n    cooldown = \"150ms\"\n    success_recovery_count = 1\n  }\n}\n\n",
			i, strings.Join(urls, ", "))
	}
	config := filepath.Join(dir, "healproxy.hcl")
	writeConfig(t, config, cfg.String())

	lived := time.Duration(0) // how long the previous run served
	for round := range 5 {
		p := startBinary(t, config)
		if code, _ := httpGet(t, p.base+"/healthz"); code != 200 {
			t.Fatalf("round %d: /healthz %d", round, code)
		}
		if aside, _ := filepath.Glob(state + ".corrupt-*"); len(aside) != 0 {
			t.Fatalf("round %d: the state file was set aside after a kill -9: %v\n%s", round, aside, p.logs)
		}
		logs := p.logs.String()
		if strings.Contains(logs, "will not be persisted") || strings.Contains(logs, "cannot read stored health state") ||
			strings.Contains(logs, "ignoring an unreadable stored entry") {
			t.Fatalf("round %d: the state was not read back:\n%s", round, logs)
		}
		if round > 0 && lived >= 2*time.Second {
			// The previous run lived through a save: every upstream is stored.
			if want := fmt.Sprintf("entries=%d", nProviders*perProvider); !strings.Contains(logs, want) {
				t.Errorf("round %d: the previous run lived %v, yet the restore did not log %s:\n%s", round, lived, want, logs)
			}
		}
		checkHealth(t, p.base, nProviders, perProvider)

		// Traffic that keeps changing state, for a random time.
		killAt := time.Duration(200+rand.IntN(2800)) * time.Millisecond
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var requests, controls atomic.Int64
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := client.Get(fmt.Sprintf("%s/providers/p%d/x", p.base, rand.IntN(nProviders)))
					if err != nil {
						return // killed
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					requests.Add(1)
				}
			})
		}
		wg.Go(func() { // flip upstreams
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
					u := ups[rand.IntN(len(ups))]
					u.failing.Store(!u.failing.Load())
				}
			}
		})
		for range 2 { // operator actions: each an fsynced audit write
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					i := rand.IntN(len(ups))
					action, body := "resume", "{}"
					if rand.IntN(2) == 0 {
						action = "force-open"
						body = fmt.Sprintf(`{"upstream": %q, "reason": "e2e kill test", "ttl": "100ms"}`, ups[i].URL)
					}
					resp, err := client.Post(fmt.Sprintf("%s/api/admin/providers/p%d/%s", p.base, i/perProvider, action),
						"application/json", strings.NewReader(body))
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					controls.Add(1)
				}
			})
		}
		started := time.Now()
		time.Sleep(killAt) // the random moment of the kill is the point, not a wait for a condition
		p.signal(syscall.SIGKILL)
		lived = time.Since(started)
		code := p.wait(10 * time.Second)
		close(stop)
		wg.Wait()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: healproxy ended with %d, not by SIGKILL", round, code)
		}
		t.Logf("round %d: killed after %v: %d requests, %d operator actions", round, lived.Round(time.Millisecond), requests.Load(), controls.Load())
		for _, u := range ups {
			u.failing.Store(false)
		}
	}

	// A last start on the file five kills left, then a clean stop.
	p := startBinary(t, config)
	if aside, _ := filepath.Glob(state + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("the state file was set aside: %v", aside)
	}
	checkHealth(t, p.base, nProviders, perProvider)
	code, body := httpGet(t, p.base+"/api/admin/audit?limit=5")
	if code != 200 || !strings.Contains(body, "e2e kill test") && !strings.Contains(body, `"resume"`) {
		t.Errorf("audit log after the kills: %d %s; want the operator actions", code, body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("SIGTERM: exit %d; want 0", code)
	}
}

// checkHealth: every provider and upstream of the config is in the health
// document, with a valid status and a cooldown only where it is in force.
func checkHealth(t *testing.T, base string, nProviders, perProvider int) {
	t.Helper()
	h := fetchHealth(t, base)
	if h.Status != "success" || h.Providers.Summary.Total != nProviders || len(h.Providers.Entries) != nProviders {
		t.Fatalf("health document: status %q, %d providers (summary %d); want success, %d",
			h.Status, len(h.Providers.Entries), h.Providers.Summary.Total, nProviders)
	}
	for i, e := range h.Providers.Entries {
		if e.ProviderID != fmt.Sprintf("p%d", i) || !slices.Contains(validStatus, e.Status) || len(e.Upstreams) != perProvider {
			t.Errorf("provider entry %d: id %q, status %q, %d upstreams", i, e.ProviderID, e.Status, len(e.Upstreams))
		}
		for _, u := range e.Upstreams {
			if !slices.Contains(validStatus, u.Status) || u.ErrorCount < 0 || u.SuccessCount < 0 ||
				u.InCooldown != (u.CooldownUntil != nil) || u.InCooldown && u.Status != "unavailable" {
				t.Errorf("provider %s upstream %s: status %q, error_count %d, success_count %d, in_cooldown %v, cooldown_until %v",
					e.ProviderID, u.URL, u.Status, u.ErrorCount, u.SuccessCount, u.InCooldown, u.CooldownUntil)
			}
		}
	}
}

// ---- SIGHUP ----

// TestE2ESIGHUPReload: SIGHUP with a valid file adds a provider; with an
// invalid one, the log shows FILE:LINE:COL, the running config keeps
// serving and the process lives on.
func TestE2ESIGHUPReload(t *testing.T) {
	a, b := newSwitchable(t), newSwitchable(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "reload.hcl")
	providerA := fmt.Sprintf("provider \"a\" {\n  upstreams = [%q]\n}\n", a.URL)
	providerB := fmt.Sprintf("provider \"b\" {\n  upstreams = [%q]\n}\n", b.URL)
	writeConfig(t, config, providerA)
	p := startBinary(t, config)
	if code, _ := httpGet(t, p.base+"/providers/a/x"); code != 200 {
		t.Fatalf("provider a: %d; want 200", code)
	}
	if code, _ := httpGet(t, p.base+"/providers/b/x"); code != 404 {
		t.Fatalf("provider b before the reload: %d; want 404", code)
	}

	writeConfig(t, config, providerA+"\n"+providerB)
	p.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "provider b to appear", func() bool {
		code, _ := httpGet(t, p.base+"/providers/b/x")
		return code == 200
	})
	// The new provider serves as soon as the new state is in; the log line
	// that sums up the reload follows.
	waitFor(t, 5*time.Second, "the log to report the reload", func() bool {
		return strings.Contains(p.logs.String(), `msg="config reloaded"`) && strings.Contains(p.logs.String(), "provider b")
	})
	ids := func() []string {
		var out []string
		for _, e := range fetchHealth(t, p.base).Providers.Entries {
			out = append(out, e.ProviderID)
		}
		return out
	}
	if got := ids(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("providers after the reload: %v; want [a b]", got)
	}

	// Line 3, column 3: an attribute providers do not have.
	writeConfig(t, config, fmt.Sprintf("provider \"a\" {\n  upstreams = [%q]\n  colour = \"blue\"\n}\n", a.URL)+providerB)
	p.signal(syscall.SIGHUP)
	want := config + ":3:3"
	waitFor(t, 10*time.Second, "the reload to be refused with "+want, func() bool {
		return strings.Contains(p.logs.String(), want)
	})
	if logs := p.logs.String(); !strings.Contains(logs, "config reload refused") || !strings.Contains(logs, "Unsupported argument") {
		t.Errorf("the log does not say why the reload was refused:\n%s", logs)
	}
	if !p.running() {
		t.Fatalf("healproxy exited after an invalid reload: %v", p.err)
	}
	for _, id := range []string{"a", "b"} {
		if code, _ := httpGet(t, p.base+"/providers/"+id+"/x"); code != 200 {
			t.Errorf("provider %s after the refused reload: %d; want 200 (the running config stays)", id, code)
		}
	}
	if code, _ := httpGet(t, p.base+"/healthz"); code != 200 {
		t.Errorf("/healthz after the refused reload: %d", code)
	}
	if got := ids(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("providers after the refused reload: %v; want [a b]", got)
	}
}

// ---- SIGTERM ----

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			if n, err := strconv.Atoi(filepath.Base(filepath.Dir(s))); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestE2ESIGTERM: SIGTERM stops healproxy with exit status 0, and no plugin
// process outlives it.
func TestE2ESIGTERM(t *testing.T) {
	up := newSwitchable(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "term.hcl")
	writeConfig(t, config, fmt.Sprintf(`state {
  path = %q
}

provider "a" {
  upstreams = [%q]
}

model "s1" {
  plugin  = "sentiment"
  timeout = "5s"
}

model "s2" {
  plugin  = "sentiment"
  timeout = "5s"
}
`, filepath.Join(dir, "state.db"), up.URL))
	p := startBinary(t, config)
	var pids []int
	waitFor(t, 30*time.Second, "both model plugins to run", func() bool {
		pids = pids[:0]
		for _, m := range fetchHealth(t, p.base).Models.Entries {
			if m.Loaded && m.Pid != nil && m.Status == "healthy" {
				pids = append(pids, *m.Pid)
			}
		}
		return len(pids) == 2
	})
	resp, err := client.Post(p.base+"/models/s1/predict", "application/json", strings.NewReader(`{"inputs": "bitcoin rallies"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("predict: %d; want 200", resp.StatusCode)
	}
	children := childrenOf(p.cmd.Process.Pid)
	for _, pid := range pids {
		if !slices.Contains(children, pid) {
			t.Errorf("plugin pid %d is not a child of healproxy (children %v)", pid, children)
		}
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("SIGTERM: exit status %d; want 0", code)
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("process %d, a child of healproxy, outlived it", pid)
		}
	}
	if logs := p.logs.String(); !strings.Contains(logs, "shutting down") || !strings.Contains(logs, `msg=stopped`) {
		t.Errorf("the log does not show an orderly stop:\n%s", logs)
	}
}
