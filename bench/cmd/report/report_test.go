package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

const rawTSV = "conns\tround\ttarget\trps\tp50_ms\tp99_ms\trequests\terrors\tcpu_us_per_req\tidle_pct\text_pct\tkept\thwm_kb\n" +
	"32\t1\tdirect\t100000\t0.3\t1.0\t1000000\t0\t8.0\t1.0\t2.0\t1\t10240\n" +
	"32\t1\tgoproxy\t20000\t1.5\t5.0\t200000\t0\t60.0\t1.0\t2.0\t1\t20480\n" +
	"32\t1\thealproxy\t40000\t0.8\t2.0\t400000\t0\t25.0\t1.0\t2.0\t1\t30720\n" +
	"32\t2\thealproxy\t10\t9\t9\t100\t0\t99\t1\t50\t0\t40960\n" + // redone: not counted
	"32\t2\thealproxy\t44000\t0.7\t2.2\t440000\t1\t27.0\t1.0\t3.0\t1\t35840\n" +
	"32\t1\tnginx\t60000\t0.5\t1.0\t600000\t0\t14.0\t1.0\t2.0\t1\tNA\n" +
	"32\t1\tcaddy\t30000\t1.0\t4.0\t300000\t0\t45.0\t1.0\t2.0\t1\t51200\n"

