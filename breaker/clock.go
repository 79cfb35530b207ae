package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stamps of last success/failure need no more than millisecond precision,
// while time.Now costs ~55 ns on a kvm-clock virtual machine and gobreaker
// already reads it twice per call. The coarse clock is a time kept in an
// atomic and refreshed every coarseTick by one goroutine, started on first
// use; reading it costs an atomic load.
const coarseTick = 5 * time.Millisecond

var (
	coarseOnce sync.Once
	coarseNs   atomic.Int64
)

// coarseNow is time.Now in unix nanoseconds, at most coarseTick old.
func coarseNow() int64 {
	coarseOnce.Do(func() {
		coarseNs.Store(time.Now().UnixNano())
		go func() {
			for range time.Tick(coarseTick) {
				coarseNs.Store(time.Now().UnixNano())
			}
		}()
	})
	return coarseNs.Load()
}

func preciseNow() int64 { return time.Now().UnixNano() }
