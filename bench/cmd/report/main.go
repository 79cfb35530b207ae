// Command report turns the raw output of bench/run.sh into the tables,
// target verdicts and chart of BENCHMARKS.md.
//
//	report proxies -dir RESULTS [-benchmarks BENCHMARKS.md] [-svg docs/bench.svg]
//	report gobench -in bench.txt -kind models|scale -out FILE.md [-benchmarks BENCHMARKS.md]
//	report splice -benchmarks BENCHMARKS.md -section NAME -md FILE.md
//
// proxies reads RESULTS/raw.tsv (one line per wrk run) and RESULTS/env.txt,
// and writes RESULTS/summary.tsv, summary.md and chart.svg; it prints
// summary.md. gobench turns `go test -bench` output into a markdown table
// (plus, for -kind models, the plugin-hop overhead and its targets). With
// -benchmarks, the section between "<!-- bench:NAME -->" and
// "<!-- /bench:NAME -->" of that file is replaced by the new table, so a
// rerun rewrites BENCHMARKS.md's figures in place; -svg copies the chart.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	if err := runCmd(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func runCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: report proxies|gobench|splice [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "results folder (proxies)")
	in := fs.String("in", "", "go test -bench output (gobench)")
	kind := fs.String("kind", "", "models or scale (gobench): section name and derived figures")
	out := fs.String("out", "", "markdown file to write (gobench)")
	bm := fs.String("benchmarks", "", "BENCHMARKS.md whose marked section to rewrite")
	svg := fs.String("svg", "", "copy the chart here (proxies)")
	section := fs.String("section", "", "section name (splice)")
	md := fs.String("md", "", "markdown to splice in (splice)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "proxies":
		if *dir == "" {
			return fmt.Errorf("proxies: -dir is required")
		}
		return runProxies(*dir, *bm, *svg, stdout)
	case "gobench":
		if *in == "" || *out == "" {
			return fmt.Errorf("gobench: -in and -out are required")
		}
		return runGobench(*in, *kind, *out, *bm, stdout)
	case "splice":
		if *bm == "" || *section == "" || *md == "" {
			return fmt.Errorf("splice: -benchmarks, -section and -md are required")
		}
		text, err := os.ReadFile(*md)
		if err != nil {
			return err
		}
		return spliceFile(*bm, *section, string(text))
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func runProxies(dir, bm, svg string, stdout io.Writer) error {
	f, err := os.Open(filepath.Join(dir, "raw.tsv"))
	if err != nil {
		return err
	}
	runs, err := parseRaw(f)
	f.Close()
	if err != nil {
		return err
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env.txt")) // optional
	rows := summarize(runs)
	if err := os.WriteFile(filepath.Join(dir, "summary.tsv"), []byte(summaryTSV(rows)), 0o644); err != nil {
		return err
	}
	md := proxiesMarkdown(rows, string(env))
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md), 0o644); err != nil {
		return err
	}
	chart := chartSVG(rows, chartTitle(string(env)))
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(chart), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	if svg != "" {
		if err := os.WriteFile(svg, []byte(chart), 0o644); err != nil {
			return err
		}
	}
	if bm != "" {
		return spliceFile(bm, "proxies", md)
	}
	return nil
}

func runGobench(in, kind, out, bm string, stdout io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	results, err := parseGobench(f)
	f.Close()
	if err != nil {
		return err
	}
	md := gobenchMarkdown(results)
	switch kind {
	case "models":
		md = modelsMarkdown(results) + "\n" + md
	case "scale":
		md = scaleMarkdown(results) + "\n" + md
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	if bm != "" && kind != "" {
		return spliceFile(bm, kind+"-gobench", md)
	}
	return nil
}
