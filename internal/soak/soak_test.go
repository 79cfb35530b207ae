package soak

// TestSoak runs the real binary under load with faults or steady
// (RELIABILITY.md, "Soak"). Short by default so CI can run it with
// -race; the long runs:
//
//	SOAK_DURATION=5m go test -run TestSoak -timeout 0 -v ./internal/soak/
//	SOAK_DURATION=10m SOAK_FAULTS=0 go test -run TestSoak -timeout 0 -v ./internal/soak/
//
// Environment: SOAK_DURATION (default 25s), SOAK_FAULTS (1/0, default 1),
// SOAK_RATE (requests/s, default 150), SOAK_WORKERS (default 16),
// SOAK_OUT (folder kept for soak.csv, soak.svg, healproxy.log; default a
// new temporary folder, whose name the test logs), SOAK_BINARY (a
// healproxy binary to use instead of building one).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration like 5m", name, v)
	}
	return d
}

func envFloat(t *testing.T, name string, def float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

// buildHealproxy builds cmd/healproxy into dir, with -race when this test
// runs with it.
func buildHealproxy(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("SOAK_BINARY"); bin != "" {
		return bin
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "go"
	}
	bin := filepath.Join(dir, "healproxy")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/healproxy/healproxy/cmd/healproxy")
	cmd := exec.Command(gobin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak runs for SOAK_DURATION (default 25s): not in -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the soak reads /proc: Linux only")
	}
	dur := envDuration(t, "SOAK_DURATION", 25*time.Second)
	if dl, ok := t.Deadline(); ok && time.Until(dl) < dur+3*time.Minute {
		t.Fatalf("SOAK_DURATION=%v does not fit the test timeout (%v left): add -timeout 0", dur, time.Until(dl).Round(time.Second))
	}
	faults := os.Getenv("SOAK_FAULTS") != "0"
	out := os.Getenv("SOAK_OUT")
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "healproxy-soak-"); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	if raceEnabled {
		// Under the race detector every heap byte has shadow memory, and
		// healproxy's GC heap floor (internal/gctune) lets the heap grow
		// for longer than a short run's warm-up: RSS would still be
		// climbing to its plateau when judged. Go's default GC makes a
		// leak show within the short CI run; the long runs (no -race)
		// keep the binary's defaults.
		env = append(env, "GOGC=100")
		t.Log("race build: healproxy runs with GOGC=100 (no heap floor)")
	}
	cfg := Config{
		Env:      env,
		Binary:   buildHealproxy(t, t.TempDir()),
		Dir:      out,
		Duration: dur,
		Workers:  int(envFloat(t, "SOAK_WORKERS", 16)),
		Rate:     envFloat(t, "SOAK_RATE", 150),
		Faults:   faults,
		Logf:     t.Logf,
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("soak run: %v", err)
	}
	t.Log(Summary(res))

	if n := res.ErrorCount(); n > 0 {
		t.Errorf("%d client-visible errors while a healthy upstream or fallback existed (see above)", n)
	}
	for _, v := range res.Verdicts {
		if !v.Flat && raceEnabled && v.Name == "rss_kib" && v.Last <= v.Allowed {
			// The race detector's own memory grows with every goroutine
			// and heap address a short run touches: a steady RSS rise
			// within the allowance is its, not healproxy's. The non-race
			// runs judge the RSS climb (RELIABILITY.md).
			t.Logf("race build, RSS within the allowance, its climb not judged: %s", v)
			continue
		}
		if !v.Flat {
			t.Errorf("%s", v)
		}
	}
	if res.ExitCode != 0 {
		t.Errorf("healproxy exited %d after SIGTERM; want 0 (log: %s)", res.ExitCode, res.Log)
	}
	if len(res.Orphans) > 0 {
		t.Errorf("plugin processes %v outlived healproxy", res.Orphans)
	}
	for i, s := range res.Samples {
		if s.Children > 2 {
			t.Errorf("at %v: %d plugin processes; want at most 2 (one per model)", s.T, s.Children)
			break
		}
		if i > 0 && s.Zombies > 0 && res.Samples[i-1].Zombies > 0 {
			t.Errorf("at %v: a zombie child for two samples running: a plugin was not reaped", s.T)
			break
		}
	}
	if faults && res.Kills == 0 && dur >= 15*time.Second {
		t.Errorf("no plugin was killed in %v (%d turns skipped)", dur, res.KillsSkipped)
	}
}

