package proxy_test

// Plugin fault injection (RELIABILITY.md, "Plugin faults"). Every case runs a real,
// separately built plugin binary (internal/testplugins/faulty) that
// misbehaves in one way, next to a provider whose requests must keep
// succeeding throughout. After each case no process of the plugin binary
// may remain anywhere (an orphan re-parented away from the test is found
// by its command line in /proc), and no child of the test may be a zombie.
//
// Run on its own: go test -race -run 'TestPluginFault' ./proxy/

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// buildFaulty builds the fault-injecting plugin into a temporary folder.
func buildFaulty(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			t.Skip("no go command to build the fault plugin with")
		}
	}
	bin := filepath.Join(t.TempDir(), "faulty")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/healproxy/healproxy/internal/testplugins/faulty")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fault plugin: %v\n%s", err, out)
	}
	return bin
}

// faultyModel is model key served by the fault plugin in mode.
func faultyModel(bin, key, mode string, timeout time.Duration, h config.Health) config.Model {
	return config.Model{Key: key, Name: key, Command: []string{bin, "plugin", mode, key}, Timeout: timeout, Health: h}
}

// binProcs lists every process on the machine running bin, whoever its
// parent is, and every zombie child of the test.
func binProcs(bin string) []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []procInfo
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		p, ok := readProc(pid)
		if ok && ((len(p.Args) > 0 && p.Args[0] == bin) || (p.PPid == self && p.State == "Z")) {
			out = append(out, p)
		}
	}
	return out
}

