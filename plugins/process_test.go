package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/healproxy/healproxy/internal/proctest"
)

// testPluginEnv makes the test binary serve a plugin instead of running
// tests (see TestMain), so subprocess tests need no separate build.
const testPluginEnv = "HEALPROXY_TEST_PLUGIN"

func TestMain(m *testing.M) {
	mode := os.Getenv(testPluginEnv)
	if mode == "" {
		// plugin.TestPluginGRPCConn logs at Debug to hclog's default output.
		hclog.DefaultOutput = io.Discard
		os.Exit(m.Run())
	}
	serveTestPlugin(mode)
	os.Exit(0)
}

// serveTestPlugin serves one of the test plugins:
//
//	sentiment  the built-in model
//	hang       Predict never returns
//	crash      Predict panics, killing the process
//	unhealthy  Health fails
//	stdout     writes to stdout before Serve (breaks the handshake)
//	stderr     writes a line to stderr before serving sentiment
func serveTestPlugin(mode string) {
	switch mode {
	case "sentiment":
		if err := ServeBuiltin("sentiment"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	case "hang":
		Serve(&fakeModel{predict: func(context.Context, []string) ([][]LabelScore, error) {
			<-make(chan struct{})
			return nil, nil
		}})
	case "crash":
		Serve(&fakeModel{predict: func(context.Context, []string) ([][]LabelScore, error) {
			panic("out of cheese") // gRPC does not recover handler panics

		}})
	case "unhealthy":
		Serve(&fakeModel{health: errors.New("weights missing")})
	case "stdout":
		fmt.Println("hello from init")
		Serve(Builtins["sentiment"]())
	case "stderr":
		fmt.Fprintln(os.Stderr, "loading lexicon from nowhere")
		Serve(Builtins["sentiment"]())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", testPluginEnv, mode)
		os.Exit(2)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer = proctest.Buffer

// testLogger returns a logger into a buffer that is printed if the test
// fails (logging straight to t would panic from goroutines outliving it).
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func testSpec(mode string) Spec {
	return Spec{
		Key:          "test_" + mode,
		Command:      []string{os.Args[0]},
		Env:          []string{testPluginEnv + "=" + mode},
		StartTimeout: 10 * time.Second,
	}
}

// startTest starts test plugin mode and kills it at the end of the test.
func startTest(t testing.TB, mode string) *Process {
	t.Helper()
	logger, _ := testLogger(t)
	p, err := Start(context.Background(), testSpec(mode), logger)
	if err != nil {
		t.Fatalf("Start(%s): %v", mode, err)
	}
	t.Cleanup(p.Kill)
	return p
}

// children returns the pids whose parent is this process, zombies included.
func children(t testing.TB) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(pid); ok && ppid == self {
			out = append(out, pid)
		}
	}
	return out
}

// procStat reads the parent pid and state of pid from /proc/PID/stat.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// assertReaped fails unless pid is gone (not even a zombie child of ours).
func assertReaped(t testing.TB, pid int) {
	t.Helper()
	if ppid, state, ok := procStat(pid); ok && ppid == os.Getpid() {
		t.Errorf("pid %d still our child, state %s; want reaped", pid, state)
	}
}

func assertNoChildren(t testing.TB) {
	t.Helper()
	if c := children(t); len(c) > 0 {
		t.Errorf("children left: %v; want none", c)
	}
}

func requireLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc and Linux signals")
	}
}

