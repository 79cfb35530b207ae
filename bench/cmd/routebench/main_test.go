package main

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// buildHealproxy builds the real binary from this tree into a temporary
// folder.
func buildHealproxy(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build healproxy: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "healproxy")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/healproxy/healproxy/cmd/healproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build healproxy: %v\n%s", err, out)
	}
	return bin
}

// TestRunRoundRobin is a tiny real run: healproxy built from the tree, the
// healthy baseline and round_robin, plus a scenario with a setting no
// build knows, which must be reported and skipped, not stop the run.
func TestRunRoundRobin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs healproxy")
	}
	bin := buildHealproxy(t)
	dir := t.TempDir()
	const slowDelay = 300 * time.Millisecond
	o := options{
		Bin: bin, Dir: dir, Requests: 200, Concurrency: 8, Warmup: 100 * time.Millisecond,
		MaxTime: 30 * time.Second, Rounds: 1,
		FastDelay: time.Millisecond, SlowDelay: slowDelay, SlowEvery: 5,
		Scenarios: []scenario{
			scenarios[0], // healthy
			scenarios[1], // round_robin
			{Name: "future", Settings: `bogus_setting = 1`},
		},
	}
	var log strings.Builder
	rep, err := run(o, &log)
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s", err, log.String())
	}
	if g, e := len(rep.Summary), 3; g != e {
		t.Fatalf("got %d summary rows; want %d", g, e)
	}
	healthy, rr, future := rep.Summary[0], rep.Summary[1], rep.Summary[2]
	for _, r := range []summaryRow{healthy, rr} {
		if r.Status != statusOK || r.Rounds != 1 || r.Errors != 0 {
			t.Fatalf("%s: got status %q (%s), %d rounds, %d errors; want ok, 1, 0", r.Scenario, r.Status, r.Detail, r.Rounds, r.Errors)
		}
		if g := r.Up[0] + r.Up[1] + r.Up[2]; g != 200 {
			t.Errorf("%s: got %v upstream requests; want 200 (one per client request, no retry)", r.Scenario, g)
		}
		if r.ExtraPct != 0 {
			t.Errorf("%s: got %v %% extra upstream requests; want 0", r.Scenario, r.ExtraPct)
		}
		if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999) {
			t.Errorf("%s: percentiles out of order: %v %v %v %v", r.Scenario, r.P50, r.P90, r.P99, r.P999)
		}
	}
	if healthy.Up[2] != 0 || healthy.SlowAnswers != 0 {
		t.Errorf("healthy: the slow upstream got %v requests (%v slow); want none", healthy.Up[2], healthy.SlowAnswers)
	}
	// Round robin over three: about a third each, a fifth of the slow
	// one's delayed, so ~6.7 % of client requests take slowDelay: p99 shows it.
	for i, n := range rr.Up {
		if n < 50 || n > 84 {
			t.Errorf("round_robin: upstream %d got %v requests; want about 67", i, n)
		}
	}
	if rr.SlowAnswers < 10 {
		t.Errorf("round_robin: got %v slow answers; want about 13", rr.SlowAnswers)
	}
	if min := float64(slowDelay) / 1e6; rr.P99 < min {
		t.Errorf("round_robin: got p99 %.1f ms; want at least the slow delay, %.0f ms", rr.P99, min)
	}
	if math.IsNaN(rr.VsHealthy) || rr.VsHealthy <= 0 {
		t.Errorf("round_robin: got p99/healthy %v; want a ratio", rr.VsHealthy)
	}
	if future.Status != statusUnsupported || !strings.Contains(future.Detail, "bogus_setting") {
		t.Errorf("future: got %q (%s); want %q naming bogus_setting", future.Status, future.Detail, statusUnsupported)
	}

	md, err := os.ReadFile(filepath.Join(dir, "routing.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| scenario | p50 ms |", "| healthy | ", "| round_robin | ", "| future | not supported by this build |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("routing.md lacks %q:\n%s", s, md)
		}
	}
	for name, lines := range map[string]int{"routing.tsv": 4, "routing-raw.tsv": 4} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Count(string(b), "\n"); g != lines {
			t.Errorf("%s: got %d lines; want %d:\n%s", name, g, lines, b)
		}
	}
	for _, f := range []string{"routing-round_robin.hcl", "routing-round_robin-r1.log", "routing-future.hcl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestPercentileMs(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 1000; i++ {
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if g := percentileMs(xs, tt.q); g != tt.want {
			t.Errorf("percentileMs(%v): got %v; want %v", tt.q, g, tt.want)
		}
	}
	if g := percentileMs(nil, 0.5); !math.IsNaN(g) {
		t.Errorf("percentileMs(nil): got %v; want NaN", g)
	}
}

