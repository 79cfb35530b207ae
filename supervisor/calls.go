package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/plugins"
)

// instance is one process of a model with the calls it serves: the count
// in flight that a warm reinit drains, the count served that max_requests
// limits, and the latencies that latency_recycle compares.
type instance struct {
	p        *plugins.Process
	inflight atomic.Int64
	served   atomic.Int64
	draining atomic.Bool
	idle     chan struct{} // a release that leaves nothing in flight while draining
	// recycleAsked is set once a release saw max_requests reached, so
	// that only one check is started from the call path.
	recycleAsked atomic.Bool
	lat          *latencies
}

func newInstance(p *plugins.Process, now time.Time) *instance {
	return &instance{p: p, idle: make(chan struct{}, 1), lat: newLatencies(now)}
}

func (in *instance) exited() bool {
	select {
	case <-in.p.Done():
		return true
	default:
		return false
	}
}

// unpin ends one call on in.
func (in *instance) unpin() {
	if in.inflight.Add(-1) == 0 && in.draining.Load() {
		select {
		case in.idle <- struct{}{}:
		default:
		}
	}
}

// Pin pins the process that new calls go to for one call and counts the
// call in flight on it, so that a warm reinit does not stop that process
// until done is called (or the model's timeout has passed). done must be
// called exactly once, with the call's error; a nil error records the
// time since Pin as a served call's latency (latency_recycle); later calls
// of done do nothing. With no process running, Pin returns ErrNotLoaded
// and a done that does nothing.
//
// The call on p should carry the model's timeout as its deadline: that is
// how long a warm reinit waits for it.
func (m *Model) Pin() (p *plugins.Process, done func(err error), err error) {
	for {
		in := m.cur.Load()
		if in == nil {
			return nil, func(error) {}, ErrNotLoaded
		}
		in.inflight.Add(1)
		if m.cur.Load() != in {
			// A switch came between the load and the count: the old
			// process may already be draining; take the new one.
			in.unpin()
			continue
		}
		served := in.served.Add(1)
		start := m.now()
		var once atomic.Bool
		return in.p, func(err error) {
			if !once.CompareAndSwap(false, true) {
				return
			}
			mc := m.cfg.Load()
			if err == nil && mc.LatencyRecycle > 0 {
				now := m.now()
				in.lat.add(now, now.Sub(start))
			}
			in.unpin()
			if mc.MaxRequests > 0 && served >= mc.MaxRequests && in.recycleAsked.CompareAndSwap(false, true) {
				go m.checkLimits()
			}
		}, nil
	}
}

// Predict sends inputs to the model's current process, pinned for the
// call (see Pin). ctx should carry the model's timeout. It returns
// ErrNotLoaded when no process runs, else the plugin's answer or error
// (plugins.ErrPluginUnavailable when the process died under the call).
func (m *Model) Predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	p, done, err := m.Pin()
	if err != nil {
		return nil, err
	}
	out, err := p.Model().Predict(ctx, inputs)
	if errors.Is(err, plugins.ErrPluginUnavailable) {
		err = withExit(p, err)
	}
	done(err)
	return out, err
}

// exitWait bounds how long a call whose process went away waits for the
// exit to be known.
const exitWait = time.Second

// withExit adds to err, the error of a call whose process went away under
// it, why the process ended (its exit status and the last of what it
// wrote, a panic say), once that is known: the call's failure then tells
// as much as the exit's, whichever the model's entry records last.
func withExit(p *plugins.Process, err error) error {
	t := time.NewTimer(exitWait)
	defer t.Stop()
	select {
	case <-p.Done():
		if xe := p.ExitErr(); xe != nil {
			return fmt.Errorf("%w; %v", err, xe)
		}
	case <-t.C:
	}
	return err
}

// drain waits until in has no call in flight, at most bound (or until the
// model is closed), and returns how many calls were still in flight.
func (m *Model) drain(in *instance, bound time.Duration) int64 {
	in.draining.Store(true)
	t := time.NewTimer(bound)
	defer t.Stop()
	for {
		n := in.inflight.Load()
		if n <= 0 {
			return 0
		}
		select {
		case <-in.idle:
		case <-t.C:
			return in.inflight.Load()
		case <-m.stop:
			return in.inflight.Load()
		}
	}
}