func TestProcessStartPredictInfo(t *testing.T) {
	p := startTest(t, "sentiment")
	if p.Pid() <= 0 {
		t.Fatalf("Pid() = %d", p.Pid())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	preds, err := p.Model().Predict(ctx, []string{"ETH is pumping to the moon 🚀"})
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	if len(preds) != 1 || len(preds[0]) != 3 || preds[0][0].Label != "bullish" {
		t.Errorf("got %v; want one list of 3 with bullish first", preds)
	}
	info, err := p.Model().Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "sentiment" || strings.Join(info.Labels, ",") != "bullish,bearish,neutral" {
		t.Errorf("Info = %+v", info)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed on a live plugin")
	default:
	}
	if err := p.ExitErr(); err != nil {
		t.Errorf("ExitErr() = %v on a live plugin; want nil", err)
	}
}

func TestProcessBatch(t *testing.T) {
	p := startTest(t, "sentiment")
	inputs := []string{"bitcoin crashes, bloodbath", "solana rallies hard", "the meeting is on tuesday", "rug pull, devs vanished", "new ATH!"}
	preds, err := p.Model().Predict(t.Context(), inputs)
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	if len(preds) != len(inputs) {
		t.Fatalf("got %d predictions; want %d", len(preds), len(inputs))
	}
	for i, want := range []string{"bearish", "bullish", "neutral", "bearish", "bullish"} {
		if g := preds[i][0].Label; g != want {
			t.Errorf("%q: got %q; want %q", inputs[i], g, want)
		}
		for j := 1; j < len(preds[i]); j++ {
			if preds[i][j].Score > preds[i][j-1].Score {
				t.Errorf("%q: not best first: %v", inputs[i], preds[i])
			}
		}
	}
}

func TestProcessKill9(t *testing.T) {
	requireLinux(t)
	p := startTest(t, "sentiment")
	start := time.Now()
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		t.Logf("kill -9 → Done in %v", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("Done not closed within 1s of kill -9")
	}
	if err := p.ExitErr(); !errors.Is(err, ErrPluginUnavailable) || !strings.Contains(err.Error(), "signal: killed") {
		t.Errorf("ExitErr() = %v; want ErrPluginUnavailable with the signal", err)
	}
	_, err := p.Model().Predict(t.Context(), []string{"x"})
	if !errors.Is(err, ErrPluginUnavailable) {
		t.Errorf("Predict after kill -9: got %v; want ErrPluginUnavailable", err)
	}
	if err := p.Model().Health(t.Context()); !errors.Is(err, ErrPluginUnavailable) {
		t.Errorf("Health after kill -9: got %v; want ErrPluginUnavailable", err)
	}
	p.Kill()
	assertReaped(t, p.Pid())
}

func TestProcessCrashMidCall(t *testing.T) {
	p := startTest(t, "crash")
	_, err := p.Model().Predict(t.Context(), []string{"x"})
	if !errors.Is(err, ErrPluginUnavailable) {
		t.Fatalf("Predict: got %v; want ErrPluginUnavailable", err)
	}
	select {
	case <-p.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed within 1s of the crash")
	}
	err = p.ExitErr()
	if !errors.Is(err, ErrPluginUnavailable) || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "panic: out of cheese") {
		t.Errorf("ExitErr() = %v; want the exit status and last stderr line", err)
	}
}

func TestProcessHang(t *testing.T) {
	p := startTest(t, "hang")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Model().Predict(ctx, []string{"x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Predict took %v; want about 200ms", d)
	}
	// The plugin still answers other calls.
	if err := p.Model().Health(t.Context()); err != nil {
		t.Errorf("Health of a plugin with a hung Predict: %v", err)
	}
	start = time.Now()
	p.Kill()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Kill took %v; want <= 2s", d)
	}
	assertReaped(t, p.Pid())
}

func TestProcessSIGSTOP(t *testing.T) {
	requireLinux(t)
	p := startTest(t, "sentiment")
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	proctest.WaitStopped(t, p.Pid())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Model().Predict(ctx, []string{"x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Predict on a stopped plugin: got %v; want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Predict took %v; want about 200ms", d)
	}
	start = time.Now()
	p.Kill()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Kill of a stopped plugin took %v; want <= 2s", d)
	}
	t.Logf("Kill of a SIGSTOPped plugin took %v", time.Since(start))
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Kill returned")
	}
	assertReaped(t, p.Pid())
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid())); err == nil {
		t.Logf("note: pid %d exists again (reused?)", p.Pid())
	}
}

