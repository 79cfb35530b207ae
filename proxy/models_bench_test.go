package proxy_test

// Benchmarks of the model path (BENCHMARKS.md, "Model path"):
//
//	go test -run '^$' -bench 'Predict' -benchtime 2s ./proxy/
//	go test -run '^$' -bench 'ModelRespawn' -benchtime 20x ./proxy/   # 20 kills
//
// (bench/run.sh models runs both and turns them into BENCHMARKS.md's
// table.) The overhead of the plugin hop is PredictThroughProxy (HTTP
// client → proxy → gRPC → plugin) minus PredictInProcess
// (sentiment.Analyze); PredictPluginHop is the gRPC hop alone. Serial
// variants report p50-ns and p99-ns of single calls; PredictClients
// reports req/s, p50-us and p99-us with 1, 8 and 32 concurrent clients.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/plugins/sentiment"
)

const benchText = "BTC just broke out to a new all time high, bulls are back 🚀"

// reportPercentiles reports the p50 and p99 of lat, and its max when
// withMax, in unit ("ns", "us" or "ms").
func reportPercentiles(b *testing.B, lat []time.Duration, unit string, withMax bool) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	scale := 1.0
	switch unit {
	case "us":
		scale = 1e3
	case "ms":
		scale = 1e6
	}
	at := func(q float64) float64 { return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / scale }
	b.ReportMetric(at(0.50), "p50-"+unit)
	b.ReportMetric(at(0.99), "p99-"+unit)
	if withMax {
		b.ReportMetric(float64(lat[len(lat)-1])/scale, "max-"+unit)
	}
}

// postPredict sends one predict and drains the answer.
func postPredict(c *http.Client, u string, body []byte) error {
	resp, err := c.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "predict: status " + http.StatusText(e.code) }

// BenchmarkPredictThroughProxy is one single-input predict over HTTP,
// through the proxy and the sentiment plugin subprocess.
func BenchmarkPredictThroughProxy(b *testing.B) {
	h := testHealth(false)
	h.ErrorThreshold = 1 << 20 // a slow moment under load must not trip it
	mp := newModelProxy(b, modelConfig(h, sentimentModel("sent", h)))
	mp.waitHealthy("sent", startupWait)
	u := mp.url + "/models/sent/predict"
	body := []byte(`{"inputs": "` + benchText + `"}`)
	if err := postPredict(mp.client, u, body); err != nil {
		b.Fatal(err)
	}

	b.Run("serial", func(b *testing.B) {
		lat := make([]time.Duration, 0, 1<<14)
		for b.Loop() {
			start := time.Now()
			if err := postPredict(mp.client, u, body); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportPercentiles(b, lat, "ns", false)
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := postPredict(mp.client, u, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPredictClients is the sentiment plugin's throughput through the
// proxy's HTTP predict endpoint with a fixed number of concurrent
// clients (keep-alive), each sending single-input predicts back to back.
// It reports req/s and the p50/p99 latency of one predict in µs.
func BenchmarkPredictClients(b *testing.B) {
	h := testHealth(false)
	h.ErrorThreshold = 1 << 20 // a slow moment under load must not trip it
	mp := newModelProxy(b, modelConfig(h, sentimentModel("sent", h)))
	mp.waitHealthy("sent", startupWait)
	u := mp.url + "/models/sent/predict"
	body := []byte(`{"inputs": "` + benchText + `"}`)
	if err := postPredict(mp.client, u, body); err != nil {
		b.Fatal(err)
	}
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var next atomic.Int64
			lats := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := postPredict(mp.client, u, body); err != nil {
							b.Error(err)
							return
						}
						lats[i] = append(lats[i], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			reportPercentiles(b, slices.Concat(lats...), "us", false)
		})
	}
}

// BenchmarkPredictPluginHop is one Predict through the gRPC client of a
// plugin subprocess, without HTTP: the plugin hop alone.
func BenchmarkPredictPluginHop(b *testing.B) {
	p, err := plugins.Start(context.Background(), plugins.Spec{Key: "bench", Command: plugins.BuiltinCommand("sentiment")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Kill)
	m, inputs := p.Model(), []string{benchText}
	ctx := context.Background()

	b.Run("serial", func(b *testing.B) {
		lat := make([]time.Duration, 0, 1<<14)
		for b.Loop() {
			start := time.Now()
			if _, err := m.Predict(ctx, inputs); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportPercentiles(b, lat, "ns", false)
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Predict(ctx, inputs); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPredictInProcess is the same model called directly.
func BenchmarkPredictInProcess(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		lat := make([]time.Duration, 0, 1<<20)
		for b.Loop() {
			start := time.Now()
			if s := sentiment.Analyze(benchText); len(s) != 3 {
				b.Fatal("no scores")
			}
			lat = append(lat, time.Since(start))
		}
		reportPercentiles(b, lat, "ns", false)
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if s := sentiment.Analyze(benchText); len(s) != 3 {
					b.Error("no scores")
					return
				}
			}
		})
	})
}

// BenchmarkModelRespawn is the time from kill -9 of the plugin to a
// healthy, respawned plugin (auto_reinit on, reinit_cooldown 0), as the
// health document shows it, polled every millisecond. One iteration is one
// kill; run it with -benchtime 20x. It reports p50/p99/max in ms and the
// time until the exit is noticed (loaded false), detect-p50-ms.
func BenchmarkModelRespawn(b *testing.B) {
	h := testHealth(true)
	h.ReinitCooldown = 0
	mp := newModelProxy(b, modelConfig(h, sentimentModel("sent", h)))
	pid := mp.waitHealthy("sent", startupWait).pid()

	var total, detect []time.Duration
	for b.Loop() {
		old := pid
		start := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		noticed := time.Duration(0)
		deadline := start.Add(startupWait)
		for {
			e := mp.model("sent")
			if noticed == 0 && (!e.Loaded || e.pid() != old) {
				noticed = time.Since(start)
			}
			if healthy(e) && e.pid() != old {
				pid = e.pid()
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no healthy respawn within %s of kill -9: %s", startupWait, e)
			}
			time.Sleep(time.Millisecond) // poll interval
		}
		total = append(total, time.Since(start))
		detect = append(detect, noticed)
	}
	reportPercentiles(b, total, "ms", true)
	slices.Sort(detect)
	b.ReportMetric(float64(detect[len(detect)/2])/1e6, "detect-p50-ms")
}
