package provider

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/clientbody"
	"github.com/healproxy/healproxy/internal/hedge"
	"github.com/healproxy/healproxy/internal/retry"
)

// Hedging (README, "Hedging"; docs/behaviour.md, "Hedging"): a request the
// retry policy may send again (its method, no body or one kept for
// replay) whose attempt has not answered within the hedge delay is sent
// a second time to another available upstream. The first good answer is
// taken and the other attempt cancelled: its context ends, and its
// breaker records nothing (breaker.Excluded, as for a client that went
// away), unless it had failed by itself before. When the first to answer
// failed, the other is waited for; when both fail, the later failure is
// the attempt's result, and retries and the all-down policy go on from
// it. Hedges are spent from a budget of their own: at most max_extra of
// the hedgeable requests over the window, plus one a second.

// hedgeMinPerSecond is the hedges a second the budget allows whatever
// the traffic, so that a quiet provider can hedge at all.
const hedgeMinPerSecond = 1

// hedger is a provider's hedging policy.
type hedger struct {
	after     time.Duration    // a fixed delay; 0: the percentile of latencies
	latencies *hedge.Latencies // the first attempts' latencies; nil with a fixed delay
	budget    *retry.Budget
	// sent, won and refused count hedges: sent, whose answer was taken,
	// and not sent because the budget was spent.
	sent, won, refused prometheus.Counter
}

func newHedger(id string, h routecfg.Hedge, m *Metrics) *hedger {
	hg := &hedger{after: h.After, budget: retry.NewBudget(h.MaxExtra, h.Window, hedgeMinPerSecond),
		sent:    m.hedging.hedges.WithLabelValues(id, "sent"),
		won:     m.hedging.hedges.WithLabelValues(id, "won"),
		refused: m.hedging.hedges.WithLabelValues(id, "refused_budget")}
	if h.After <= 0 {
		hg.latencies = hedge.NewLatencies(h.AfterPercentile, h.Window)
	}
	return hg
}

// admit says whether req, whose method the retry policy retries and
// whose body (if any) is kept for replay, may be hedged, and counts it
// among the requests of the budget. An upgrade is never hedged.
func (h *hedger) admit(req *http.Request) bool {
	if req.Header["Upgrade"] != nil {
		return false
	}
	h.budget.Request()
	return true
}

// delay is how long a first attempt may take before it is hedged; false
// while the percentile has too few latencies to go by.
func (h *hedger) delay(now time.Time) (time.Duration, bool) {
	if h.latencies == nil {
		return h.after, true
	}
	return h.latencies.Quantile(now)
}

// observe learns a first attempt's latency (for the percentile).
func (h *hedger) observe(d time.Duration) {
	if h.latencies != nil {
		h.latencies.Observe(d, time.Now())
	}
}

// hedged is attempt n of req on upstream i (see attempt), hedged: when it
// has not answered after the hedge delay, a second attempt goes to
// another available upstream (picked as the loop picks, from start, none
// of tried), if the budget allows. It returns what attempt returns for
// the result taken, and h, the upstream the hedge went to (-1: none).
// body is the request's body kept for replay (nil: none). Each attempt
// gets a context of its own under the request's; the taken answer's ends
// when its body is closed, the other's at once. An attempt still running
// when hedged returns delivers to nobody: its answer is closed.
func (t *providerTransport) hedged(i int, req *http.Request, cb *clientbody.Body, body []byte, retryLater bool, n int, start uint32, tried uint64) (resp *http.Response, h int, err error, refused bool) {
	p := t.p
	hg := p.hedge
	u := p.Upstreams[i]
	delay, ok := hg.delay(time.Now())
	if !ok || len(p.Upstreams) < 2 {
		began := time.Now()
		resp, err, refused = t.attempt(u, req, cb, retryLater, n)
		if !refused && !notUpstream(err) {
			hg.observe(time.Since(began))
		}
		return resp, -1, err, refused
	}
	run := &hedgeRun{results: make(chan hedgeResult, 2)}
	defer run.abandon()
	began := time.Now()
	cancels := [2]context.CancelFunc{t.launch(run, 0, u, req, cb, body, retryLater, n)}
	running := [2]bool{true}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	wait := timer.C
	h = -1
	var failed *hedgeResult // the first failure, while the other attempt runs
	for {
		select {
		case <-wait:
			wait = nil
			if req.Context().Err() != nil {
				continue
			}
			k, _ := p.pick(start, tried|1<<i, true)
			if k < 0 {
				continue // no other upstream to ask
			}
			if !hg.budget.Take() {
				hg.refused.Inc()
				continue
			}
			hg.sent.Inc()
			h = k
			p.tracer.Hedge(req.Context(), n+1, p.Upstreams[k].Display)
			cancels[1] = t.launch(run, 1, p.Upstreams[k], req, cb, body, retryLater, n+1)
			running[1] = true
			continue
		case r := <-run.results:
			running[r.which] = false
			if r.which == 0 && !r.refused && !notUpstream(r.err) {
				hg.observe(r.took)
			}
			other := running[0] || running[1] || wait != nil // wait: a hedge may still be sent
			switch {
			case !r.refused && r.err == nil && !failureStatus(r.resp.StatusCode):
				// the first good answer: taken; the other attempt is cancelled
				if r.which == 1 {
					hg.won.Inc()
					if running[0] {
						hg.observe(time.Since(began)) // at least that long: the percentile's tail
					}
				}
				for k, c := range cancels {
					if running[k] {
						c()
					}
				}
				if failed != nil {
					failed.discard()
				}
				return r.taken(), h, nil, false
			case other && !(r.which == 0 && wait != nil):
				// refused or failed while the other runs: wait for it
				if r.refused {
					r.cancel()
					continue
				}
				if failed != nil {
					failed.discard()
				}
				failed = &r
				continue
			}
			// nothing else is coming (or the first attempt ended before the
			// delay): this is the result, unless it was refused after a
			// failure
			timer.Stop()
			if r.refused && failed != nil {
				r.cancel()
				r = *failed
			} else if failed != nil {
				failed.discard()
			}
			if r.refused {
				r.cancel()
				return nil, h, nil, true
			}
			return r.taken(), h, r.err, false
		}
	}
}