// wantNoStrays waits for every process of bin to be gone and reaped.
func wantNoStrays(t *testing.T, bin string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := binProcs(bin)
		if len(left) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			t.Errorf("orphan or zombie plugin processes remain: %+v", left)
			return len(left)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// procsPerModel counts the live processes of bin per model key (the
// argument after the mode).
func procsPerModel(bin string) map[string]int {
	n := map[string]int{}
	for _, p := range binProcs(bin) {
		if p.State != "Z" && len(p.Args) >= 4 {
			n[p.Args[3]]++
		}
	}
	return n
}

// servingCheck sends provider requests in the background, a few every
// tenth of a second, and counts those that fail.
type servingCheck struct {
	sent, failed atomic.Int64
	firstErr     atomic.Value
	stop, done   chan struct{}
}

func keepServing(mp *modelProxy, path string) *servingCheck {
	c := &servingCheck{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(20 * time.Millisecond) // pacing: a steady trickle of load
		defer tick.Stop()
		for {
			resp, err := mp.client.Get(mp.url + path)
			c.sent.Add(1)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				c.failed.Add(1)
				c.firstErr.CompareAndSwap(nil, err.Error())
			}
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return c
}

// end stops the requests and fails the test if any failed.
func (c *servingCheck) end(t *testing.T) (sent, failed int64) {
	t.Helper()
	close(c.stop)
	<-c.done
	if c.failed.Load() > 0 {
		t.Errorf("provider requests failed during the fault: %d of %d (first: %v)", c.failed.Load(), c.sent.Load(), c.firstErr.Load())
	}
	return c.sent.Load(), c.failed.Load()
}

type pluginFigures struct {
	faults, requests, errors, leaks atomic.Int64
}

// pluginFaultCase is one plugin fault: the model "m" runs the fault
// plugin in mode, and run drives the fault and checks the outcome. It
// returns how many client requests it sent and how many got an error.
type pluginFaultCase struct {
	name string
	mode string
	h    func() config.Health
	run  func(t *testing.T, mp *modelProxy, h config.Health) (requests, errors int)
}

func wantUnavailable503(t *testing.T, r predictReply) {
	t.Helper()
	if r.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.RetryAfter == "" {
		t.Errorf("predict: got %d %s (Retry-After %q); want 503 unavailable with Retry-After", r.Code, r.Raw, r.RetryAfter)
	}
}

func lastError(e modelEntry) string {
	if e.LastErrorMessage == nil {
		return ""
	}
	return *e.LastErrorMessage
}

// healAndCheck self-heals m and checks that a fresh process serves it and
// that the old one is reaped.
func healAndCheck(t *testing.T, mp *modelProxy, old int) {
	t.Helper()
	rep := mp.mustSelfHeal("model_key=m")
	if len(rep.Results) != 1 || rep.Results[0].Status != "success" {
		t.Fatalf("self-heal: %s; want one success", rep.Raw)
	}
	e := mp.waitHealthy("m", startupWait, old)
	wantReaped(t, old)
	if e.Restarts != 1 {
		t.Errorf("after self-heal: %s; want restarts 1", e)
	}
}

func pluginFaultCases() []pluginFaultCase {
	noAuto := func() config.Health { return testHealth(false) }
	// hung calls: T timeouts, each a 504 within the model's timeout, make
	// the model unavailable; self-heal kills the process and starts anew.
	hung := func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
		for i := range h.ErrorThreshold {
			if r := mp.predict("m", "btc"); r.Code != http.StatusGatewayTimeout || r.Status != "error" {
				t.Errorf("call %d to a hung plugin: %d %s; want 504", i, r.Code, r.Raw)
			}
		}
		e := mp.model("m")
		if e.Status != "unavailable" || e.ErrorCount != int64(h.ErrorThreshold) || !strings.Contains(lastError(e), "timeout") {
			t.Errorf("after %d timeouts: %s; want unavailable with a timeout message", h.ErrorThreshold, e)
		}
		wantUnavailable503(t, mp.predict("m", "btc"))
		healAndCheck(t, mp, e.pid())
		return h.ErrorThreshold + 1, h.ErrorThreshold + 1
	}
	// crashed calls: the caller gets a 5xx at once, the model is unloaded
	// and unavailable, the process reaped; self-heal brings it back.
	crashed := func(want string) func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
		return func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			p0 := mp.waitHealthy("m", startupWait).pid()
			if r := mp.predict("m", "btc"); r.Code < 500 || r.Status == "success" {
				t.Errorf("predict that killed the plugin: %d %s; want a 5xx", r.Code, r.Raw)
			}
			// The failed call is recorded first; the exit, with what the
			// plugin wrote on its way out, a moment later.
			e := mp.waitModel("m", "unloaded and unavailable, saying "+strconv.Quote(want), 2*time.Second, func(e modelEntry) bool {
				return deadAndUnavailable(e) && strings.Contains(lastError(e), want)
			})
			if !strings.Contains(lastError(e), want) {
				t.Errorf("last_error_message %q; want it to say %q", lastError(e), want)
			}
			wantReaped(t, p0)
			wantUnavailable503(t, mp.predict("m", "btc"))
			healAndCheck(t, mp, p0)
			return 2, 2
		}
	}
	// failed starts: unavailable with the reason, nothing left running, a
	// self-heal fails the same way and leaves nothing either.
	noStart := func(want string) func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
		return func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			e := mp.waitModel("m", "failed to start", startupWait, deadAndUnavailable)
			if !strings.Contains(lastError(e), want) {
				t.Errorf("last_error_message %q; want it to say %q", lastError(e), want)
			}
			wantUnavailable503(t, mp.predict("m", "btc"))
			rep := mp.mustSelfHeal("model_key=m")
			if len(rep.Results) != 1 || rep.Results[0].Status != "failed" || rep.Summary.Failed != 1 {
				t.Errorf("self-heal of a plugin that cannot start: %s; want one failure", rep.Raw)
			}
			if left := pluginChildren(""); len(left) != 0 {
				t.Errorf("processes left by failed starts: %+v", left)
			}
			return 1, 1
		}
	}
	return []pluginFaultCase{
		{name: "crash at start", mode: "crash-start", h: noAuto, run: noStart("crashing at start")},
		{name: "crash mid-call", mode: "crash-call", h: noAuto, run: crashed("exit status 3")},
		{name: "panic inside predict", mode: "panic", h: noAuto, run: crashed("panic")},
		{name: "hang: predict never returns", mode: "hang", h: noAuto, run: func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			mp.waitHealthy("m", startupWait)
			return hung(t, mp, h)
		}},
		{name: "hang: SIGSTOP", mode: "ok", h: noAuto, run: func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			p0 := mp.waitHealthy("m", startupWait).pid()
			wantPredictOK(t, mp.predict("m", "btc"), "m", 1)
			stop(t, p0)
			n, errs := hung(t, mp, h)
			return n + 1, errs
		}},
		{name: "garbage on stdout before the handshake", mode: "garbage-before", h: noAuto, run: noStart("handshake")},
		{name: "garbage on stdout after the handshake", mode: "garbage-after", h: noAuto, run: func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			p0 := mp.waitHealthy("m", startupWait).pid()
			for range 3 {
				wantPredictOK(t, mp.predict("m", "to the moon"), "m", 1)
			}
			if e := mp.model("m"); !healthy(e) || e.pid() != p0 || e.ErrorCount != 0 {
				t.Errorf("after stray stdout: %s; want healthy, same pid, no errors", e)
			}
			return 3, 0
		}},
		{name: "ignores SIGTERM and shutdown", mode: "ignore-term", h: noAuto, run: func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			p0 := mp.waitHealthy("m", startupWait).pid()
			wantPredictOK(t, mp.predict("m", "btc"), "m", 1)
			healAndCheck(t, mp, p0) // Kill must fall back to SIGKILL
			wantPredictOK(t, mp.predict("m", "btc"), "m", 1)
			return 2, 0
		}},
		{name: "crash loop", mode: "crash-loop", h: func() config.Health {
			h := testHealth(true)
			h.ReinitCooldown = 200 * time.Millisecond
			return h
		}, run: func(t *testing.T, mp *modelProxy, h config.Health) (int, int) {
			mp.waitModel("m", "restarted twice", startupWait, func(e modelEntry) bool { return e.Restarts >= 2 })
			requests, errs, most := 0, 0, 0
			for until := time.Now().Add(time.Second); time.Now().Before(until); {
				r := mp.predict("m", "btc")
				requests++
				if r.Code != http.StatusOK {
					errs++
					if r.Code != http.StatusServiceUnavailable && r.Code != http.StatusBadGateway {
						t.Errorf("predict on a crash-looping model: %d %s; want 200, 502 or 503", r.Code, r.Raw)
					}
				}
				most = max(most, len(pluginChildren("crash-loop")))
			}
			if most > 1 {
				t.Errorf("%d processes of the crash-looping model at once", most)
			}
			if e := mp.model("m"); lastError(e) == "" {
				t.Errorf("crash-looping model without last_error_message: %s", e)
			}
			return requests, errs
		}},
	}
}