func TestSummarizeAndVerdicts(t *testing.T) {
	runs, err := parseRaw(strings.NewReader(rawTSV))
	if err != nil {
		t.Fatal(err)
	}
	if g, e := len(runs), 7; g != e {
		t.Fatalf("got %d runs; want %d", g, e)
	}
	rows := summarize(runs)
	var names []string
	for _, r := range rows {
		names = append(names, r.Target)
	}
	if g, e := strings.Join(names, " "), "direct goproxy healproxy nginx caddy"; g != e {
		t.Fatalf("got order %q; want %q", g, e)
	}
	h := find(rows, 32, "healproxy")
	if h.Rounds != 2 || h.RPS != 42000 || h.CPU != 26 || h.HWMKB != 35840 || h.Errors != 1 {
		t.Errorf("got healproxy row %+v; want 2 rounds, 42000 req/s, 26 µs, 35840 KiB, 1 error", *h)
	}
	if g, e := h.RatioGo, 2.1; math.Abs(g-e) > 1e-9 {
		t.Errorf("got ratio to goproxy %v; want %v", g, e)
	}
	if g := find(rows, 32, "nginx").HWMKB; !math.IsNaN(g) {
		t.Errorf("got nginx peak RSS %v; want NaN for NA", g)
	}
	want := map[string]string{
		"req/s ≥ 1.5× bare ReverseProxy": "met",
		"req/s ≥ 1.3× Caddy":             "met",
		"p99 ≤ 1.5× nginx p99":           "missed", // 2.1 vs 1.0
		"CPU < 30 µs/request":            "met",
	}
	vs := verdicts(rows)
	if len(vs) != len(want) {
		t.Fatalf("got %d verdicts; want %d", len(vs), len(want))
	}
	for _, v := range vs {
		if g, e := v.Met, want[v.Target]; g != e {
			t.Errorf("%s: got %q; want %q (%s)", v.Target, g, e, v.Measured)
		}
	}
	md := proxiesMarkdown(rows, "cpus: 2  model: X\n")
	for _, s := range []string{"| 32 | **healproxy** | 42000 | 0.42 | 2.10 |", "| p99 ≤ 1.5× nginx p99 | 32 |", "cpus: 2"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestVerdictsWithoutPeers(t *testing.T) {
	rows := summarize([]run{{Conns: 128, Target: "healproxy", RPS: 1, P99: 1, CPU: math.NaN(), Kept: true}})
	for _, v := range verdicts(rows) {
		if !strings.HasPrefix(v.Met, "n/a") {
			t.Errorf("%s: got %q; want n/a", v.Target, v.Met)
		}
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	runs, _ := parseRaw(strings.NewReader(rawTSV))
	svg := chartSVG(summarize(runs), chartTitle("date_utc: 20260101T000000Z\ncpus: 2  model: X"))
	d := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 5 legend boxes + 5 req/s bars + 5 CPU bars
	if g, e := rects, 16; g != e {
		t.Errorf("got %d rects; want %d", g, e)
	}
	if !strings.Contains(svg, "20260101T000000Z, 2 cores") {
		t.Errorf("title lacks the date and cores")
	}
}

func TestNiceStep(t *testing.T) {
	for _, tt := range []struct{ max, want float64 }{{100000, 20000}, {73, 20}, {9, 2}, {0, 1}} {
		if g := niceStep(tt.max, 5); g != tt.want {
			t.Errorf("niceStep(%v): got %v; want %v", tt.max, g, tt.want)
		}
	}
}

const benchOut = `goos: linux
BenchmarkPredictInProcess/serial-2         	  100000	      9000 ns/op	      8000 p50-ns	     20000 p99-ns
BenchmarkPredictPluginHop/serial-2         	   10000	     70000 ns/op	     60000 p50-ns	    150000 p99-ns
BenchmarkPredictThroughProxy/serial-2      	   10000	    110000 ns/op	     98000 p50-ns	    300000 p99-ns
BenchmarkPredictThroughProxy/serial-2      	   10000	    110000 ns/op	    102000 p50-ns	    320000 p99-ns
BenchmarkPredictClients/clients=8-2        	   20000	     50000 ns/op	        80.0 p50-us	       400 p99-us	     20000 req/s
BenchmarkModelRespawn-2                    	      20	 150000000 ns/op	       120.0 p50-ms	       180.0 p99-ms	       250.0 max-ms	         5.000 detect-p50-ms
PASS
`

func TestGobenchAndModels(t *testing.T) {
	rs, err := parseGobench(strings.NewReader(benchOut))
	if err != nil {
		t.Fatal(err)
	}
	if g, e := len(rs), 5; g != e {
		t.Fatalf("got %d benchmarks; want %d", g, e)
	}
	if g, e := lookup(rs, "PredictThroughProxy/serial", "p50-ns"), 100000.0; g != e {
		t.Errorf("got median p50 %v; want %v", g, e)
	}
	md := modelsMarkdown(rs)
	for _, s := range []string{
		"| HTTP → proxy → plugin | 100.0 | 310.0 | 92.0 | 290.0 |",
		"| clients=8 | 20000 | 80.0 | 400.0 |",
		"(20 kills)",
		"| 92.0 µs | **met** |",
		"| 250.0 ms (p50 120.0) | **met** |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("models markdown lacks %q:\n%s", s, md)
		}
	}
	if !strings.Contains(gobenchMarkdown(rs), "| ModelRespawn | 1 | 150 ms/op, 120 p50-ms") {
		t.Errorf("generic table:\n%s", gobenchMarkdown(rs))
	}
}

func TestSplice(t *testing.T) {
	doc := "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nb\n"
	got, err := splice(doc, "x", "new")
	if err != nil {
		t.Fatal(err)
	}
	if e := "a\n<!-- bench:x -->\nnew\n<!-- /bench:x -->\nb\n"; got != e {
		t.Errorf("got %q; want %q", got, e)
	}
	if _, err := splice(doc, "y", "new"); err == nil {
		t.Error("got no error for missing markers")
	}
}

const scaleOut = `BenchmarkScaleConfigLoad/providers=1000-2   3  269268776 ns/op  42735882 B/op  263324 allocs/op
BenchmarkScaleStartup/providers=1000-2      3  360551783 ns/op  53955360 B/op  308049 allocs/op
BenchmarkScaleHeap/providers=1000-2         3  154276714 ns/op  11800 heap-B/provider  53954290 B/op  308039 allocs/op
BenchmarkScaleHealthDocument/providers=1000-2  3  1892892 ns/op  679350 doc-bytes  1831898 B/op  6320 allocs/op
BenchmarkScaleReload/providers=1000/unchanged-2  3  3149861 ns/op  830794 B/op  2041 allocs/op
BenchmarkScaleReload/providers=1000/all-changed-2  3  8083217 ns/op  3841968 B/op  21051 allocs/op
`

func TestScaleMarkdown(t *testing.T) {
	rs, err := parseGobench(strings.NewReader(scaleOut))
	if err != nil {
		t.Fatal(err)
	}
	md := scaleMarkdown(rs)
	if want := "| 1000 | 269.3 | 360.6 | 11800 | 1.9 | 663 | 3.1 | 8.1 |"; !strings.Contains(md, want) {
		t.Errorf("scale markdown lacks %q:\n%s", want, md)
	}
	if g := fmtNsOp(1892892); g != "1.89 ms/op" {
		t.Errorf("got %q; want 1.89 ms/op", g)
	}
}

func TestLeastDisturbedTryCounts(t *testing.T) {
	runs := []run{
		{Conns: 32, Round: 1, Target: "goproxy", RPS: 300, Ext: 15, Kept: false},
		{Conns: 32, Round: 1, Target: "goproxy", RPS: 100, Ext: 40, Kept: true}, // redone, but more disturbed
		{Conns: 32, Round: 1, Target: "nginx", RPS: 500, Ext: 30, Kept: false},
		{Conns: 32, Round: 1, Target: "nginx", RPS: 600, Ext: 2, Kept: true},
		{Conns: 32, Round: 2, Target: "nginx", RPS: 700, Ext: math.NaN(), Kept: false},
		{Conns: 32, Round: 2, Target: "nginx", RPS: 800, Ext: 9, Kept: true},
	}
	got := leastDisturbed(runs)
	var rps []float64
	for _, r := range got {
		rps = append(rps, r.RPS)
	}
	if g, e := fmt.Sprint(rps), "[300 600 800]"; g != e {
		t.Errorf("got the tries with req/s %s; want %s", g, e)
	}
}
