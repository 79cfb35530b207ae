// Command flaky-upstream is a small fake market-data API that fails on a
// schedule, so you can watch healproxy notice, route around and recover
// from it. Run two of them and healproxy with examples/flaky.hcl:
//
//	go run ./examples/flaky-upstream -listen 127.0.0.1:9101 -name steady -ok 1h
//	go run ./examples/flaky-upstream -listen 127.0.0.1:9102 -name flaky -ok 20s -fail 20s
//	go run ./cmd/healproxy -config examples/flaky.hcl
//
// The schedule repeats: -ok of good answers, then -fail of failures of the
// chosen -mode (500 errors, 429 rate limits, slow answers, or dropped
// connections).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "address to listen on")
	name := flag.String("name", "flaky", "name shown in answers and logs")
	okFor := flag.Duration("ok", 20*time.Second, "how long each healthy phase lasts")
	failFor := flag.Duration("fail", 20*time.Second, "how long each failing phase lasts (0: never fail)")
	mode := flag.String("mode", "500", "how to fail: 500, 429, slow, or drop")
	slow := flag.Duration("slow", 15*time.Second, "delay of the slow mode")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("upstream", *name)

	switch *mode {
	case "500", "429", "slow", "drop":
	default:
		fmt.Fprintf(os.Stderr, "flaky-upstream: unknown -mode %q (want 500, 429, slow or drop)\n", *mode)
		os.Exit(2)
	}
	start := time.Now()
	failing := func() bool {
		if *failFor <= 0 {
			return false
		}
		period := *okFor + *failFor
		return time.Since(start)%period >= *okFor
	}

	prices := map[string]float64{"BTC": 97000, "ETH": 3400, "SOL": 190}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if failing() {
			switch *mode {
			case "500":
				http.Error(w, `{"error":"internal error (scheduled)"}`, http.StatusInternalServerError)
			case "429":
				w.Header().Set("Retry-After", "10")
				http.Error(w, `{"error":"rate limited (scheduled)"}`, http.StatusTooManyRequests)
			case "slow":
				select {
				case <-time.After(*slow):
				case <-r.Context().Done():
					return
				}
				w.Write([]byte(`{"late":true}`))
			case "drop":
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				http.Error(w, "drop unsupported", http.StatusInternalServerError)
			}
			return
		}
		sym := r.URL.Query().Get("symbol")
		if sym == "" {
			sym = "BTC"
		}
		p, ok := prices[sym]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"unknown symbol %s"}`, strconv.Quote(sym))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"upstream": *name, "symbol": sym, "path": r.URL.Path,
			"price": p * (1 + (rand.Float64()-0.5)/100), "time": time.Now().UTC().Format(time.RFC3339),
		})
	})
	log.Info("flaky upstream listening", "addr", *listen, "ok", *okFor, "fail", *failFor, "mode", *mode)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
