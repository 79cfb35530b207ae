package proxy_test

// Benchmarks of the model path (issue 3, "Performance"):
//
//	go test -run '^$' -bench 'Predict|ModelRespawn' -benchtime 20x ./proxy/   # respawn: 20 kills
//	go test -run '^$' -bench 'Predict' ./proxy/
//
// The overhead of the plugin hop is PredictThroughProxy (HTTP client →
// proxy → gRPC → plugin) minus PredictInProcess (sentiment.Analyze);
// PredictPluginHop is the gRPC hop alone. Serial variants report p50-ns
// and p99-ns of single calls.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/plugins/sentiment"
)

const benchText = "BTC just broke out to a new all time high, bulls are back 🚀"

// reportPercentiles reports the p50 and p99 of lat, and its max when
// withMax, in unit ("ns" or "ms").
func reportPercentiles(b *testing.B, lat []time.Duration, unit string, withMax bool) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	scale := 1.0
	if unit == "ms" {
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
