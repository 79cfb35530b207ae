package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/plugins"
)

// The supervision guarantees of Go plugins (supervisor_test.go), proven for
// a real Python plugin (plugins/python/testdata/testmodel.py, served by the
// kit in plugins/python).

// pyModel makes a Model running the Python test plugin in mode, with
// timeout as its model timeout, and closes it at the end of the test.
func pyModel(t *testing.T, key, mode string, timeout time.Duration, h config.Health, rec *recorder) *Model {
	t.Helper()
	testplugins.RequirePython(t)
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if rec != nil {
		opts.Hooks = rec.hooks()
	}
	mc := config.Model{Key: key, Name: key, Command: testplugins.PythonTestModel(mode), Timeout: timeout, Health: h}
	m := New(mc, testSettings, opts)
	t.Cleanup(m.Close)
	return m
}

// predict calls the model's process within the model's timeout, as the
// proxy does.
func predict(m *Model, inputs ...string) ([][]plugins.LabelScore, time.Duration, error) {
	p := m.Process()
	if p == nil {
		return nil, 0, plugins.ErrPluginUnavailable
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config().Timeout)
	defer cancel()
	start := time.Now()
	out, err := p.Model().Predict(ctx, inputs)
	return out, time.Since(start), err
}

// gone waits until pid no longer runs: not in /proc, or a zombie that is
// not ours (init reaps those).
func gone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, ppid, ok := procState(pid)
		if !ok || (st == "Z" && ppid != os.Getpid()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still there (state %s, parent %d) %v after it should have died", pid, st, ppid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procState reads the state and parent of pid from /proc/PID/stat.
func procState(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

func TestPythonPredict(t *testing.T) {
	m := pyModel(t, "py", "ok", 5*time.Second, config.Health{ReinitCooldown: time.Hour}, nil)
	m.Start()
	p := running(t, m)
	out, _, err := predict(m, "a good day", "a dull day")
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	if len(out) != 2 || out[0][0].Label != "pos" || out[1][0].Label != "neg" || out[0][0].Score != 1 {
		t.Errorf("got %v; want pos first, then neg first", out)
	}
	// Bad input is the caller's fault: ErrBadInput, and the process lives on.
	if _, _, err := predict(m, "bad"); !errors.Is(err, plugins.ErrBadInput) || !strings.Contains(err.Error(), "must not be 'bad'") {
		t.Errorf("bad input: got %v; want ErrBadInput with the model's message", err)
	}
	// Another exception is a failure of the model, not a dead process.
	_, _, err = predict(m, "boom")
	if err == nil || errors.Is(err, plugins.ErrPluginUnavailable) || errors.Is(err, plugins.ErrBadInput) ||
		!strings.Contains(err.Error(), "RuntimeError: the model fell over") {
		t.Errorf("exception: got %v; want a plain failure with the exception", err)
	}
	// A model that prints does not break the connection (stdout is kept clean).
	if _, _, err := predict(m, "print", "good"); err != nil {
		t.Errorf("after print(): %v", err)
	}
	if m.Process() != p {
		t.Error("the process changed; want the same one throughout")
	}
}

// TestPythonKill9AutoReinit: SIGKILL makes the model unavailable within a
// second; auto_reinit brings a new process, healthy.
func TestPythonKill9AutoReinit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc and Linux signals")
	}
	m := pyModel(t, "py", "ok", 5*time.Second, config.Health{AutoReinit: true, ReinitCooldown: 100 * time.Millisecond}, nil)
	m.Start()
	old := running(t, m)
	start := time.Now()
	if err := syscall.Kill(old.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for m.Health.Status() != breaker.Unavailable && m.Process() == old {
		if time.Since(start) > time.Second {
			t.Fatalf("still %s, same process, 1s after SIGKILL; want unavailable", m.Health.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("SIGKILL → unavailable in %v", time.Since(start))
	if msg := m.Health.Snapshot().LastErrorMessage; !strings.Contains(msg, "signal: killed") {
		t.Errorf("last_error_message %q; want the signal", msg)
	}
	waitFor(t, "a new healthy process", func() bool {
		p := m.Process()
		return p != nil && p.Pid() != old.Pid() && m.Health.Status() == breaker.Healthy
	})
	t.Logf("SIGKILL → healthy again in %v", time.Since(start))
	if _, _, err := predict(m, "good"); err != nil {
		t.Errorf("Predict after the respawn: %v", err)
	}
	gone(t, old.Pid(), time.Second)
}

// TestPythonCrashWithChild: a plugin that dies mid-call while a process it
// started still runs (holding its stdout and stderr) is noticed at once,
// and that process dies with it.
func TestPythonCrashWithChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	m := pyModel(t, "py", "ok", 5*time.Second, config.Health{ReinitCooldown: time.Hour}, nil)
	m.Start()
	p := running(t, m)
	out, _, err := predict(m, "spawn")
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimPrefix(out[0][0].Label, "pid:"))
	start := time.Now()
	if _, _, err := predict(m, "exit"); !errors.Is(err, plugins.ErrPluginUnavailable) {
		t.Errorf("got %v; want ErrPluginUnavailable", err)
	}
	select {
	case <-p.Done():
	case <-time.After(time.Second):
		t.Fatal("exit not noticed within 1s")
	}
	waitFor(t, "unavailable", func() bool { return m.Health.Status() == breaker.Unavailable })
	t.Logf("crash → unavailable in %v", time.Since(start))
	if msg := m.Health.Snapshot().LastErrorMessage; !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "fatal error, exiting") {
		t.Errorf("last_error_message %q; want the exit status and the last stderr line", msg)
	}
	gone(t, child, time.Second)
}

// TestPythonHung: a stopped process, and a predict that sleeps (after it
// started a child process of its own): the call times out at the model's
// timeout, a reinit replaces the process, and neither the old process nor
// its child is left, not even as a zombie.
func TestPythonHung(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc and Linux signals")
	}
	const timeout = 300 * time.Millisecond
	for _, how := range []string{"SIGSTOP", "sleeping predict"} {
		t.Run(how, func(t *testing.T) {
			m := pyModel(t, "py", "ok", timeout, config.Health{ReinitCooldown: time.Millisecond}, nil)
			m.Start()
			old := running(t, m)
			out, _, err := predict(m, "spawn")
			if err != nil {
				t.Fatalf("spawn: %v", err)
			}
			child, err := strconv.Atoi(strings.TrimPrefix(out[0][0].Label, "pid:"))
			if err != nil {
				t.Fatalf("spawn answered %v", out)
			}
			var in string
			if how == "SIGSTOP" {
				if err := syscall.Kill(old.Pid(), syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				proctest.WaitStopped(t, old.Pid())
				in = "good"
			} else {
				in = "sleep:30"
			}
			_, took, err := predict(m, in)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v; want DeadlineExceeded", err)
			}
			if took < timeout || took > timeout+700*time.Millisecond {
				t.Errorf("the call took %v; want the model's timeout, %v", took, timeout)
			}
			start := time.Now()
			res := m.Reinit(context.Background(), "self-heal")
			if res.Status != StatusSuccess || res.Pid == old.Pid() {
				t.Fatalf("Reinit: %+v; want success with a new process", res)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("reinit took %v; want a prompt kill (the grace) and a fresh start", d)
			}
			t.Logf("reinit of a hung Python plugin took %v", time.Since(start))
			gone(t, old.Pid(), time.Second)
			gone(t, child, 2*time.Second)
			if _, _, err := predict(m, "good"); err != nil || m.Health.Status() != breaker.Healthy {
				t.Errorf("after the reinit: Predict %v, status %s; want healthy", err, m.Health.Status())
			}
		})
	}
}

