package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/healproxy/healproxy/config"
)

// Benchmarks of many configured providers (BENCHMARKS.md, "Scale: 10,000 providers"): loading the
// config, building the Server, its heap per provider, the health document
// and a reload. Each provider has one upstream on a loopback port nothing
// listens on; nothing is ever sent to it.
//
//	go test -run '^$' -bench Scale -benchmem -benchtime 3x ./proxy/
//
// bench/run.sh scale measures the same on a real process (start-up, RSS).

var scaleCounts = []int{1000, 10000}

// writeScaleConfig writes an HCL config of n providers to a file in dir;
// variant changes every provider's timeout.
func writeScaleConfig(tb testing.TB, dir string, n, variant int) string {
	tb.Helper()
	path := filepath.Join(dir, fmt.Sprintf("scale-%d-%d.hcl", n, variant))
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "listen = \"127.0.0.1:0\"\n\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "provider \"p%05d\" {\n  upstreams = [\"http://127.0.0.1:9/p%05d\"]\n  timeout   = \"%ds\"\n}\n", i, i, 10+variant)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func loadScaleConfig(tb testing.TB, path string) *config.Config {
	tb.Helper()
	cfg, diags := config.Load(path, config.LoadOptions{})
	if cfg == nil || diags.HasErrors() {
		tb.Fatalf("config.Load: %s", config.FormatDiagnostics(diags))
	}
	return cfg
}

func forEachScale(b *testing.B, f func(b *testing.B, n int)) {
	for _, n := range scaleCounts {
		b.Run(fmt.Sprintf("providers=%d", n), func(b *testing.B) { f(b, n) })
	}
}

// BenchmarkScaleConfigLoad is config.Load of a file of n providers.
func BenchmarkScaleConfigLoad(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		path := writeScaleConfig(b, b.TempDir(), n, 0)
		b.ReportAllocs()
		for b.Loop() {
			loadScaleConfig(b, path)
		}
	})
}

// BenchmarkScaleStartup is what start-up does before listening: config.Load,
// then New (Close is outside the timer).
func BenchmarkScaleStartup(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		path := writeScaleConfig(b, b.TempDir(), n, 0)
		b.ReportAllocs()
		for b.Loop() {
			var closeS func()
			newServer(b, loadScaleConfig(b, path), closedBy(&closeS))
			b.StopTimer()
			closeS()
			b.StartTimer()
		}
	})
}

// BenchmarkScaleHeap reports the live heap a Server of n providers holds,
// per provider, after a GC (runtime.MemStats.HeapAlloc with the config
// loaded and the Server built, minus before; the config is part of it).
func BenchmarkScaleHeap(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		path := writeScaleConfig(b, b.TempDir(), n, 0)
		var perProvider float64
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var closeS func()
			s := newServer(b, loadScaleConfig(b, path), closedBy(&closeS))
			runtime.GC()
			runtime.ReadMemStats(&after)
			perProvider = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			runtime.KeepAlive(s)
			b.StopTimer()
			closeS()
			b.StartTimer()
		}
		b.ReportMetric(perProvider, "heap-B/provider")
	})
}

// BenchmarkScaleHealthDocument is one GET /api/diagnostics/health with n
// providers, served in-process to a writer that keeps nothing.
func BenchmarkScaleHealthDocument(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		s := newServer(b, loadScaleConfig(b, writeScaleConfig(b, b.TempDir(), n, 0)))
		req := httptest.NewRequest("GET", "/api/diagnostics/health", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		w := &countingWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.code, w.n = 0, 0
			s.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("got status %d; want 200", w.code)
			}
		}
		b.ReportMetric(float64(w.n), "doc-bytes")
	})
}

// countingWriter is a ResponseWriter that counts the bytes it is given.
type countingWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *countingWriter) Header() http.Header { return w.h }
func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *countingWriter) WriteHeader(code int) { w.code = code }

var _ io.Writer = (*countingWriter)(nil)

// BenchmarkScaleReload is Server.Reload with n providers (the config is
// loaded outside the timer): "unchanged" swaps in an identical config,
// "all-changed" one where every provider's timeout differs, so every
// provider is rebuilt (its upstream keeps its health).
func BenchmarkScaleReload(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		dir := b.TempDir()
		cfgs := []*config.Config{
			loadScaleConfig(b, writeScaleConfig(b, dir, n, 0)),
			loadScaleConfig(b, writeScaleConfig(b, dir, n, 1)),
		}
		s := newServer(b, cfgs[0])
		b.Run("unchanged", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := s.Reload(cfgs[0]); res.Unchanged != n {
					b.Fatalf("got %d unchanged; want %d", res.Unchanged, n)
				}
			}
		})
		b.Run("all-changed", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if res := s.Reload(cfgs[i%2]); len(res.Changed) != n {
					b.Fatalf("got %d changed; want %d", len(res.Changed), n)
				}
			}
			s.Reload(cfgs[0])
		})
	})
}
