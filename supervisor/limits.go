package supervisor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/bytesize"
)

// This file recycles a model's process past one of its resource limits
// (config.Model.MaxMemory, MaxRequests, LatencyRecycle): a warm reinit
// with why WhyRecycle and a reason naming the limit and the figure, at
// most once per reinit_cooldown (docs/behaviour.md, "Models").

// limitLoop checks the limits every m.every until the model is closed.
func (m *Model) limitLoop() {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.checkLimits()
		}
	}
}

// checkLimits recycles the running process when it is past a limit and
// returns the reinit's result; ok is false when no limit was passed (or
// the process was replaced meanwhile).
func (m *Model) checkLimits() (res Result, ok bool) {
	in := m.cur.Load()
	if in == nil || in.exited() {
		return Result{}, false
	}
	reason := m.overLimit(in, m.cfg.Load())
	if reason == "" {
		return Result{}, false
	}
	res = m.reinit(context.Background(), WhyRecycle, reason, m.limiter, in)
	return res, res.Status != ""
}

// overLimit says which limit process in has passed and by how much, or "".
func (m *Model) overLimit(in *instance, mc *config.Model) string {
	if mc.MaxRequests > 0 {
		if n := in.served.Load(); n >= mc.MaxRequests {
			return fmt.Sprintf("max_requests: %d calls served (limit %d)", n, mc.MaxRequests)
		}
	}
	if mc.MaxMemory > 0 {
		rss, err := m.readRSS(in.p.Pid())
		if err != nil {
			m.log.Debug("cannot read a model plugin's memory", "model", m.Key, "pid", in.p.Pid(), "error", err)
		} else if rss > mc.MaxMemory {
			return fmt.Sprintf("max_memory: resident memory %s (limit %s)", bytesize.Format(rss), bytesize.Format(mc.MaxMemory))
		}
	}
	if mc.LatencyRecycle > 0 {
		if base, recent, ok := in.lat.p95s(m.now()); ok && float64(recent) > mc.LatencyRecycle*float64(base) {
			return fmt.Sprintf("latency_recycle: p95 %s over the last %s is %.1f× the p95 of %s after start (limit %g×)",
				recent.Round(time.Microsecond), recentWindow, float64(recent)/float64(base), base.Round(time.Microsecond), mc.LatencyRecycle)
		}
	}
	return ""
}

// The latency figures of latency_recycle: the p95 of the first calls a
// process serves (at most baselineMax, within baselineWindow of its
// start) is its own yardstick; the p95 of its calls within the last
// recentWindow (at most ringSize) is compared with it. Each needs
// minSamples calls.
const (
	baselineWindow = time.Minute
	baselineMax    = 512
	recentWindow   = 5 * time.Minute
	ringSize       = 1024
	minSamples     = 20
)

// latencies holds one process's call latencies for latency_recycle. Its
// methods are safe for concurrent use.
type latencies struct {
	mu    sync.Mutex
	start time.Time
	base  []time.Duration
	ring  []sample // the latest calls after the baseline, oldest overwritten
	next  int
}

type sample struct {
	at time.Time
	d  time.Duration
}

func newLatencies(start time.Time) *latencies { return &latencies{start: start} }

// add records a call that ended at now and took d.
func (l *latencies) add(now time.Time, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) < baselineWindow && len(l.base) < baselineMax {
		l.base = append(l.base, d)
		return
	}
	if len(l.ring) < ringSize {
		l.ring = append(l.ring, sample{now, d})
		return
	}
	l.ring[l.next] = sample{now, d}
	l.next = (l.next + 1) % ringSize
}

// p95s returns the baseline p95 and the p95 of the calls within
// recentWindow before now; ok is false while either has fewer than
// minSamples calls.
func (l *latencies) p95s(now time.Time) (base, recent time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.base) < minSamples {
		return 0, 0, false
	}
	var r []time.Duration
	for _, s := range l.ring {
		if now.Sub(s.at) <= recentWindow {
			r = append(r, s.d)
		}
	}
	if len(r) < minSamples {
		return 0, 0, false
	}
	return p95(slices.Clone(l.base)), p95(r), true
}

// p95 is the 95th percentile of ds (nearest rank); it sorts ds.
func p95(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	i := (len(ds)*95+99)/100 - 1
	return ds[max(0, i)]
}