func providerUpstream(t *testing.T) config.Provider {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	})
	u, _ := url.Parse(up.URL)
	return config.Provider{ID: "up", Name: "up", Upstreams: []*url.URL{u}, Timeout: 5 * time.Second,
		Health: config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1}}
}

// TestPluginFault runs each plugin fault next to a provider that must keep
// answering, then checks that no plugin process is left; last, a storm of
// concurrent self-heals while models crash (selfHealStorm). One build of
// the plugin serves them all.
func TestPluginFault(t *testing.T) {
	bin := buildFaulty(t)
	pc := providerUpstream(t)
	var fig pluginFigures
	defer func() {
		t.Logf("plugin faults figures: faults tried %d, requests sent %d, errors seen %d, leaks found %d",
			fig.faults.Load(), fig.requests.Load(), fig.errors.Load(), fig.leaks.Load())
	}()
	for _, tc := range pluginFaultCases() {
		t.Run(tc.name, func(t *testing.T) {
			fig.faults.Add(1)
			h := tc.h()
			m := faultyModel(bin, "m", tc.mode, 5*time.Second, h)
			if tc.mode == "hang" || tc.mode == "ok" {
				m.Timeout = 500 * time.Millisecond // these cases wait for it
			}
			cfg := modelConfig(h, m)
			cfg.Providers = []config.Provider{pc}
			func() {
				mp := newModelProxy(t, cfg)
				defer mp.srv.Close(t.Context()) // before the strays are counted; the cleanup's Close is then a no-op
				sc := keepServing(mp, "/providers/up/ping")
				n, errs := tc.run(t, mp, h)
				sent, failed := sc.end(t)
				fig.requests.Add(int64(n) + sent)
				fig.errors.Add(int64(errs) + failed)
			}()
			fig.leaks.Add(int64(wantNoStrays(t, bin)))
		})
	}
	t.Run("self-heal storm", func(t *testing.T) { selfHealStorm(t, bin) })
}