func TestSummaryAndVerdict(t *testing.T) {
	scs := []scenario{{Name: "healthy", Healthy: true}, {Name: "hedge_50ms", Settings: "hedge {\n after = \"50ms\"\n }"}, {Name: "outlier"}, {Name: "least_latency"}}
	ok := func(name string, round int, p99 float64, extra float64) roundResult {
		return roundResult{Scenario: name, Round: round, Status: statusOK, Requests: 100, P50: 1, P90: 2, P99: p99, P999: p99 + 1,
			ExtraPct: extra, Up: [3]counts{{Requests: 40}, {Requests: 40}, {Requests: 20 + int64(extra), Slow: 4, Cancelled: 3}}}
	}
	rounds := []roundResult{
		ok("healthy", 1, 8, 0), ok("hedge_50ms", 1, 14, 5), ok("outlier", 1, 40, 0),
		{Scenario: "least_latency", Round: 1, Status: statusUnsupported, Detail: "Unsupported argument"},
		ok("healthy", 2, 12, 0), ok("hedge_50ms", 2, 22, 7), ok("outlier", 2, 30, 0),
		{Scenario: "least_latency", Round: 2, Status: statusUnsupported, Detail: "Unsupported argument"},
	}
	rows := summarize(scs, rounds)
	if g, e := rows[0].P99, 10.0; g != e {
		t.Errorf("healthy p99: got %v; want the median %v", g, e)
	}
	if g, e := rows[1].VsHealthy, 1.8; math.Abs(g-e) > 1e-9 {
		t.Errorf("hedge_50ms p99/healthy: got %v; want %v", g, e)
	}
	if g, e := rows[1].ExtraPct, 6.0; g != e {
		t.Errorf("hedge_50ms extra: got %v; want %v", g, e)
	}
	if rows[3].Status != statusUnsupported || rows[3].Rounds != 0 {
		t.Errorf("least_latency: got %q, %d rounds; want unsupported, 0", rows[3].Status, rows[3].Rounds)
	}
	md := markdown(options{Rounds: 2, SlowDelay: 300 * time.Millisecond}, "env\n", rows)
	for _, s := range []string{
		"(10.0 ms, so under 20.0 ms): hedge_50ms 18.0 ms, **met**; outlier 35.0 ms, **not met**.",
		"hedge_50ms 6.0 % (3 cancelled)",
		"| least_latency | not supported by this build |",
		"- hedge_50ms: fast1, fast2 and slow; `hedge { after = \"50ms\" }`",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	// Every table row has as many cells as the header.
	var cols int
	for _, l := range strings.Split(md, "\n") {
		if !strings.HasPrefix(l, "|") {
			continue
		}
		n := strings.Count(l, "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row with %d separators, header has %d: %s", n, cols, l)
		}
	}
}

func TestConfigFor(t *testing.T) {
	ups := []*upstream{{Name: "fast1", URL: "http://127.0.0.1:1"}, {Name: "fast2", URL: "http://127.0.0.1:2"}, {Name: "slow", URL: "http://127.0.0.1:3"}}
	h := configFor(scenarios[0], ups)
	if strings.Contains(h, "slow") || !strings.Contains(h, `"http://127.0.0.1:2/fast2"]`) {
		t.Errorf("healthy config should list fast1 and fast2 only:\n%s", h)
	}
	o := configFor(scenarios[len(scenarios)-1], ups)
	if !strings.Contains(o, `"http://127.0.0.1:3/slow"]`) || !strings.Contains(o, "outlier_detection {") {
		t.Errorf("outlier config:\n%s", o)
	}
}

func TestDrive(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	client := newClient(4)
	defer client.CloseIdleConnections()

	t.Run("closed", func(t *testing.T) {
		got.Store(0)
		lr := drive(context.Background(), client, srv.URL, 100, 4, 0)
		if len(lr.Latencies) != 100 || got.Load() != 100 || lr.Errors != 10 || lr.TimedOut {
			t.Errorf("got %d latencies, %d requests, %d errors, timed out %v; want 100, 100, 10, false",
				len(lr.Latencies), got.Load(), lr.Errors, lr.TimedOut)
		}
	})
	t.Run("open", func(t *testing.T) {
		got.Store(0)
		// 50 requests at 500/s: the last is due after 98 ms.
		lr := drive(context.Background(), client, srv.URL, 50, 4, 500)
		if len(lr.Latencies) != 50 || got.Load() != 50 {
			t.Errorf("got %d latencies, %d requests; want 50, 50", len(lr.Latencies), got.Load())
		}
		if lr.Elapsed < 98*time.Millisecond {
			t.Errorf("50 requests at 500/s took %v; want at least 98ms", lr.Elapsed)
		}
	})
	t.Run("time bound", func(t *testing.T) {
		got.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		// 1000 at 100/s would take 10s; the bound stops it after ~5.
		lr := drive(ctx, client, srv.URL, 1000, 4, 100)
		if !lr.TimedOut || len(lr.Latencies) > 20 || int64(len(lr.Latencies)) != got.Load() {
			t.Errorf("got %d latencies, %d requests, timed out %v; want a few, as many requests, true",
				len(lr.Latencies), got.Load(), lr.TimedOut)
		}
	})
}

func TestNoEffect(t *testing.T) {
	row := func(name string, up [3]float64, extra, canc float64) summaryRow {
		return summaryRow{Scenario: name, Status: statusOK, Up: up, ExtraPct: extra, Cancelled: canc}
	}
	rows := []summaryRow{
		row("round_robin", [3]float64{100, 100, 100}, 0, 0),
		row("least_latency", [3]float64{100, 100, 100}, 0, 0), // no effect
		row("outlier", [3]float64{140, 140, 20}, 0, 0),
		row("hedge_p95", [3]float64{100, 100, 100}, 0, 0), // no effect
		row("hedge_50ms", [3]float64{105, 105, 100}, 3.3, 8),
	}
	got := strings.Join(noEffect(rows), "; ")
	want := "least_latency: the slow upstream still got 33.3 % of the requests; hedge_p95: not one hedged request (no extra or cancelled upstream request)"
	if got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}
