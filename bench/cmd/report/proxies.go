package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// run is one wrk measurement: one line of raw.tsv.
type run struct {
	Conns  int
	Round  int
	Target string
	RPS    float64
	P50    float64 // ms
	P99    float64 // ms
	Errors int64
	CPU    float64 // µs per request; NaN if unknown
	Idle   float64 // % of the machine idle
	Ext    float64 // % of all cores used by processes the script did not start
	Kept   bool    // run.sh's mark; false: it redid this run (leastDisturbed picks the try that counts)
	HWMKB  float64 // peak RSS of the target's processes, KiB; NaN if unknown
}

// row is one target at one connection count: medians over kept rounds.
type row struct {
	Conns       int
	Target      string
	Rounds      int
	RPS         float64
	P50, P99    float64
	CPU         float64 // NaN if unknown
	HWMKB       float64 // max over rounds; NaN if unknown
	Idle, Ext   float64
	Errors      int64
	RatioDirect float64 // RPS / direct's RPS; NaN without direct
	RatioGo     float64 // RPS / goproxy's RPS; NaN without goproxy
}

// targetOrder is the order of targets in tables and the chart; others
// follow in the order they first appear.
var targetOrder = []string{"direct", "goproxy", "healproxy", "healproxy-b", "nginx", "haproxy", "caddy", "traefik"}

