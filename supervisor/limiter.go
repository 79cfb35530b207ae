package supervisor

import (
	"context"
	"sync"
)

// Limiter bounds how many plugin processes reinits start or drain at once
// (max_concurrent_reinit): a warm reinit holds two slots while it runs
// (its new process and the old one), a cold one one. One Limiter is shared
// by every model of an owner (Options.Limiter). Its methods are safe for
// concurrent use.
type Limiter struct {
	mu    sync.Mutex
	limit int
	used  int
	freed chan struct{} // closed and replaced whenever slots are freed or the limit grows
}

// NewLimiter returns a Limiter of limit slots (at least 1).
func NewLimiter(limit int) *Limiter {
	return &Limiter{limit: max(1, limit), freed: make(chan struct{})}
}

// Limit is the number of slots.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// SetLimit changes the number of slots (at least 1), for a reload; slots
// held stay held.
func (l *Limiter) SetLimit(limit int) {
	l.mu.Lock()
	l.limit = max(1, limit)
	l.wake()
	l.mu.Unlock()
}

// InUse is the number of slots held.
func (l *Limiter) InUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

func (l *Limiter) wake() {
	close(l.freed)
	l.freed = make(chan struct{})
}

// acquire waits until n slots (at most the limit) are free and takes
// them; it returns how many it took, for release.
func (l *Limiter) acquire(ctx context.Context, n int) (int, error) {
	l.mu.Lock()
	for {
		n = min(n, l.limit)
		if l.used+n <= l.limit {
			l.used += n
			l.mu.Unlock()
			return n, nil
		}
		freed := l.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		l.mu.Lock()
	}
}

func (l *Limiter) release(n int) {
	l.mu.Lock()
	l.used -= n
	l.wake()
	l.mu.Unlock()
}
