// Command healbench measures what a self-heal of a live model costs its
// callers: calls failed and latency while the plugin is replaced, warm
// (the supervisor's default) and cold (the old process stopped first, as
// before warm replacement), in the same run, on the same machine.
//
//	go run ./bench/cmd/healbench [-callers 4] [-heals 3] [-interval 1ms] [-gap 1s]
//
// It runs the built-in sentiment model as a real plugin subprocess (this
// binary re-executed as `healbench plugin sentiment`) through
// supervisor.Model.Predict, the call the proxy makes, with callers
// concurrent callers that each wait interval between calls; it heals the
// model heals times, gap apart, and reports per mode: calls made during
// the heals and failed, the p50/p99 of successful calls during the heals
// and in steady state, and the mean switch time. A heal's window runs from
// the start of its Reinit until it returns; a call belongs to the window
// it started in. Output is a Markdown table (BENCHMARKS.md, "Self-heal
// under load").
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/supervisor"
)

func main() {
	// Re-executed as the plugin: nothing may be written to stdout first.
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := plugins.ServeBuiltin(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	callers := flag.Int("callers", 4, "concurrent callers")
	heals := flag.Int("heals", 3, "self-heals per mode")
	interval := flag.Duration("interval", time.Millisecond, "pause of each caller between calls")
	gap := flag.Duration("gap", time.Second, "steady load before, between and after heals")
	timeout := flag.Duration("timeout", 2*time.Second, "the model's per-call timeout")
	flag.Parse()
	if *callers < 1 || *callers > 256 || *heals < 1 || *heals > 100 || *gap <= 0 || *gap > time.Minute {
		fmt.Fprintln(os.Stderr, "healbench: -callers 1..256, -heals 1..100, -gap up to 1m")
		os.Exit(2)
	}
	fmt.Printf("%d callers, %s between calls, %d heals %s apart, timeout %s, GOMAXPROCS %d\n\n",
		*callers, *interval, *heals, *gap, *timeout, runtime.GOMAXPROCS(0))
	fmt.Println("| reinit | calls during heals | failed | failed % | p50 during heals | p99 during heals | p99 steady | switch (mean) | drain (mean) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, cold := range []bool{false, true} {
		r, err := run(cold, *callers, *heals, *interval, *gap, *timeout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "healbench:", err)
			os.Exit(1)
		}
		fmt.Println(r)
	}
}

type call struct {
	start time.Time
	took  time.Duration
	ok    bool
}

type window struct{ from, to time.Time }

// maxCalls bounds the calls one caller records.
const maxCalls = 2_000_000

func run(cold bool, callers, heals int, interval, gap, timeout time.Duration) (string, error) {
	mc := config.Model{Key: "sentiment", Name: "sentiment", Plugin: "sentiment", Timeout: timeout,
		Health: config.Health{ReinitCooldown: 0}}
	// Calls go straight to Predict, not through the breaker: every failure
	// counts, none is refused.
	m := supervisor.New(mc, breaker.Settings{ErrorThreshold: 1_000_000, Cooldown: time.Second, RecoveryCount: 1},
		supervisor.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ColdOnly: cold})
	defer m.Close()
	m.Start()
	deadline := time.Now().Add(30 * time.Second)
	for m.Process() == nil || m.Health.Status() != breaker.Healthy {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the plugin did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop := make(chan struct{})
	logs := make([][]call, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for len(logs[i]) < maxCalls {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				start := time.Now()
				_, err := m.Predict(ctx, []string{"btc to the moon, but fees are brutal"})
				logs[i] = append(logs[i], call{start, time.Since(start), err == nil})
				cancel()
				time.Sleep(interval)
			}
		})
	}
	var wins []window
	var switches, drains time.Duration
	time.Sleep(gap)
	for range heals {
		w := window{from: time.Now()}
		res := m.Reinit(context.Background(), supervisor.WhySelfHeal)
		w.to = time.Now()
		if res.Status != supervisor.StatusSuccess {
			close(stop)
			wg.Wait()
			return "", fmt.Errorf("heal: %s", res.Message)
		}
		wins = append(wins, w)
		switches += res.Switch
		drains += res.Drain
		time.Sleep(gap)
	}
	close(stop)
	wg.Wait()

	var during, steady []time.Duration
	calls, failed := 0, 0
	for _, l := range logs {
		for _, c := range l {
			in := slices.ContainsFunc(wins, func(w window) bool { return !c.start.Before(w.from) && c.start.Before(w.to) })
			switch {
			case in:
				calls++
				if !c.ok {
					failed++
					continue
				}
				during = append(during, c.took)
			case c.ok:
				steady = append(steady, c.took)
			}
		}
	}
	mode := supervisor.ModeWarm
	if cold {
		mode = supervisor.ModeCold
	}
	pct := 0.0
	if calls > 0 {
		pct = 100 * float64(failed) / float64(calls)
	}
	return fmt.Sprintf("| %s | %d | %d | %.1f %% | %s | %s | %s | %s | %s |", mode, calls, failed, pct,
		ms(quantile(during, 0.50)), ms(quantile(during, 0.99)), ms(quantile(steady, 0.99)),
		ms(switches/time.Duration(heals)), ms(drains/time.Duration(heals))), nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
