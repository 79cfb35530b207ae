package deploy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientLine is one JSON line printed by the client examples.
type clientLine struct {
	Request           string          `json:"request"`
	Status            int             `json:"status"`
	Body              json.RawMessage `json:"body"`
	Reason            string          `json:"reason"`
	Error             string          `json:"error"`
	RetryAfter        float64         `json:"retry_after"`
	CooldownRemaining float64         `json:"cooldown_remaining"`
	Waited            float64         `json:"waited"`
}

// clientProxy is a healproxy for the client examples: a working provider
// and model, a provider whose only upstream is out for 10 minutes, a
// model whose plugin is dead (no auto_reinit), and a provider whose
// upstream fails once and then recovers after a 5 s cooldown (long
// enough for a client to start on a loaded machine).
type clientProxy struct {
	*healproxy
	recovering *atomic.Int32 // requests the recovering upstream has seen
}

func startClientProxy(t *testing.T) clientProxy {
	t.Helper()
	good, bad := upstreams(t)
	var seen atomic.Int32
	recovering := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 1 {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(`{"recovered":true}`))
	}))
	t.Cleanup(recovering.Close)
	hp := startHealproxy(t, fmt.Sprintf(`
provider "prices" {
  upstreams = [%q]
}
provider "down" {
  upstreams = [%q]
  health {
    error_threshold = 1
    cooldown        = "10m"
  }
}
provider "recovering" {
  upstreams = [%q]
  health {
    error_threshold        = 1
    cooldown               = "5s"
    success_recovery_count = 1
  }
}
model "m0" {
  plugin = "sentiment"
}
model "solo" {
  plugin = "sentiment"
  health {
    auto_reinit = false
  }
}
`, good.URL, bad.URL, recovering.URL))
	// Trip "down" (its 500 passes through, then it cools down) and crash
	// solo's plugin.
	if code := get(t, hp.base+"/providers/down/x"); code != http.StatusInternalServerError {
		t.Fatalf("got %d from down's first request; want its upstream's 500", code)
	}
	hp.killPlugin("solo")
	return clientProxy{healproxy: hp, recovering: &seen}
}

// tripRecovering makes the recovering provider cool down for 5 s.
func (p clientProxy) tripRecovering(t *testing.T) {
	t.Helper()
	p.recovering.Store(0)
	if code := get(t, p.base+"/providers/recovering/x"); code != http.StatusInternalServerError {
		t.Fatalf("got %d tripping recovering; want its upstream's 500", code)
	}
}

// runClient runs a client example and returns its JSON lines and exit
// code.
func runClient(t *testing.T, cmd *exec.Cmd) ([]clientLine, int) {
	t.Helper()
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	var lines []clientLine
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var l clientLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s printed %q: %v\nstderr:\n%s", cmd, sc.Text(), err, stderr.String())
		}
		lines = append(lines, l)
	}
	if t.Failed() || len(lines) == 0 {
		t.Logf("%s\nstdout:\n%s\nstderr:\n%s", cmd, out, stderr.String())
	}
	return lines, code
}

// checkCalls checks the four calls every client makes: a provider and a
// model that work, then the 503 of a provider cooling down and of a dead
// model, read from their bodies and Retry-After.
func checkCalls(t *testing.T, lines []clientLine) {
	t.Helper()
	if len(lines) != 4 {
		t.Fatalf("got %d calls; want 4", len(lines))
	}
	var price struct {
		Price float64 `json:"price"`
	}
	if l := lines[0]; l.Status != 200 || json.Unmarshal(l.Body, &price) != nil || price.Price != 3415.07 {
		t.Errorf("provider call: got %+v; want 200 with the upstream's price", l)
	}
	var pred struct {
		Status string `json:"status"`
		Data   [][]struct {
			Label string  `json:"label"`
			Score float64 `json:"score"`
		} `json:"data"`
	}
	if l := lines[1]; l.Status != 200 || json.Unmarshal(l.Body, &pred) != nil || pred.Status != "success" ||
		len(pred.Data) != 1 || len(pred.Data[0]) == 0 || pred.Data[0][0].Label != "bullish" {
		t.Errorf("model call: got %+v; want 200 with a bullish prediction", l)
	}
	if l := lines[2]; l.Status != 503 || l.Reason != "cooldown" || l.RetryAfter < 500 || l.Error == "" {
		t.Errorf("provider cooling down: got %+v; want 503, reason cooldown, Retry-After of ~600 s, an error", l)
	}
	if l := lines[3]; l.Status != 503 || l.Reason != "unavailable" || l.RetryAfter < 1 || l.Error == "" {
		t.Errorf("dead model: got %+v; want 503, reason unavailable, a Retry-After, an error", l)
	}
}

// checkWaited checks a call that met a 503 with Retry-After (at most 5)
// and was answered after waiting it out.
func checkWaited(t *testing.T, lines []clientLine) {
	t.Helper()
	if len(lines) != 1 {
		t.Fatalf("got %d calls; want 1", len(lines))
	}
	if l := lines[0]; l.Status != 200 || l.Waited < 1 || l.Waited > 5 {
		t.Errorf("got %+v; want 200 after waiting out Retry-After (1-5 s)", l)
	}
}

// TestPythonClient runs examples/clients/python against a live healproxy
// with Debian's python3 and python3-httpx.
func TestPythonClient(t *testing.T) {
	t.Parallel() // each waits mostly (scrapes, cooldowns): run them side by side
	py := need(t, "/usr/bin/python3", "python3", "the Python client example")
	if out, err := exec.Command(py, "-c", "import httpx").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("python3 cannot import httpx (%v: %s): the Python client example is NOT checked; install Debian's python3-httpx", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	p := startClientProxy(t)
	script := "../examples/clients/python/healproxy_client.py"
	lines, code := runClient(t, exec.Command(py, script, "--base", p.base,
		"provider", "prices", "ticker?symbol=BTC", "model", "m0", "BTC breaking out, to the moon",
		"provider", "down", "ticker", "model", "solo", "anything"))
	checkCalls(t, lines)
	if code != 3 {
		t.Errorf("got exit code %d; want 3 (the last call was a 503)", code)
	}

	p.tripRecovering(t)
	lines, code = runClient(t, exec.Command(py, script, "--base", p.base, "--max-wait", "8", "provider", "recovering", "x"))
	checkWaited(t, lines)
	if code != 0 {
		t.Errorf("got exit code %d; want 0", code)
	}
}

// TestGoClient runs examples/clients/go against a live healproxy.
func TestGoClient(t *testing.T) {
	t.Parallel() // each waits mostly (scrapes, cooldowns): run them side by side
	bin := build(t, "examples/clients/go")
	p := startClientProxy(t)
	var lines []clientLine
	for _, args := range [][]string{
		{"-provider", "prices", "-path", "ticker?symbol=BTC", "-model", "m0", "-text", "BTC breaking out, to the moon"},
		{"-provider", "down", "-path", "ticker", "-model", "solo", "-text", "anything"},
	} {
		l, code := runClient(t, exec.Command(bin, append([]string{"-base", p.base}, args...)...))
		lines = append(lines, l...)
		if want := map[bool]int{true: 0, false: 3}[args[1] == "prices"]; code != want {
			t.Errorf("%v: got exit code %d; want %d", args, code, want)
		}
	}
	checkCalls(t, lines)

	p.tripRecovering(t)
	lines, code := runClient(t, exec.Command(bin, "-base", p.base, "-max-wait", "8s", "-provider", "recovering", "-path", "x"))
	checkWaited(t, lines)
	if code != 0 {
		t.Errorf("got exit code %d; want 0", code)
	}
}
