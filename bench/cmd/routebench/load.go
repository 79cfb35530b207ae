package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what one bounded load run saw from the client's side.
type loadResult struct {
	Latencies []time.Duration // every request's, sorted; errors included
	Errors    int             // transport errors and answers other than 200
	Elapsed   time.Duration
	TimedOut  bool // the time bound stopped it before n requests
}

// drive sends n GET requests to url from at most conc concurrent
// clients, each waiting for its answer (body read) before its next.
//
// With rate 0 the load is closed: every client sends its next request
// as soon as it has its answer. With rate > 0 it is open: request i is
// due at start + i/rate whatever the answers, and its latency counts
// from then, so that time spent waiting for a free client counts too
// (no coordinated omission).
//
// When ctx ends (the time bound) no new request is sent; those under way
// finish (the client's timeout bounds them), so that none reaches an
// upstream after drive returns. It never sends more than n.
func drive(ctx context.Context, client *http.Client, url string, n, conc int, rate float64) loadResult {
	var res loadResult
	lats := make([][]time.Duration, conc)
	errs := make([]int, conc)
	start := time.Now()
	// due hands out the requests: each one's due time, or false when
	// there is none left (n sent or the time bound passed).
	var due func() (time.Time, bool)
	if rate <= 0 {
		var next atomic.Int64
		due = func() (time.Time, bool) {
			return time.Now(), ctx.Err() == nil && next.Add(1) <= int64(n)
		}
	} else {
		sched := make(chan time.Time, n)
		go func() {
			defer close(sched)
			interval := time.Duration(float64(time.Second) / rate)
			t := time.NewTimer(0)
			defer t.Stop()
			for i := range n {
				at := start.Add(time.Duration(i) * interval)
				t.Reset(time.Until(at))
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				sched <- at
			}
		}()
		due = func() (time.Time, bool) {
			at, ok := <-sched
			return at, ok
		}
	}
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			own := make([]time.Duration, 0, n/conc+1)
			for {
				t0, ok := due()
				if !ok {
					break
				}
				ok = get(client, url)
				own = append(own, time.Since(t0))
				if !ok {
					errs[w]++
				}
			}
			lats[w] = own
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for w := range conc {
		res.Latencies = append(res.Latencies, lats[w]...)
		res.Errors += errs[w]
	}
	slices.Sort(res.Latencies)
	res.TimedOut = len(res.Latencies) < n
	return res
}

// get sends one request and reads its answer; true for a 200 read whole.
func get(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// percentileMs is the q-quantile (nearest rank) of sorted latencies, in ms;
// NaN when there are none.
func percentileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[min(max(i, 0), len(sorted)-1)]) / 1e6
}

// newClient is the load's HTTP client: keep-alive, a connection per
// concurrent client, no proxy from the environment, a bound per request.
func newClient(conc int) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conc * 2,
			MaxIdleConnsPerHost: conc * 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}
