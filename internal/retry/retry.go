// Package retry decides whether and when healproxy retries a request to a
// provider: which methods, failures and statuses are retried (Policy), how
// long to back off before each retry (full jitter over an exponential
// bound), and how many retries the provider's budget still allows (Budget,
// a lock-free sliding window), so that an outage never becomes a retry
// storm. It also reads a rate-limited answer's pause (RateLimitPause) and
// buffers a small request body so that it can be sent again
// (ReplayableBody). Sending the request, picking the upstream and the
// all-down policy are the proxy's.
//
// The settings are config.Retry, normalized (config.Normalize); see
// README.md's retry section and docs/behaviour.md's "Retries and the
// all-down policy".
package retry

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/quota"
)

// Policy is a provider's retry settings, resolved once.
type Policy struct {
	attempts                           int
	backoff, maxBackoff                time.Duration
	onConnect, onTimeout, on5xx, on429 bool
	methods                            []string
	budget                             *Budget
}

// NewPolicy resolves c, which must be normalized (config.Normalize): a
// zero Backoff means no wait, and a MaxBackoff below Backoff means Backoff.
func NewPolicy(c config.Retry) *Policy {
	rp := &Policy{attempts: max(1, c.Attempts), backoff: c.Backoff, maxBackoff: max(c.MaxBackoff, c.Backoff),
		methods: c.Methods, budget: newBudget(c)}
	for _, o := range c.On {
		switch o {
		case "connect-failure":
			rp.onConnect = true
		case "timeout":
			rp.onTimeout = true
		case "5xx":
			rp.on5xx = true
		case "429":
			rp.on429 = true
		}
	}
	return rp
}

// Attempts is how many tries a request gets, the first included.
func (rp *Policy) Attempts() int { return rp.attempts }

// MaxBackoff is the longest wait before a retry.
func (rp *Policy) MaxBackoff() time.Duration { return rp.maxBackoff }

// Budget is the provider's retry budget.
func (rp *Policy) Budget() *Budget { return rp.budget }

// Method says whether requests with this method may be retried.
func (rp *Policy) Method(m string) bool { return slices.Contains(rp.methods, m) }

// Kind says whether a failure of this kind is retried.
func (rp *Policy) Kind(k breaker.Kind) bool {
	switch k {
	case breaker.KindConnect, breaker.KindError:
		return rp.onConnect
	case breaker.KindTimeout:
		return rp.onTimeout
	}
	return false
}

// Status says whether an answer with this status is retried.
func (rp *Policy) Status(code int) bool {
	return (code >= 500 && rp.on5xx) || (code == http.StatusTooManyRequests && rp.on429)
}

// Wait sleeps before retry number n (1 for the first retry): full jitter
// over an exponential bound. It returns false when ctx ends first.
func (rp *Policy) Wait(ctx context.Context, n int) bool {
	if rp.backoff <= 0 {
		return ctx.Err() == nil
	}
	bound := rp.backoff << min(n-1, 20)
	if bound > rp.maxBackoff || bound <= 0 {
		bound = rp.maxBackoff
	}
	d := time.Duration(rand.Int64N(int64(bound) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Budget caps retries at a share of requests over a sliding window,
// counting retries still waiting in backoff, so that an outage never
// becomes a retry storm. The window is budgetSlots slots of one second,
// written lock-free.
type Budget struct {
	ratio      float64
	minPerSec  int
	windowSecs int64
	slots      [budgetSlots]budgetSlot
}

const budgetSlots = 64

type budgetSlot struct {
	sec      atomic.Int64
	requests atomic.Int64
	retries  atomic.Int64
}

func newBudget(c config.Retry) *Budget {
	w := int64(c.BudgetWindow / time.Second)
	return &Budget{ratio: c.Budget, minPerSec: c.MinRetries, windowSecs: min(max(w, 1), budgetSlots-1)}
}

func (b *Budget) slot(now int64) *budgetSlot {
	s := &b.slots[now%budgetSlots]
	if old := s.sec.Load(); old != now && s.sec.CompareAndSwap(old, now) {
		s.requests.Store(0)
		s.retries.Store(0)
	}
	return s
}

// Request counts one client request.
func (b *Budget) Request() { b.slot(time.Now().Unix()).requests.Add(1) }

// sums adds up the window.
func (b *Budget) sums(now int64) (requests, retries int64) {
	for i := range b.windowSecs {
		s := &b.slots[(now-i)%budgetSlots]
		if s.sec.Load() == now-i {
			requests += s.requests.Load()
			retries += s.retries.Load()
		}
	}
	return requests, retries
}

// allows says whether one more retry fits the budget now.
func (b *Budget) allows() bool {
	if b.ratio >= 1 {
		return true
	}
	requests, retries := b.sums(time.Now().Unix())
	limit := max(float64(b.minPerSec)*float64(b.windowSecs), b.ratio*float64(requests))
	return float64(retries) < limit
}

// Take spends one retry; false when the budget is spent.
func (b *Budget) Take() bool {
	if !b.allows() {
		return false
	}
	b.slot(time.Now().Unix()).retries.Add(1)
	return true
}

// maxReplayBody is the largest request body kept for a retry.
const maxReplayBody = 64 << 10

// ReplayableBody reads a small request body into memory so that a retry
// can send it again. It returns the body (nil for none) and whether the
// request can be replayed; a larger body is left streaming, unreplayable.
// An error is the client's body failing while it was read (malformed,
// cut off, too slow, too large): the request cannot be sent at all.
func ReplayableBody(req *http.Request) ([]byte, bool, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true, nil
	}
	if req.ContentLength > maxReplayBody {
		return nil, false, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
	if err != nil {
		return nil, false, err
	}
	if len(buf) > maxReplayBody {
		// put back what was read in front of the rest
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil, false, nil
	}
	req.Body.Close()
	return buf, true, nil
}

// RateLimitPause reads how long a 429 or 503 asks the client to wait:
// Retry-After in seconds or as an HTTP date, else X-RateLimit-Reset as
// seconds from now or as a Unix time. ok is false when neither is there.
func RateLimitPause(h http.Header, now time.Time) (time.Duration, string, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
			return time.Duration(min(secs, 1<<31)) * time.Second, "Retry-After: " + v, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now)), "Retry-After: " + v, true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if t, ok := quota.ResetAt(v, now, true); ok {
			return t.Sub(now), "X-RateLimit-Reset: " + v, true
		}
	}
	return 0, "", false
}