// selfHealStorm: many concurrent self-heals, of everything
// and of single models, while models crash (one crash-loops, one dies in
// every call, one is killed from outside): every self-heal gets a
// well-formed answer, no model ever has two processes, the provider keeps
// answering, the healthy models end up serving, and nothing is left behind.
func selfHealStorm(t *testing.T, bin string) {
	h := testHealth(true)
	h.ReinitCooldown = 100 * time.Millisecond
	h.MaxConcurrentReinit = 2
	cfg := modelConfig(h,
		faultyModel(bin, "ok1", "ok", 2*time.Second, h),
		faultyModel(bin, "ok2", "ok", 2*time.Second, h),
		faultyModel(bin, "loop", "crash-loop", 2*time.Second, h),
		faultyModel(bin, "crashy", "crash-call", 2*time.Second, h),
	)
	cfg.Providers = []config.Provider{providerUpstream(t)}
	var requests, errs atomic.Int64
	func() {
		mp := newModelProxy(t, cfg)
		defer mp.srv.Close(t.Context())
		for _, key := range []string{"ok1", "ok2", "crashy"} {
			mp.waitHealthy(key, startupWait)
		}
		sc := keepServing(mp, "/providers/up/ping")

		// At most one process per model, sampled throughout.
		var most atomic.Int32
		sampleStop, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				for _, n := range procsPerModel(bin) {
					if int32(n) > most.Load() {
						most.Store(int32(n))
					}
				}
				select {
				case <-sampleStop:
					return
				case <-time.After(2 * time.Millisecond): // sampling interval
				}
			}
		}()

		queries := []string{"", "model_key=ok1", "model_key=loop", "model_key=crashy", ""}
		const healers, rounds = 6, 5
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range healers {
			wg.Go(func() {
				for j := range rounds {
					q := queries[(i+j)%len(queries)]
					rep, err := mp.selfHeal(q)
					requests.Add(1)
					if err != nil || rep.Code != http.StatusOK || rep.Status != "completed" ||
						rep.Summary.Successful+rep.Summary.Failed != rep.Summary.TotalAttempts {
						errs.Add(1)
						if bad.Add(1) <= 3 {
							t.Errorf("self-heal?%s: %d %s %v; want 200 completed with a consistent summary", q, rep.Code, rep.Raw, err)
						}
						continue
					}
					for _, r := range rep.Results {
						switch r.Status {
						case "success", "failed", "cooldown":
						default:
							t.Errorf("self-heal?%s: result %+v; want success, failed or cooldown", q, r)
						}
					}
				}
			})
		}
		wg.Go(func() { // crashes from outside and from inside
			for range 3 {
				if e := mp.model("ok2"); e.Loaded && e.pid() > 0 {
					syscall.Kill(e.pid(), syscall.SIGKILL)
				}
				r := mp.predict("crashy", "btc")
				requests.Add(1)
				if r.Code != http.StatusOK {
					errs.Add(1)
				}
				for deadline := time.Now().Add(startupWait); !mp.model("ok2").Loaded && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond) // poll interval: auto-reinit brings it back
				}
			}
		})
		wg.Wait()
		close(sampleStop)
		<-sampled

		for _, key := range []string{"ok1", "ok2"} {
			mp.waitHealthy(key, startupWait)
			wantPredictOK(t, mp.predict(key, "btc"), key, 1)
			requests.Add(1)
		}
		if m := most.Load(); m > 2 { // a warm reinit runs the new process beside the old one
			t.Errorf("%d processes of one model existed at once; want at most 2", m)
		}
		sent, failed := sc.end(t)
		requests.Add(sent)
		errs.Add(failed)
	}()
	leaks := wantNoStrays(t, bin)
	t.Logf("self-heal storm figures: requests sent %d, errors seen %d, leaks found %d", requests.Load(), errs.Load(), leaks)
}