// TestPythonStartFailures: a plugin that crashes at import, prints garbage
// before the handshake, or never prints it, leaves its model unavailable
// with a last_error_message that says why, while another model serves on.
func TestPythonStartFailures(t *testing.T) {
	testplugins.RequirePython(t)
	good := model(t, "good", "sentiment", config.Health{ReinitCooldown: time.Hour}, nil)
	good.Start()
	running(t, good)
	tests := []struct {
		mode string
		want []string
	}{
		{"crash-import", []string{"handshake", "ModuleNotFoundError", "healproxy_no_such_module"}},
		{"garbage", []string{"handshake", "Unrecognized remote plugin message: loading weights from /models"}},
		// supervisor's spec has the default start timeout (10s).
		{"silent", []string{"handshake", "timeout"}},
		{"unhealthy", []string{"health check failed", "weights missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			m := pyModel(t, tt.mode, tt.mode, time.Second, config.Health{ReinitCooldown: time.Hour}, rec)
			m.Start()
			waitFor(t, "the failed start", func() bool { return m.Health.Status() == breaker.Unavailable })
			msg := m.Health.Snapshot().LastErrorMessage
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("last_error_message %q; want it to contain %q", msg, w)
				}
			}
			if m.Process() != nil {
				t.Error("a process is installed after a failed start")
			}
			if _, _, err := predict(good, "up only"); err != nil {
				t.Errorf("the other model: %v", err)
			}
		})
	}
}

