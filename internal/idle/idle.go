// Package idle bounds how long reading a response body may take: the
// silence between reads (an idle timeout) and, optionally, the whole body
// (a maximum duration). A body that goes silent or runs over is closed and
// its read ends with ErrStalled or ErrMaxDuration, so that a caller can
// tell a stalled upstream from one that broke the connection.
//
// Only the time a Read spends waiting for the upstream counts as silence:
// a caller that is slow to read (a slow client downstream) never makes a
// body stall. docs/behaviour.md has the rules healproxy builds on it.
package idle

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a Body's Read returns once it has given up.
var (
	// ErrStalled: no byte arrived within the idle timeout.
	ErrStalled = errors.New("no data within the idle timeout: the answer stalled")
	// ErrMaxDuration: the body was still being read at its maximum duration.
	ErrMaxDuration = errors.New("the answer took longer than its maximum duration")
)

// Body wraps a response body. Its Read and Close may be called from
// different goroutines (as with http.Response bodies, Close may interrupt a
// Read); Read itself must not be called concurrently.
type Body struct {
	rc   io.ReadCloser
	idle atomic.Int64 // ns; 0: no idle bound

	mu     sync.Mutex
	timer  *time.Timer // the idle timer, armed only while a Read waits
	maxT   *time.Timer // nil without a maximum duration
	cause  error       // set once, when the body gave up
	closed bool
}

// New wraps rc. idle bounds the wait of each Read for data (0: none); max
// bounds the whole body from now (0: none). Close stops the timers.
func New(rc io.ReadCloser, idle, max time.Duration) *Body {
	b := &Body{rc: rc}
	b.idle.Store(int64(idle))
	if max > 0 {
		b.maxT = time.AfterFunc(max, func() { b.giveUp(ErrMaxDuration) })
	}
	return b
}

// SetIdleTimeout changes the idle bound from the next Read on; 0 removes
// it. A reader that knows the answer is complete but for its trailer may
// shorten it.
func (b *Body) SetIdleTimeout(d time.Duration) { b.idle.Store(int64(d)) }

// giveUp records why the body ended and closes it, which ends a Read in
// progress.
func (b *Body) giveUp(cause error) {
	b.mu.Lock()
	if b.cause != nil || b.closed {
		b.mu.Unlock()
		return
	}
	b.cause = cause
	b.mu.Unlock()
	b.rc.Close()
}

// Err is why the body gave up (ErrStalled or ErrMaxDuration), or nil.
func (b *Body) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cause
}

// Read reads from the body within the bounds. Once the body has given up,
// every Read returns the cause, ErrStalled or ErrMaxDuration, whatever
// the underlying body said.
func (b *Body) Read(p []byte) (int, error) {
	if err := b.Err(); err != nil {
		return 0, err
	}
	if d := time.Duration(b.idle.Load()); d > 0 {
		b.mu.Lock()
		if b.timer == nil {
			b.timer = time.AfterFunc(d, func() { b.giveUp(ErrStalled) })
		} else {
			b.timer.Reset(d)
		}
		b.mu.Unlock()
	}
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	cause := b.cause
	b.mu.Unlock()
	if cause != nil {
		// Bytes read just before the timer fired are still good; the next
		// Read reports the cause.
		if n > 0 {
			return n, nil
		}
		return 0, cause
	}
	return n, err
}

// Close stops the timers and closes the underlying body.
func (b *Body) Close() error {
	b.mu.Lock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.maxT != nil {
		b.maxT.Stop()
	}
	b.mu.Unlock()
	return b.rc.Close()
}

// Interface guards.
var _ io.ReadCloser = (*Body)(nil)