// launch starts attempt n of req on u on a goroutine of its own (which
// is 0 for the first, 1 for the hedge), with a context of its own, a
// body reader of its own, and, when tracing writes the trace headers, a
// header of its own. The result goes to run.
func (t *providerTransport) launch(run *hedgeRun, which int, u *Upstream, req *http.Request, cb *clientbody.Body, body []byte, retryLater bool, n int) context.CancelFunc {
	ctx, cancel := context.WithCancel(req.Context())
	r := req.WithContext(ctx)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if t.p.tracer.Enabled() {
		r.Header = req.Header.Clone()
	}
	go func() {
		began := time.Now()
		resp, err, refused := t.attempt(u, r, cb, retryLater, n)
		run.deliver(hedgeResult{resp: resp, err: err, refused: refused, which: which, took: time.Since(began), cancel: cancel})
	}()
	return cancel
}

// hedgeRun collects the results of a hedged attempt's two attempts. Once
// abandoned, a result delivered is discarded: its body closed, its
// context ended.
type hedgeRun struct {
	mu        sync.Mutex
	abandoned bool
	results   chan hedgeResult // room for both: deliver never blocks
}

func (run *hedgeRun) deliver(r hedgeResult) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.abandoned {
		r.discard()
		return
	}
	run.results <- r
}

func (run *hedgeRun) abandon() {
	run.mu.Lock()
	run.abandoned = true
	run.mu.Unlock()
	for {
		select {
		case r := <-run.results:
			r.discard()
		default:
			return
		}
	}
}

// hedgeResult is one attempt's result.
type hedgeResult struct {
	resp    *http.Response
	err     error
	refused bool
	which   int           // 0: the first attempt, 1: the hedge
	took    time.Duration // until the attempt returned
	cancel  context.CancelFunc
}

// discard drops a result nobody takes.
func (r *hedgeResult) discard() {
	r.cancel()
	if r.resp != nil {
		r.resp.Body.Close()
	}
}

// taken is the result's answer for the caller: its context ends when its
// body is closed (at once when it has none). An upgraded connection's
// context ends with the request's.
func (r *hedgeResult) taken() *http.Response {
	resp := r.resp
	switch {
	case resp == nil || resp.Body == nil || resp.Body == http.NoBody:
		r.cancel()
	case resp.StatusCode != http.StatusSwitchingProtocols:
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: r.cancel}
	}
	return resp
}

// cancelOnClose ends an attempt's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// hedgingMetrics are the metrics of hedging (hedge.go) and coalescing
// (coalesce.go).
type hedgingMetrics struct {
	hedges    *prometheus.CounterVec
	coalesced *prometheus.CounterVec
}

func newHedgingMetrics(reg prometheus.Registerer) *hedgingMetrics {
	m := &hedgingMetrics{
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_hedges_total",
			Help: "Hedged attempts of provider requests, by result: sent, won (its answer was taken), refused_budget (not sent: the hedge budget was spent).",
		}, []string{"provider", "result"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_coalesced_requests_total",
			Help: "Provider requests answered from an identical request's upstream exchange already in flight, instead of one of their own.",
		}, []string{"provider"}),
	}
	reg.MustRegister(m.hedges, m.coalesced)
	return m
}

// forget drops a provider's series.
func (m *hedgingMetrics) forget(provider string) {
	l := prometheus.Labels{"provider": provider}
	m.hedges.DeletePartialMatch(l)
	m.coalesced.DeletePartialMatch(l)
}
