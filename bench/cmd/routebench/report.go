package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// targetFactor is the target: the client p99 with hedging or
// ejection under this factor times the healthy upstreams' p99.
const targetFactor = 2.0

// summaryRow is a scenario's medians over its measured rounds.
type summaryRow struct {
	Scenario string
	Settings string
	Status   string // statusOK when at least one round was measured
	Detail   string
	Rounds   int // rounds measured

	P50, P90, P99, P999, RPS float64
	Up                       [3]float64 // requests to fast1, fast2, slow
	SlowAnswers              float64    // of slow's, delayed by -slow-delay
	Cancelled                float64    // upstream requests whose client went away (hedges' losers)
	ExtraPct                 float64
	Errors                   int  // over all rounds
	TimedOut                 bool // a round was cut by -max-time
	SlowStatus, SlowWhy      string
	LoadMin, LoadMax         float64 // the 1-minute load average at the end of its rounds
	VsHealthy                float64 // P99 / the healthy scenario's P99; NaN without it
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize gives one row per scenario, in the order of scs.
func summarize(scs []scenario, rounds []roundResult) []summaryRow {
	var rows []summaryRow
	healthyP99 := math.NaN()
	for _, sc := range scs {
		row := summaryRow{Scenario: sc.Name, Settings: oneLine(sc.Settings), VsHealthy: math.NaN(), LoadMin: math.NaN(), LoadMax: math.NaN()}
		var p50, p90, p99, p999, rps, slow, canc, extra []float64
		var up [3][]float64
		for _, r := range rounds {
			if r.Scenario != sc.Name {
				continue
			}
			if r.Status != statusOK {
				if row.Status == "" {
					row.Status, row.Detail = r.Status, r.Detail
				}
				continue
			}
			row.Rounds++
			p50, p90, p99, p999 = append(p50, r.P50), append(p90, r.P90), append(p99, r.P99), append(p999, r.P999)
			rps = append(rps, r.RPS)
			var c int64
			for i := range up {
				up[i] = append(up[i], float64(r.Up[i].Requests))
				c += r.Up[i].Cancelled
			}
			slow, canc = append(slow, float64(r.Up[2].Slow)), append(canc, float64(c))
			extra = append(extra, r.ExtraPct)
			row.Errors += r.Errors
			row.TimedOut = row.TimedOut || r.TimedOut
			row.SlowStatus, row.SlowWhy = r.SlowStatus, r.SlowWhy
			if !math.IsNaN(r.Load1) {
				if math.IsNaN(row.LoadMin) || r.Load1 < row.LoadMin {
					row.LoadMin = r.Load1
				}
				if math.IsNaN(row.LoadMax) || r.Load1 > row.LoadMax {
					row.LoadMax = r.Load1
				}
			}
		}
		if row.Rounds > 0 {
			row.Status, row.Detail = statusOK, ""
			row.P50, row.P90, row.P99, row.P999 = median(p50), median(p90), median(p99), median(p999)
			row.RPS, row.SlowAnswers, row.Cancelled, row.ExtraPct = median(rps), median(slow), median(canc), median(extra)
			for i := range up {
				row.Up[i] = median(up[i])
			}
			if sc.Healthy {
				healthyP99 = row.P99
			}
		}
		rows = append(rows, row)
	}
	for i := range rows {
		if rows[i].Status == statusOK && healthyP99 > 0 {
			rows[i].VsHealthy = rows[i].P99 / healthyP99
		}
	}
	return rows
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func num(x float64, prec int) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

// markdown is the report: the load, a table of the medians, the verdict
// on the target and hedging's cost.
func markdown(o options, env string, rows []summaryRow) string {
	var b strings.Builder
	b.WriteString("| scenario | p50 ms | p90 ms | p99 ms | p99.9 ms | p99 / healthy p99 | req/s | upstream requests fast1 / fast2 / slow | slow answers | extra upstream requests | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.Status != statusOK {
			fmt.Fprintf(&b, "| %s | %s |%s\n", r.Scenario, r.Status, strings.Repeat(" — |", 9))
			continue
		}
		name := r.Scenario
		if r.TimedOut {
			name += " (cut by -max-time)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s | %s %% | %d |\n",
			name, num(r.P50, 1), num(r.P90, 1), num(r.P99, 1), num(r.P999, 1), num(r.VsHealthy, 2), num(r.RPS, 0),
			num(r.Up[0], 0), num(r.Up[1], 0), num(r.Up[2], 0), num(r.SlowAnswers, 0), num(r.ExtraPct, 1), r.Errors)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Medians of %d round(s); extra upstream requests = upstream requests − client requests, in %% of client requests (what hedges and retries cost); slow answers = the slow upstream's requests made to wait %v (a hedge's loser is cancelled early); errors over all rounds.",
		o.Rounds, o.SlowDelay)
	lo, hi := math.NaN(), math.NaN()
	for _, r := range rows {
		if !math.IsNaN(r.LoadMin) && (math.IsNaN(lo) || r.LoadMin < lo) {
			lo = r.LoadMin
		}
		if !math.IsNaN(r.LoadMax) && (math.IsNaN(hi) || r.LoadMax > hi) {
			hi = r.LoadMax
		}
	}
	if !math.IsNaN(lo) {
		fmt.Fprintf(&b, " The machine's 1-minute load average at the end of the runs: %s to %s.", num(lo, 1), num(hi, 1))
	}
	b.WriteString("\n\n")

	var healthy *summaryRow
	for i := range rows {
		if rows[i].Scenario == "healthy" && rows[i].Status == statusOK {
			healthy = &rows[i]
		}
	}
	if healthy != nil {
		limit := targetFactor * healthy.P99
		var verdicts []string
		for _, r := range rows {
			if !strings.HasPrefix(r.Scenario, "hedge") && r.Scenario != "outlier" {
				continue
			}
			if r.Status != statusOK {
				verdicts = append(verdicts, fmt.Sprintf("%s: %s", r.Scenario, r.Status))
				continue
			}
			v := "**not met**"
			if r.P99 < limit {
				v = "**met**"
			}
			verdicts = append(verdicts, fmt.Sprintf("%s %s ms, %s", r.Scenario, num(r.P99, 1), v))
		}
		if len(verdicts) > 0 {
			fmt.Fprintf(&b, "Target: p99 with hedging or ejection under %g × the healthy upstreams' p99 (%s ms, so under %s ms): %s.\n\n",
				targetFactor, num(healthy.P99, 1), num(limit, 1), strings.Join(verdicts, "; "))
		}
	}
	var costs []string
	for _, r := range rows {
		if strings.HasPrefix(r.Scenario, "hedge") && r.Status == statusOK {
			costs = append(costs, fmt.Sprintf("%s %s %% (%s cancelled)", r.Scenario, num(r.ExtraPct, 1), num(r.Cancelled, 0)))
		}
	}
	if len(costs) > 0 {
		fmt.Fprintf(&b, "Hedging's cost in extra upstream requests, as %% of client requests: %s.\n\n", strings.Join(costs, "; "))
	}
	var ends []string
	for _, r := range rows {
		if r.Status == statusOK && r.SlowStatus != "" && r.SlowStatus != "healthy" {
			e := fmt.Sprintf("%s: %s", r.Scenario, r.SlowStatus)
			if r.SlowWhy != "" {
				e += " (" + r.SlowWhy + ")"
			}
			ends = append(ends, e)
		}
	}
	if len(ends) > 0 {
		fmt.Fprintf(&b, "The slow upstream's health entry at the end of the last round: %s.\n\n", strings.Join(ends, "; "))
	}

	if notes := noEffect(rows); len(notes) > 0 {
		fmt.Fprintf(&b, "**No effect seen** (a build that reads a setting it does not act on yet gives round robin's figures): %s.\n\n", strings.Join(notes, "; "))
	}

	b.WriteString("Scenarios (provider `route`, `timeout = \"5s\"`, everything else default):\n\n")
	for _, r := range rows {
		s := r.Settings
		switch {
		case r.Scenario == "healthy":
			s = "fast1 and fast2 only"
		case s == "":
			s = "fast1, fast2 and slow; default settings"
		default:
			s = "fast1, fast2 and slow; `" + s + "`"
		}
		fmt.Fprintf(&b, "- %s: %s", r.Scenario, s)
		if r.Status != statusOK {
			fmt.Fprintf(&b, " — %s: %s", r.Status, r.Detail)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n```\n" + env + "```\n")
	return b.String()
}

func rawTSV(rounds []roundResult) string {
	var b strings.Builder
	b.WriteString("round\tscenario\tstatus\trequests\terrors\telapsed_s\trps\tp50_ms\tp90_ms\tp99_ms\tp999_ms\t" +
		"up_fast1\tup_fast2\tup_slow\tslow_answers\tcancelled\textra\textra_pct\ttimed_out\tslow_status\tslow_reason\tload1\tdetail\n")
	for _, r := range rounds {
		canc := r.Up[0].Cancelled + r.Up[1].Cancelled + r.Up[2].Cancelled
		load := "—"
		if r.Status == statusOK {
			load = num(r.Load1, 2)
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\t%d\t%d\t%.3f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%t\t%s\t%s\t%s\t%s\n",
			r.Round, r.Scenario, r.Status, r.Requests, r.Errors, r.ElapsedS, r.RPS, r.P50, r.P90, r.P99, r.P999,
			r.Up[0].Requests, r.Up[1].Requests, r.Up[2].Requests, r.Up[2].Slow, canc, r.Extra, r.ExtraPct, r.TimedOut,
			tsvField(r.SlowStatus), tsvField(r.SlowWhy), load, tsvField(r.Detail))
	}
	return b.String()
}

func summaryTSV(rows []summaryRow) string {
	var b strings.Builder
	b.WriteString("scenario\tstatus\trounds\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tp99_vs_healthy\trps\tup_fast1\tup_fast2\tup_slow\tslow_answers\tcancelled\textra_pct\terrors\ttimed_out\tsettings\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%t\t%s\n",
			r.Scenario, r.Status, r.Rounds, num(r.P50, 3), num(r.P90, 3), num(r.P99, 3), num(r.P999, 3), num(r.VsHealthy, 3),
			num(r.RPS, 1), num(r.Up[0], 0), num(r.Up[1], 0), num(r.Up[2], 0), num(r.SlowAnswers, 0), num(r.Cancelled, 0),
			num(r.ExtraPct, 2), r.Errors, r.TimedOut, tsvField(r.Settings))
	}
	return b.String()
}

func tsvField(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// slowShare is the slow upstream's share of r's upstream requests.
func slowShare(r summaryRow) float64 {
	t := r.Up[0] + r.Up[1] + r.Up[2]
	if t == 0 {
		return math.NaN()
	}
	return r.Up[2] / t
}

// noEffect names the scenarios whose setting left no trace in the
// upstreams' counts: a hedge scenario without a single extra or
// cancelled upstream request, a balancing or ejection scenario whose slow
// upstream still got its round-robin third (at least 30 %) of the
// requests. That is what a build shows which parses a setting but does
// not implement it.
func noEffect(rows []summaryRow) []string {
	var notes []string
	for _, r := range rows {
		if r.Status != statusOK {
			continue
		}
		switch {
		case strings.HasPrefix(r.Scenario, "hedge"):
			if r.ExtraPct <= 0 && r.Cancelled == 0 {
				notes = append(notes, r.Scenario+": not one hedged request (no extra or cancelled upstream request)")
			}
		case r.Scenario == "least_latency" || r.Scenario == "outlier":
			if sh := slowShare(r); sh >= 0.30 {
				notes = append(notes, fmt.Sprintf("%s: the slow upstream still got %.1f %% of the requests", r.Scenario, 100*sh))
			}
		}
	}
	return notes
}
