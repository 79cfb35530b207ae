package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// benchResult is one benchmark of `go test -bench` output: the medians of
// each of its metrics over its lines (-count n gives n lines).
type benchResult struct {
	Name    string // without "Benchmark" and the -GOMAXPROCS suffix
	Runs    int
	Iters   int64 // of the last line
	Metrics map[string]float64
	Units   []string // in order of first appearance
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseGobench reads `go test -bench` output; lines that are not results
// are skipped.
func parseGobench(r io.Reader) ([]benchResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var order []string
	vals := map[string]map[string][]float64{}
	res := map[string]*benchResult{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		br := res[name]
		if br == nil {
			br = &benchResult{Name: name, Metrics: map[string]float64{}}
			res[name] = br
			vals[name] = map[string][]float64{}
			order = append(order, name)
		}
		br.Runs++
		br.Iters = iters
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if _, ok := vals[name][unit]; !ok {
				br.Units = append(br.Units, unit)
			}
			vals[name][unit] = append(vals[name][unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]benchResult, 0, len(order))
	for _, name := range order {
		br := res[name]
		for unit, vs := range vals[name] {
			br.Metrics[unit] = median(vs)
		}
		out = append(out, *br)
	}
	return out, nil
}

func lookup(rs []benchResult, name, unit string) float64 {
	for _, r := range rs {
		if r.Name == name {
			if v, ok := r.Metrics[unit]; ok {
				return v
			}
		}
	}
	return math.NaN()
}

// fmtMetric writes a metric value compactly.
func fmtMetric(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fmtNsOp writes a time per operation in a readable unit.
func fmtNsOp(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmtMetric(ns/1e6) + " ms/op"
	case ns >= 1e3:
		return fmtMetric(ns/1e3) + " µs/op"
	}
	return fmtMetric(ns) + " ns/op"
}

// scaleMarkdown gathers the scale benchmarks of proxy/scale_bench_test.go
// into one row per provider count.
func scaleMarkdown(rs []benchResult) string {
	var counts []string
	for _, r := range rs {
		if _, after, ok := strings.Cut(r.Name, "providers="); ok {
			n, _, _ := strings.Cut(after, "/")
			if !slices.Contains(counts, n) {
				counts = append(counts, n)
			}
		}
	}
	var b strings.Builder
	b.WriteString("| providers | config.Load ms | config.Load + proxy.New ms | heap B/provider | health document ms | health document KiB | Reload, unchanged ms | Reload, all changed ms |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range counts {
		msOf := func(name string) string { return fmtF(lookup(rs, name+"/providers="+n, "ns/op")/1e6, 1) }
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", n, msOf("ScaleConfigLoad"), msOf("ScaleStartup"),
			fmtF(lookup(rs, "ScaleHeap/providers="+n, "heap-B/provider"), 0), msOf("ScaleHealthDocument"),
			fmtF(lookup(rs, "ScaleHealthDocument/providers="+n, "doc-bytes")/1024, 0),
			fmtF(lookup(rs, "ScaleReload/providers="+n+"/unchanged", "ns/op")/1e6, 1),
			fmtF(lookup(rs, "ScaleReload/providers="+n+"/all-changed", "ns/op")/1e6, 1))
	}
	b.WriteString("\nIn-process Go benchmarks (`go test -bench Scale -benchtime 3x ./proxy/`): Reload excludes reading the file, " +
		"which is config.Load's time; heap B/provider is `runtime.MemStats.HeapAlloc` after a GC, config included.\n")
	return b.String()
}

// gobenchMarkdown lists every benchmark with all its metrics.
func gobenchMarkdown(rs []benchResult) string {
	var b strings.Builder
	b.WriteString("| benchmark | runs | metrics (median over runs) |\n|---|---:|---|\n")
	for _, r := range rs {
		parts := make([]string, 0, len(r.Units))
		for _, u := range r.Units {
			if u == "ns/op" {
				parts = append(parts, fmtNsOp(r.Metrics[u]))
				continue
			}
			parts = append(parts, fmtMetric(r.Metrics[u])+" "+u)
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", r.Name, r.Runs, strings.Join(parts, ", "))
	}
	return b.String()
}

// Model-path targets (BENCHMARKS.md).
const (
	wantHopP50us     = 100.0 // plugin hop p50 overhead < 100 µs
	wantRespawnMaxMs = 300.0 // kill → healthy respawn < 300 ms
)

// modelsMarkdown derives the model-path figures and verdicts from the
// benchmarks of proxy/models_bench_test.go: the p50/p99 overhead of the
// plugin hop, requests/s under concurrency and kill → healthy times.
func modelsMarkdown(rs []benchResult) string {
	var b strings.Builder
	us := func(name, unit string) float64 { return lookup(rs, name, unit) / 1000 }
	in50, in99 := us("PredictInProcess/serial", "p50-ns"), us("PredictInProcess/serial", "p99-ns")
	hop50, hop99 := us("PredictPluginHop/serial", "p50-ns"), us("PredictPluginHop/serial", "p99-ns")
	px50, px99 := us("PredictThroughProxy/serial", "p50-ns"), us("PredictThroughProxy/serial", "p99-ns")
	b.WriteString("| one predict, serial | p50 µs | p99 µs | p50 overhead vs in-process µs | p99 overhead µs |\n|---|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| in-process `sentiment.Analyze` | %s | %s | | |\n", fmtF(in50, 1), fmtF(in99, 1))
	fmt.Fprintf(&b, "| gRPC plugin hop alone | %s | %s | %s | %s |\n", fmtF(hop50, 1), fmtF(hop99, 1), fmtF(hop50-in50, 1), fmtF(hop99-in99, 1))
	fmt.Fprintf(&b, "| HTTP → proxy → plugin | %s | %s | %s | %s |\n", fmtF(px50, 1), fmtF(px99, 1), fmtF(px50-in50, 1), fmtF(px99-in99, 1))

	var clients []benchResult
	for _, r := range rs {
		if strings.HasPrefix(r.Name, "PredictClients/") {
			clients = append(clients, r)
		}
	}
	if len(clients) > 0 {
		b.WriteString("\n| sentiment through the proxy's HTTP predict endpoint | req/s | p50 µs | p99 µs |\n|---|---:|---:|---:|\n")
		for _, r := range clients {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", strings.TrimPrefix(r.Name, "PredictClients/"),
				fmtF(r.Metrics["req/s"], 0), fmtF(lookupOr(r, "p50-us"), 1), fmtF(lookupOr(r, "p99-us"), 1))
		}
	}
	rp50, rp99, rmax := lookup(rs, "ModelRespawn", "p50-ms"), lookup(rs, "ModelRespawn", "p99-ms"), lookup(rs, "ModelRespawn", "max-ms")
	det := lookup(rs, "ModelRespawn", "detect-p50-ms")
	kills := int64(0)
	for _, r := range rs {
		if r.Name == "ModelRespawn" {
			kills = r.Iters
		}
	}
	fmt.Fprintf(&b, "\n| kill -9 → healthy respawned plugin (%d kills) | p50 ms | p99 ms | max ms | exit noticed, p50 ms |\n|---|---:|---:|---:|---:|\n", kills)
	fmt.Fprintf(&b, "| sentiment, auto_reinit, reinit_cooldown 0 | %s | %s | %s | %s |\n", fmtF(rp50, 1), fmtF(rp99, 1), fmtF(rmax, 1), fmtF(det, 1))

	b.WriteString("\n| target | measured | verdict |\n|---|---|---|\n")
	v := "n/a"
	if !math.IsNaN(px50 - in50) {
		v = "**" + metStr(px50-in50 < wantHopP50us) + "**"
	}
	fmt.Fprintf(&b, "| plugin hop p50 overhead < %.0f µs (HTTP → proxy → plugin vs in-process) | %s µs | %s |\n", wantHopP50us, fmtF(px50-in50, 1), v)
	v = "n/a"
	if !math.IsNaN(rmax) {
		v = "**" + metStr(rmax < wantRespawnMaxMs) + "**"
	}
	fmt.Fprintf(&b, "| killed plugin → healthy respawn < %.0f ms (every kill: max) | %s ms (p50 %s) | %s |\n", wantRespawnMaxMs, fmtF(rmax, 1), fmtF(rp50, 1), v)
	return b.String()
}

func lookupOr(r benchResult, unit string) float64 {
	if v, ok := r.Metrics[unit]; ok {
		return v
	}
	return math.NaN()
}

// splice replaces what lies between "<!-- bench:NAME -->" and
// "<!-- /bench:NAME -->" in doc by text.
func splice(doc, name, text string) (string, error) {
	begin, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < 0 || j < i {
		return "", fmt.Errorf("no %q … %q markers", begin, end)
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return doc[:i+len(begin)] + "\n" + text + doc[j:], nil
}

func spliceFile(path, name, text string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := splice(string(doc), name, text)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