// Summary is a human-readable account of a run: what was sent, what
// failed and why, the resources first vs last, and the flatness verdicts.
func Summary(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak summary (%v):\n", res.Duration.Round(time.Second))
	fmt.Fprintf(&b, "  requests %d (%.0f/s), 2xx %d, client-visible errors %d\n", res.Requests,
		float64(res.Requests)/max(res.Duration.Seconds(), 1), res.OK, res.ErrorCount())
	fmt.Fprintf(&b, "  latency p50 %v, p99 %v, max %v", res.Percentile(50).Round(time.Microsecond),
		res.Percentile(99).Round(time.Microsecond), res.Percentile(100).Round(time.Millisecond))
	if res.FlapCycles > 0 {
		b.WriteString(" (a hung upstream costs its timeout, then a retry)")
	}
	b.WriteString("\n")
	targets := make([]string, 0, len(res.ByTarget))
	for k := range res.ByTarget {
		targets = append(targets, k)
	}
	slices.Sort(targets)
	for _, k := range targets {
		fmt.Fprintf(&b, "    %-32s %d\n", k, res.ByTarget[k])
	}
	reasons := make([]string, 0, len(res.Errors))
	for k := range res.Errors {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	for _, k := range reasons {
		fmt.Fprintf(&b, "  error ×%d (first at %v): %s\n", res.Errors[k], res.FirstErr[k].Round(time.Millisecond), k)
	}
	fmt.Fprintf(&b, "  plugin kills %d (%d turns skipped while a model was not back), flapping upstream failing phases %d\n",
		res.Kills, res.KillsSkipped, res.FlapCycles)
	if n := len(res.Samples); n > 0 {
		f, l := res.Samples[0], res.Samples[n-1]
		maxRSS, maxG, maxFD := int64(0), 0, 0
		for _, s := range res.Samples {
			maxRSS, maxG, maxFD = max(maxRSS, s.RSSKiB), max(maxG, s.Goroutines), max(maxFD, s.FDs)
		}
		fmt.Fprintf(&b, "  first vs last sample: rss %d → %d KiB (max %d), goroutines %d → %d (max %d), fds %d → %d (max %d), plugins %d → %d\n",
			f.RSSKiB, l.RSSKiB, maxRSS, f.Goroutines, l.Goroutines, maxG, f.FDs, l.FDs, maxFD, f.Children, l.Children)
	}
	for _, v := range res.Verdicts {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	fmt.Fprintf(&b, "  healproxy exit code after SIGTERM %d, orphaned plugins %d\n", res.ExitCode, len(res.Orphans))
	fmt.Fprintf(&b, "  files: %s, %s, %s\n", res.CSV, res.SVG, res.Log)
	return b.String()
}

// TestJudge: the flatness check passes noise and a step within the
// tolerance, and catches growth past it and a steady climb.
func TestJudge(t *testing.T) {
	lim := Limit{Ratio: 0.2, Abs: 10}
	series := func(n int, f func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name     string
		vals     []float64
		wantFlat bool
	}{
		{"constant", series(30, func(int) float64 { return 100 }), true},
		{"noise", series(30, func(i int) float64 { return 100 + float64(i%5*3) }), true},
		{"a step within the tolerance", series(30, func(i int) float64 { return 100 + float64(i/15*20) }), true},
		{"doubling", series(30, func(i int) float64 { return 100 + float64(i*4) }), false},
		{"slow steady climb", series(60, func(i int) float64 { return 100 + float64(i)/2 }), false},
		// a race build settling: +7 % in small steps, under half the allowance
		{"settling rise", series(30, func(i int) float64 { return 100 + float64(i)/4 }), true},
		{"too few samples", series(3, func(int) float64 { return 100 }), false},
		{"falling", series(30, func(i int) float64 { return 200 - float64(i) }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge("x", tt.vals, lim)
			if v.Flat != tt.wantFlat {
				t.Errorf("got flat %v (%s); want %v", v.Flat, v, tt.wantFlat)
			}
		})
	}
}

// TestJudgeWarmup: samples before the warm-up's end are not judged.
func TestJudgeWarmup(t *testing.T) {
	var samples []Sample
	for i := range 40 {
		s := Sample{T: time.Duration(i) * time.Second, RSSKiB: 50 << 10, Goroutines: 40, FDs: 20}
		if i < 10 { // start-up: everything climbing
			s.RSSKiB, s.Goroutines, s.FDs = int64(i)<<10, i, i
		}
		samples = append(samples, s)
	}
	for _, v := range Judge(samples, 10*time.Second, Tolerance{}) {
		if !v.Flat || v.Samples != 30 {
			t.Errorf("%s over %d samples; want flat over 30", v, v.Samples)
		}
	}
}

// TestChart: the chart is one SVG document with a line per resource and
// a tick per kill.
func TestChart(t *testing.T) {
	var samples []Sample
	for i := range 20 {
		samples = append(samples, Sample{T: time.Duration(i) * time.Second, RSSKiB: 30000 + int64(i), Goroutines: 50, FDs: 25, Children: 2,
			Requests: int64(i * 100), Kills: i / 5})
	}
	svg := Chart(samples, 5*time.Second, killTimes(samples))
	if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") {
		t.Fatalf("not an SVG document: %.80s…", svg)
	}
	if got := strings.Count(svg, "<polyline"); got != 4 {
		t.Errorf("%d polylines; want 4 (rss, goroutines, fds, plugins)", got)
	}
	if got, want := strings.Count(svg, `stroke="#d62728"`), 3*4; got != want {
		t.Errorf("%d kill ticks; want %d (3 kills × 4 panels)", got, want)
	}
	if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
		t.Errorf("the chart has NaN or Inf coordinates")
	}
	if empty := Chart(nil, 0, nil); !strings.Contains(empty, "</svg>") || strings.Contains(empty, "NaN") {
		t.Errorf("the chart of no samples is broken: %s", empty)
	}
}