// parseRaw reads raw.tsv. Columns are found by their header names; a
// value "NA" (or a missing column) is NaN.
func parseRaw(r io.Reader) ([]run, error) {
	sc := bufio.NewScanner(r)
	var col map[string]int
	var runs []run
	line := 0
	for sc.Scan() {
		line++
		f := strings.Split(strings.TrimRight(sc.Text(), "\r"), "\t")
		if col == nil {
			col = map[string]int{}
			for i, name := range f {
				col[name] = i
			}
			for _, need := range []string{"conns", "target", "rps", "p50_ms", "p99_ms"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("raw.tsv: no column %q in the header", need)
				}
			}
			continue
		}
		if len(f) == 1 && f[0] == "" {
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return "NA"
		}
		num := func(name string) float64 {
			v, err := strconv.ParseFloat(get(name), 64)
			if err != nil {
				return math.NaN()
			}
			return v
		}
		conns, err := strconv.Atoi(get("conns"))
		if err != nil {
			return nil, fmt.Errorf("raw.tsv:%d: conns %q: %v", line, get("conns"), err)
		}
		rd, _ := strconv.Atoi(get("round"))
		errs, _ := strconv.ParseInt(get("errors"), 10, 64)
		runs = append(runs, run{
			Conns: conns, Round: rd, Target: get("target"),
			RPS: num("rps"), P50: num("p50_ms"), P99: num("p99_ms"), Errors: errs,
			CPU: num("cpu_us_per_req"), Idle: num("idle_pct"), Ext: num("ext_pct"),
			Kept: get("kept") != "0", HWMKB: num("hwm_kb"),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if col == nil {
		return nil, fmt.Errorf("raw.tsv is empty")
	}
	return runs, nil
}

// median of the numbers of xs that are not NaN; NaN if there are none.
func median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// leastDisturbed keeps one run per connection count, round and target:
// of the tries run.sh made (it redoes a run that other processes
// disturbed), the one during which they used the least CPU (ext %; the
// later one on a tie). The same rule holds for every target.
func leastDisturbed(runs []run) []run {
	type key struct {
		conns, round int
		target       string
	}
	best := map[key]int{}
	var order []key
	for i, r := range runs {
		k := key{r.Conns, r.Round, r.Target}
		j, ok := best[k]
		switch {
		case !ok:
			order = append(order, k)
			best[k] = i
		case !(runs[j].Ext < r.Ext): // NaN-safe: a known ext beats NaN
			best[k] = i
		}
	}
	out := make([]run, 0, len(order))
	for _, k := range order {
		out = append(out, runs[best[k]])
	}
	return out
}

// summarize takes the medians over rounds of the least disturbed try per
// round, per connection count and target, ordered by connection count
// then targetOrder.
func summarize(runs []run) []row {
	type key struct {
		conns  int
		target string
	}
	var keys []key
	group := map[key][]run{}
	for _, r := range leastDisturbed(runs) {
		k := key{r.Conns, r.Target}
		if _, ok := group[k]; !ok {
			keys = append(keys, k)
		}
		group[k] = append(group[k], r)
	}
	rank := func(t string) int {
		if i := slices.Index(targetOrder, t); i >= 0 {
			return i
		}
		return len(targetOrder)
	}
	slices.SortStableFunc(keys, func(a, b key) int {
		if a.conns != b.conns {
			return a.conns - b.conns
		}
		return rank(a.target) - rank(b.target)
	})
	rows := make([]row, 0, len(keys))
	for _, k := range keys {
		g := group[k]
		pick := func(f func(run) float64) []float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return v
		}
		rw := row{Conns: k.conns, Target: k.target, Rounds: len(g),
			RPS:   median(pick(func(r run) float64 { return r.RPS })),
			P50:   median(pick(func(r run) float64 { return r.P50 })),
			P99:   median(pick(func(r run) float64 { return r.P99 })),
			CPU:   median(pick(func(r run) float64 { return r.CPU })),
			Idle:  median(pick(func(r run) float64 { return r.Idle })),
			Ext:   median(pick(func(r run) float64 { return r.Ext })),
			HWMKB: math.NaN(), RatioDirect: math.NaN(), RatioGo: math.NaN(),
		}
		for _, r := range g {
			rw.Errors += r.Errors
			if !math.IsNaN(r.HWMKB) && (math.IsNaN(rw.HWMKB) || r.HWMKB > rw.HWMKB) {
				rw.HWMKB = r.HWMKB
			}
		}
		rows = append(rows, rw)
	}
	for i := range rows {
		if d := find(rows, rows[i].Conns, "direct"); d != nil && d.RPS > 0 {
			rows[i].RatioDirect = rows[i].RPS / d.RPS
		}
		if g := find(rows, rows[i].Conns, "goproxy"); g != nil && g.RPS > 0 {
			rows[i].RatioGo = rows[i].RPS / g.RPS
		}
	}
	return rows
}

func find(rows []row, conns int, target string) *row {
	for i := range rows {
		if rows[i].Conns == conns && rows[i].Target == target {
			return &rows[i]
		}
	}
	return nil
}

func connCounts(rows []row) []int {
	var cs []int
	for _, r := range rows {
		if !slices.Contains(cs, r.Conns) {
			cs = append(cs, r.Conns)
		}
	}
	return cs
}

// fmtF formats x with prec decimals, or "n/a" for NaN.
func fmtF(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func summaryTSV(rows []row) string {
	var b strings.Builder
	b.WriteString("conns\ttarget\trounds\trps\tratio_direct\tratio_goproxy\tp50_ms\tp99_ms\tcpu_us_per_req\tpeak_rss_kb\tidle_pct\text_pct\terrors\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d\t%s\t%d\t%.0f\t%s\t%s\t%.3f\t%.3f\t%s\t%s\t%.1f\t%.1f\t%d\n", r.Conns, r.Target, r.Rounds, r.RPS,
			fmtF(r.RatioDirect, 3), fmtF(r.RatioGo, 3), r.P50, r.P99, fmtF(r.CPU, 1), fmtF(r.HWMKB, 0), r.Idle, r.Ext, r.Errors)
	}
	return b.String()
}

// verdict is one of the request path's targets at one connection count.
type verdict struct {
	Target   string
	Conns    int
	Measured string
	Met      string // "met", "missed" or "n/a (why)"
}

// The request-path targets (BENCHMARKS.md).
const (
	wantVsGo    = 1.5  // healproxy req/s ≥ 1.5 × bare ReverseProxy
	wantVsCaddy = 1.3  // healproxy req/s ≥ 1.3 × Caddy
	wantP99     = 1.5  // healproxy p99 ≤ 1.5 × nginx p99
	wantCPU     = 30.0 // healproxy CPU µs per request < 30
)

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// verdicts judges healproxy against the targets at every connection
// count of the run.
func verdicts(rows []row) []verdict {
	var vs []verdict
	for _, c := range connCounts(rows) {
		h := find(rows, c, "healproxy")
		if h == nil {
			continue
		}
		ratio := func(name, peer string, want float64) {
			v := verdict{Target: name, Conns: c}
			p := find(rows, c, peer)
			switch {
			case p == nil || p.RPS <= 0:
				v.Measured, v.Met = "n/a", "n/a ("+peer+" not run)"
			default:
				x := h.RPS / p.RPS
				v.Measured = fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", x, h.RPS, p.RPS)
				v.Met = metStr(x >= want)
			}
			vs = append(vs, v)
		}
		ratio(fmt.Sprintf("req/s ≥ %.1f× bare ReverseProxy", wantVsGo), "goproxy", wantVsGo)
		ratio(fmt.Sprintf("req/s ≥ %.1f× Caddy", wantVsCaddy), "caddy", wantVsCaddy)
		v := verdict{Target: fmt.Sprintf("p99 ≤ %.1f× nginx p99", wantP99), Conns: c}
		if n := find(rows, c, "nginx"); n == nil || n.P99 <= 0 {
			v.Measured, v.Met = "n/a", "n/a (nginx not run)"
		} else {
			x := h.P99 / n.P99
			v.Measured = fmt.Sprintf("%.2f× (%.2f vs %.2f ms)", x, h.P99, n.P99)
			v.Met = metStr(x <= wantP99)
		}
		vs = append(vs, v)
		v = verdict{Target: fmt.Sprintf("CPU < %.0f µs/request", wantCPU), Conns: c}
		if math.IsNaN(h.CPU) {
			v.Measured, v.Met = "n/a", "n/a (no CPU figure)"
		} else {
			v.Measured = fmt.Sprintf("%.1f µs", h.CPU)
			v.Met = metStr(h.CPU < wantCPU)
		}
		vs = append(vs, v)
	}
	return vs
}

// proxiesMarkdown is the proxies section of BENCHMARKS.md: the results
// table, the verdicts and the run's environment.
func proxiesMarkdown(rows []row, env string) string {
	var b strings.Builder
	b.WriteString("| conns | target | req/s | × direct | × goproxy | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | ext % | errors |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		name := r.Target
		if name == "healproxy" {
			name = "**healproxy**"
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f | %s | %s | %.2f | %.2f | %s | %s | %.1f | %d |\n", r.Conns, name, r.RPS,
			fmtF(r.RatioDirect, 2), fmtF(r.RatioGo, 2), r.P50, r.P99, fmtF(r.CPU, 1), fmtF(r.HWMKB/1024, 1), r.Ext, r.Errors)
	}
	b.WriteString("\nMedians of the interleaved rounds per cell. CPU µs/req: utime+stime of the target's processes " +
		"(the upstream's for `direct`) per request. Peak RSS: VmHWM summed over the target's processes, " +
		"over the run so far (for `direct`, the upstream's, which serves every target). " +
		"ext %: CPU used during the run by processes the script did not start, % of all cores " +
		"(other work on the machine; high values make a cell noisy). A run with ext % over EXT_MAX was redone; " +
		"of the tries, the least disturbed counts, for every target alike (all are in raw.tsv).\n")
	if vs := verdicts(rows); len(vs) > 0 {
		b.WriteString("\n| target | conns | measured | verdict |\n|---|---:|---|---|\n")
		for _, v := range vs {
			met := v.Met
			if met == "met" || met == "missed" {
				met = "**" + met + "**"
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", v.Target, v.Conns, v.Measured, met)
		}
	}
	if env = strings.TrimSpace(env); env != "" {
		b.WriteString("\n```\n" + env + "\n```\n")
	}
	return b.String()
}

// chartTitle names the run from env.txt's date and cpus lines.
func chartTitle(env string) string {
	title := "healproxy vs peers, loopback, wrk -t1"
	for _, l := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(l, "date_utc: "); ok {
			title += ", " + strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "cpus: "); ok {
			if n, _, ok := strings.Cut(v, " "); ok {
				title += ", " + n + " cores"
			}
		}
	}
	return title
}
