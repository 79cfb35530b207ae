package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// upstream is one loopback upstream of the benchmark. Every request
// waits Delay before its answer, except every SlowEvery-th one, which
// waits SlowDelay: a deterministic share of slow answers (1/SlowEvery).
// A request whose client goes away (a hedge's loser, cancelled by the
// proxy) stops waiting and is counted in Cancelled.
type upstream struct {
	Name      string
	Delay     time.Duration
	SlowDelay time.Duration
	SlowEvery int64 // 0: never slow

	URL string // http://127.0.0.1:PORT, set by start

	requests  atomic.Int64 // received
	slow      atomic.Int64 // of them, made to wait SlowDelay
	cancelled atomic.Int64 // of them, whose client went away before the answer
	srv       *http.Server
}

// counts is a snapshot of an upstream's counters.
type counts struct{ Requests, Slow, Cancelled int64 }

func (c counts) sub(d counts) counts {
	return counts{c.Requests - d.Requests, c.Slow - d.Slow, c.Cancelled - d.Cancelled}
}

func (u *upstream) counts() counts {
	return counts{u.requests.Load(), u.slow.Load(), u.cancelled.Load()}
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.requests.Add(1)
	d := u.Delay
	if u.SlowEvery > 0 && n%u.SlowEvery == 0 {
		d = u.SlowDelay
		u.slow.Add(1)
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			u.cancelled.Add(1)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"symbol":"ETH","price":3415.07,"upstream":%q,"n":%d}`+"\n", u.Name, n)
}

// start serves u on a free loopback port.
func (u *upstream) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	u.URL = "http://" + ln.Addr().String()
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go u.srv.Serve(ln)
	return nil
}

// stop closes u's listener and waits (at most 5s) for its requests.
func (u *upstream) stop() {
	if u.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if u.srv.Shutdown(ctx) != nil {
		u.srv.Close()
	}
}
