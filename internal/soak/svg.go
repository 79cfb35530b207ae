package soak

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Chart draws the samples as an SVG: one panel per resource (RSS in MiB,
// goroutines, open fds, plugin processes) over time, with the warm-up
// shaded and plugin kills marked as red ticks. Standard library only.
func Chart(samples []Sample, warmup time.Duration, kills []time.Duration) string {
	const (
		width  = 860
		left   = 70
		right  = 20
		panelH = 130
		gap    = 40
		top    = 40
	)
	panels := []struct {
		title string
		color string
		get   func(Sample) float64
	}{
		{"RSS (MiB)", "#1f77b4", func(s Sample) float64 { return float64(s.RSSKiB) / 1024 }},
		{"goroutines", "#2ca02c", func(s Sample) float64 { return float64(s.Goroutines) }},
		{"open fds", "#9467bd", func(s Sample) float64 { return float64(s.FDs) }},
		{"plugin processes", "#8c564b", func(s Sample) float64 { return float64(s.Children) }},
	}
	height := top + len(panels)*(panelH+gap) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	var end time.Duration
	var requests, errs int64
	if n := len(samples); n > 0 {
		end, requests, errs = samples[n-1].T, samples[n-1].Requests, samples[n-1].Errors
	}
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">healproxy soak: %s, %d requests, %d client-visible errors, %d plugin kills</text>`+"\n",
		left, end.Round(time.Second), requests, errs, len(kills))
	end = max(end, time.Second)
	plotW := float64(width - left - right)
	x := func(t time.Duration) float64 { return float64(left) + plotW*t.Seconds()/end.Seconds() }
	for i, p := range panels {
		y0 := float64(top + i*(panelH+gap) + 15) // panel top
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range samples {
			v := p.get(s)
			lo, hi = min(lo, v), max(hi, v)
		}
		if len(samples) == 0 {
			lo, hi = 0, 1
		}
		lo = 0 // from zero: growth looks as large as it is
		if hi <= lo {
			hi = lo + 1
		}
		hi *= 1.1
		y := func(v float64) float64 { return y0 + panelH - panelH*(v-lo)/(hi-lo) }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-4, p.title)
		if warmup > 0 {
			fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.1f" height="%d" fill="#eeeeee"/>`+"\n",
				left, y0, x(min(warmup, end))-float64(left), panelH)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, panelH)
		for _, v := range []float64{lo, (lo + hi) / 2, hi} {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, num(v))
		}
		for _, k := range kills {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#d62728" stroke-width="1"/>`+"\n",
				x(k), y0+panelH-8, x(k), y0+panelH)
		}
		var pts strings.Builder
		for _, s := range samples {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.T), y(p.get(s)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", p.color, strings.TrimSpace(pts.String()))
	}
	// time axis under the last panel
	yAxis := top + len(panels)*(panelH+gap) - gap + 15 + 14
	for i := 0; i <= 4; i++ {
		t := end * time.Duration(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), yAxis, t.Round(time.Second))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">grey: warm-up (not judged); red ticks: plugin SIGKILLs; one sample a second</text>`+"\n", left, yAxis+20)
	b.WriteString("</svg>\n")
	return b.String()
}

// num formats an axis label.
func num(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
