package plugins_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/plugins"
)

// Tests of the Python plugin kit's side of the protocol (plugins/python);
// its supervision is tested in supervisor/python_test.go.

func cookie() string {
	return plugins.Handshake.MagicCookieKey + "=" + plugins.Handshake.MagicCookieValue
}

// TestPythonKitRunByHand: without the cookie the plugin says what it is on
// stderr, writes nothing to stdout, and exits 1.
func TestPythonKitRunByHand(t *testing.T) {
	testplugins.RequirePython(t)
	argv := testplugins.PythonTestModel("ok")
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("got %v; want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q; want nothing", stdout.String())
	}
	for _, want := range []string{"healproxy model plugin", "not meant to be run by hand", "healproxy plugin-check --"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q; want %q", stderr.String(), want)
		}
	}
}

// TestPythonKitHandshakeAndParentGone starts the plugin under a shell that
// then exits: the handshake line is the protocol's, and the plugin exits by
// itself once its parent is gone (without a parent-death signal).
func TestPythonKitHandshakeAndParentGone(t *testing.T) {
	testplugins.RequirePython(t)
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			argv := testplugins.PythonTestModel("ok")
			// The shell starts the plugin, prints its pid, and exits when
			// its stdin closes.
			sh := exec.Command("sh", "-c", fmt.Sprintf("%q %q ok & echo $!; read x || true", argv[0], argv[1]))
			sh.Env = []string{"PATH=" + os.Getenv("PATH"), cookie(), "PLUGIN_PROTOCOL_VERSIONS=1"}
			if network == "unix" {
				sh.Env = append(sh.Env, "PLUGIN_UNIX_SOCKET_DIR="+t.TempDir())
			}
			stdin, err := sh.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := sh.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := sh.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sh.Process.Kill(); _ = sh.Wait() })
			lines := bufio.NewReader(out)
			pidLine, err := lines.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(pidLine))
			if err != nil {
				t.Fatalf("pid line %q", pidLine)
			}
			t.Cleanup(func() { _ = (&os.Process{Pid: pid}).Kill() })
			hs, err := lines.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the handshake: %v", err)
			}
			want := `^1\|1\|unix\|.+/plugin` + strconv.Itoa(pid) + `\.sock\|grpc\n$`
			if network == "tcp" {
				want = `^1\|1\|tcp\|127\.0\.0\.1:[0-9]+\|grpc\n$`
			}
			if !regexp.MustCompile(want).MatchString(hs) {
				t.Errorf("handshake %q; want it to match %s", hs, want)
			}
			stdin.Close() // the shell exits: the plugin's parent is gone
			if err := sh.Wait(); err != nil {
				t.Fatalf("shell: %v", err)
			}
			start := time.Now()
			for {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					t.Logf("plugin exited %v after its parent", time.Since(start))
					break
				}
				if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(b, []byte(") Z ")) {
					t.Logf("plugin exited (zombie of its new parent) %v after its parent", time.Since(start))
					break
				}
				if time.Since(start) > 3*time.Second {
					t.Fatal("plugin still runs 3s after its parent exited")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Nothing after the handshake reached stdout.
			rest, _ := io.ReadAll(lines)
			if len(rest) != 0 {
				t.Errorf("stdout after the handshake: %q; want nothing", rest)
			}
		})
	}
}

// TestPythonKitStdoutClean: after the handshake the kit sends print() to
// stderr, so nothing but the handshake line ever goes to stdout.
func TestPythonKitStdoutClean(t *testing.T) {
	testplugins.RequirePython(t)
	logs := &proctest.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := plugins.Start(t.Context(), plugins.Spec{Key: "py", Command: testplugins.PythonTestModel("ok")}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Model().Predict(t.Context(), []string{"print"}); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	out := logs.String()
	if !strings.Contains(out, `stream=stderr line="a model that prints"`) || strings.Contains(out, "stream=stdout") {
		t.Errorf("log:\n%s\nwant the printed line on stderr and nothing from stdout", out)
	}
}

// TestPythonKitShutdown: healproxy's Kill is answered by go-plugin's
// shutdown call: the plugin exits 0 by itself, well within the grace
// before SIGKILL.
func TestPythonKitShutdown(t *testing.T) {
	testplugins.RequirePython(t)
	p, err := plugins.Start(t.Context(), plugins.Spec{Key: "py", Command: testplugins.PythonTestModel("ok")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Kill()
	took := time.Since(start)
	if err := p.ExitErr(); err == nil || !strings.Contains(err.Error(), "exit status 0") {
		t.Errorf("ExitErr() = %v; want exit status 0 (shut down, not killed)", err)
	}
	// Exit status 0 is the proof: after killGrace the process would have
	// been SIGKILLed. How long it took is a figure, not a test.
	t.Logf("Kill → exit in %v", took)
}

// TestPythonKitDeadline: the call's deadline reaches the model
// (predict(inputs, call): call.time_remaining()).
func TestPythonKitDeadline(t *testing.T) {
	testplugins.RequirePython(t)
	p, err := plugins.Start(t.Context(), plugins.Spec{Key: "py", Command: testplugins.PythonTestModel("ok")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	out, err := p.Model().Predict(ctx, []string{"deadline"})
	if err != nil {
		t.Fatal(err)
	}
	left, err := strconv.ParseFloat(strings.TrimPrefix(out[0][0].Label, "remaining:"), 64)
	if err != nil || left <= 0 || left > 3 {
		t.Errorf("the model saw %q; want 0 < remaining <= 3 seconds", out[0][0].Label)
	}
}
