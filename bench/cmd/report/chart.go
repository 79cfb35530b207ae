package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// colors of the targets in the chart; healproxy stands out.
var colors = map[string]string{
	"direct":      "#9e9e9e",
	"goproxy":     "#64b5f6",
	"healproxy":   "#e53935",
	"healproxy-b": "#f48fb1",
	"nginx":       "#43a047",
	"haproxy":     "#8e24aa",
	"caddy":       "#fb8c00",
	"traefik":     "#00897b",
}

// niceStep is a round axis step (1, 2 or 5 × 10^k) near max/ticks.
func niceStep(max float64, ticks int) float64 {
	if max <= 0 || math.IsNaN(max) {
		return 1
	}
	raw := max / float64(ticks)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// shortNum writes 12345 as "12.3k".
func shortNum(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case x == 0:
		return "0"
	case x >= 10000:
		return fmt.Sprintf("%.0fk", x/1000)
	case x >= 1000:
		return fmt.Sprintf("%.1fk", x/1000)
	case x >= 100 || x == math.Trunc(x):
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

// chartSVG draws two grouped bar charts, one group per connection count
// and one bar per target: median req/s on top, CPU µs per request below.
func chartSVG(rows []row, title string) string {
	const (
		width  = 960
		panelH = 300
		top    = 70
		left   = 70
		right  = 20
		gap    = 70
	)
	var targets []string
	for _, r := range rows {
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
	}
	conns := connCounts(rows)
	height := top + 2*panelH + gap + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// legend
	x := left
	for _, t := range targets {
		fmt.Fprintf(&b, `<rect x="%d" y="34" width="12" height="12" fill="%s"/><text x="%d" y="45">%s</text>`+"\n", x, color(t), x+16, html.EscapeString(t))
		x += 24 + 8*len(t) + 14
	}
	panel := func(y0 int, label string, val func(row) float64) {
		max := 0.0
		for _, r := range rows {
			if v := val(r); !math.IsNaN(v) && v > max {
				max = v
			}
		}
		step := niceStep(max, 5)
		axisMax := math.Ceil(max/step) * step
		if axisMax == 0 {
			axisMax = step
		}
		plotW := width - left - right
		plotH := panelH - 40
		y := func(v float64) float64 { return float64(y0+plotH) - v/axisMax*float64(plotH) }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", left, y0-8, html.EscapeString(label))
		for v := 0.0; v <= axisMax+step/2; v += step {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
				left, left+plotW, y(v), y(v), left-6, y(v)+4, shortNum(v))
		}
		groupW := float64(plotW) / float64(max1(len(conns)))
		barW := groupW * 0.8 / float64(max1(len(targets)))
		for gi, c := range conns {
			gx := float64(left) + float64(gi)*groupW + groupW*0.1
			for ti, t := range targets {
				r := find(rows, c, t)
				if r == nil || math.IsNaN(val(*r)) {
					continue
				}
				v := val(*r)
				bx := gx + float64(ti)*barW
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %d conns: %s</title></rect>`+"\n",
					bx, y(v), barW-2, float64(y0+plotH)-y(v), color(t), html.EscapeString(t), c, shortNum(v))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", bx+barW/2-1, y(v)-4, shortNum(v))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d connections</text>`+"\n", gx+groupW*0.4, y0+plotH+18, c)
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, left+plotW, y0+plotH, y0+plotH)
	}
	panel(top+20, "requests/s (median; higher is better)", func(r row) float64 { return r.RPS })
	panel(top+20+panelH+gap, "CPU µs per request of the target's processes (median; lower is better; direct = the upstream alone)", func(r row) float64 { return r.CPU })
	b.WriteString("</svg>\n")
	return b.String()
}

func max1(n int) int { return max(n, 1) }

func color(t string) string {
	if c, ok := colors[t]; ok {
		return c
	}
	return "#607d8b"
}