func TestStartNotFound(t *testing.T) {
	for _, cmd := range []string{"/nonexistent/healproxy-model", "healproxy-no-such-plugin-binary"} {
		t.Run(cmd, func(t *testing.T) {
			logger, _ := testLogger(t)
			start := time.Now()
			_, err := Start(t.Context(), Spec{Key: "nf", Command: []string{cmd}}, logger)
			if err == nil || !strings.Contains(err.Error(), "not found") {
				t.Fatalf("got %v; want a not-found error", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Start took %v; want it to fail at once", d)
			}
			assertNoChildren(t)
		})
	}
}

func TestStartNotAPlugin(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		wantMsg []string
	}{
		{"exits at once", Spec{Command: []string{"/bin/true"}}, []string{"handshake", "nothing on stdout"}},
		{"prints something else", Spec{Command: []string{"sh", "-c", "echo hi"}}, []string{"handshake", "hi"}},
		{"stdout before Serve", testSpec("stdout"), []string{"handshake", "hello from init"}},
		{"never answers", Spec{Command: []string{"sleep", "30"}, StartTimeout: 300 * time.Millisecond}, []string{"handshake", "timeout"}},
		{"unhealthy", testSpec("unhealthy"), []string{"health check failed", "weights missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := testLogger(t)
			tt.spec.Key = "bad"
			start := time.Now()
			_, err := Start(t.Context(), tt.spec, logger)
			if err == nil {
				t.Fatal("Start succeeded; want an error")
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got %q; want it to contain %q", err, s)
				}
			}
			t.Logf("error: %v", err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Start took %v", d)
			}
			assertNoChildren(t)
		})
	}
}

func TestStartCycles(t *testing.T) {
	requireLinux(t)
	logger, _ := testLogger(t)
	for i := range 20 {
		p, err := Start(t.Context(), testSpec("sentiment"), logger)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := p.Model().Predict(t.Context(), []string{"up only"}); err != nil {
			t.Fatalf("cycle %d: Predict: %v", i, err)
		}
		p.Kill()
		assertReaped(t, p.Pid())
	}
	assertNoChildren(t)
}

func TestKillConcurrent(t *testing.T) {
	requireLinux(t)
	p := startTest(t, "sentiment")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(p.Kill)
	}
	// Done and the in-flight state are consistent while Kill runs.
	wg.Go(func() { _, _ = p.Model().Predict(context.Background(), []string{"x"}) })
	wg.Wait()
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill returned")
	}
	if err := p.ExitErr(); !errors.Is(err, ErrPluginUnavailable) || !strings.Contains(err.Error(), "stopped by the host") {
		t.Errorf("ExitErr() = %v; want stopped by the host", err)
	}
	assertReaped(t, p.Pid())
	assertNoChildren(t)
	if _, err := p.Model().Predict(t.Context(), []string{"x"}); !errors.Is(err, ErrPluginUnavailable) {
		t.Errorf("Predict after Kill: got %v; want ErrPluginUnavailable", err)
	}
}

func TestPluginStderrLogged(t *testing.T) {
	logger, buf := testLogger(t)
	p, err := Start(t.Context(), testSpec("stderr"), logger)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	out := buf.String()
	if !strings.Contains(out, "model=test_stderr") || !strings.Contains(out, "loading lexicon from nowhere") {
		t.Errorf("log %q; want the plugin's stderr line under model=test_stderr", out)
	}
	// A clean start and kill is quiet.
	for line := range strings.Lines(out) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("unexpected warning: %s", line)
		}
	}
}

func TestSpecEnvOverridesHost(t *testing.T) {
	requireLinux(t)
	t.Setenv("HEALPROXY_TEST_SHADOW", "host")
	logger, _ := testLogger(t)
	spec := testSpec("sentiment")
	spec.Env = append(spec.Env, "HEALPROXY_TEST_SHADOW=spec")
	p, err := Start(t.Context(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "HEALPROXY_TEST_SHADOW="); ok {
			got = append(got, v)
		}
	}
	if len(got) != 1 || got[0] != "spec" {
		t.Errorf("child sees HEALPROXY_TEST_SHADOW=%q; want just %q", got, "spec")
	}
}

func TestBuiltinCommand(t *testing.T) {
	got := BuiltinCommand("sentiment")
	if len(got) != 3 || got[1] != "plugin" || got[2] != "sentiment" {
		t.Fatalf("BuiltinCommand = %q", got)
	}
	if runtime.GOOS == "linux" && got[0] != "/proc/self/exe" {
		t.Errorf("exe = %q; want /proc/self/exe", got[0])
	}
}