// TestPythonPluginCannotSeeSecrets: a provider key that the config reads
// from healproxy's environment (env("...") in a header) is not in the
// environment of a model plugin.
func TestPythonPluginCannotSeeSecrets(t *testing.T) {
	testplugins.RequirePython(t)
	const secret = "sk-live-do-not-leak-42"
	t.Setenv("HEALPROXY_TEST_PROVIDER_KEY", secret)
	src := fmt.Sprintf(`
provider "openai" {
  upstreams = ["http://127.0.0.1:9"]
  headers   = { Authorization = "Bearer ${env("HEALPROXY_TEST_PROVIDER_KEY")}" }
}
model "py" {
  command = [%q, %q, "ok"]
}
`, testplugins.PythonTestModel("ok")[0], testplugins.PythonTestModel("ok")[1])
	cfg, diags := config.Parse("secret.hcl", []byte(src), config.LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := cfg.Providers[0].Headers["Authorization"]; got != "Bearer "+secret {
		t.Fatalf("the provider header is %q; want the secret from the environment (test setup)", got)
	}
	m := New(cfg.Models[0], testSettings, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(m.Close)
	m.Start()
	running(t, m)
	out, _, err := predict(m, "env")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range out[0] {
		if strings.Contains(s.Label, secret) {
			t.Errorf("the plugin sees the provider key: %s", s.Label)
		}
		names = append(names, strings.SplitN(s.Label, "=", 2)[0])
	}
	if !strings.Contains(strings.Join(names, " "), "PATH") {
		t.Errorf("plugin environment %q; want at least PATH", names)
	}
	t.Logf("the plugin's environment: %s", strings.Join(names, " "))
}

// TestPythonModelEnv: a model block's env and inherit_env reach its
// plugin through supervisor.New.
func TestPythonModelEnv(t *testing.T) {
	testplugins.RequirePython(t)
	t.Setenv("CUDA_VISIBLE_DEVICES", "2")
	mc := config.Model{Key: "py", Name: "py", Command: testplugins.PythonTestModel("ok"), Timeout: 5 * time.Second,
		Env: map[string]string{"HF_HOME": "/var/cache/hf"}, InheritEnv: []string{"CUDA_VISIBLE_DEVICES"}}
	m := New(mc, testSettings, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(m.Close)
	m.Start()
	running(t, m)
	out, _, err := predict(m, "env")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range out[0] {
		got = append(got, s.Label)
	}
	for _, want := range []string{"HF_HOME=/var/cache/hf", "CUDA_VISIBLE_DEVICES=2"} {
		if !slices.Contains(got, want) {
			t.Errorf("plugin environment %q; want %s", got, want)
		}
	}
}
