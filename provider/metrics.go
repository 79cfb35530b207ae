package provider

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of provider requests, shared by all
// providers of a server. Request counters and latency histograms are
// resolved once per upstream and status code, so the request path only
// increments (no label hashing, no allocation).
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// healthChecks counts active health checks (internal/healthcheck); they are
	// never counted in requests.
	healthChecks *prometheus.CounterVec

	retryBudgetExhausted *prometheus.CounterVec
	allDown              *prometheus.CounterVec
	// notUpstream counts provider requests that failed for a cause that
	// is not the upstream's (internal/clientbody): never counted in health.
	notUpstream *prometheus.CounterVec
	outlier     *outlierMetrics // outlier.go
	quota       *quotaMetrics   // rate-limit steering (quota.go)
	hedging     *hedgingMetrics // hedge.go
}

// NewMetrics makes the provider metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_upstream_requests_total",
			Help: "Requests sent to provider upstreams, by answer: an HTTP status code, or timeout/connect/error/canceled when there was none.",
		}, []string{"provider", "upstream", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healproxy_upstream_request_duration_seconds",
			Help:    "Time from sending a request to a provider upstream to its response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "upstream"}),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_health_checks_total",
			Help: "Active health checks of provider upstreams, by result: pass or fail. They are not counted in healproxy_upstream_requests_total.",
		}, []string{"provider", "upstream", "result"}),
		retryBudgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_retry_budget_exhausted_total",
			Help: "Retries not made because the provider's retry budget was spent.",
		}, []string{"provider"}),
		allDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_all_down_total",
			Help: "Requests answered by the all-down policy, by the step that answered: stale, last_resort, wait, fail.",
		}, []string{"provider", "step"}),
		notUpstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_provider_errors_not_upstream_total",
			Help: "Provider requests that failed for a cause other than the upstream, never counted against its health, by cause: " +
				"client_body_malformed, client_body_aborted, client_body_slow, client_body_too_large, client_gone, proxy_resources.",
		}, []string{"provider", "cause"}),
	}
	reg.MustRegister(m.requests, m.latency, m.healthChecks, m.retryBudgetExhausted, m.allDown, m.notUpstream)
	m.outlier = newOutlierMetrics(reg)
	m.quota = newQuotaMetrics(reg)
	m.hedging = newHedgingMetrics(reg)
	return m
}

// Forget drops the series of a provider ("" upstream) or of one of its
// upstreams, removed by a reload.
func (m *Metrics) Forget(provider, upstream string) {
	l := prometheus.Labels{"provider": provider}
	if upstream != "" {
		l["upstream"] = upstream
	}
	m.requests.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.healthChecks.DeletePartialMatch(l)
	m.outlier.forget(l)
	m.quota.forget(l)
	if upstream == "" {
		m.hedging.forget(provider)
	}
}

// upstreamMetrics are one upstream's resolved metrics.
type upstreamMetrics struct {
	m                  *Metrics
	provider, upstream string
	latency            prometheus.Observer
	mu                 sync.Mutex // serialises additions to codes
	codes              atomic.Pointer[[]codeCounter]
}

type codeCounter struct {
	code string
	c    prometheus.Counter
}

func (m *Metrics) forUpstream(provider, upstream string) *upstreamMetrics {
	um := &upstreamMetrics{m: m, provider: provider, upstream: upstream,
		latency: m.latency.WithLabelValues(provider, upstream)}
	um.codes.Store(&[]codeCounter{})
	return um
}

// observeCode counts an answer with an HTTP status code.
func (um *upstreamMetrics) observeCode(code int, latency time.Duration) {
	if code >= 100 && code < 600 {
		um.observe(statusCodes[code-100], latency)
		return
	}
	um.observe(strconv.Itoa(code), latency)
}

// observe counts an attempt by its outcome label. A lookup is a scan of
// the few codes this upstream has answered with; a new code copies the
// list once.
func (um *upstreamMetrics) observe(code string, latency time.Duration) {
	um.latency.Observe(latency.Seconds())
	for _, cc := range *um.codes.Load() {
		if cc.code == code {
			cc.c.Inc()
			return
		}
	}
	um.mu.Lock()
	defer um.mu.Unlock()
	old := *um.codes.Load()
	for _, cc := range old {
		if cc.code == code {
			cc.c.Inc()
			return
		}
	}
	c := um.m.requests.WithLabelValues(um.provider, um.upstream, code)
	codes := append(append(make([]codeCounter, 0, len(old)+1), old...), codeCounter{code, c})
	um.codes.Store(&codes)
	c.Inc()
}

// statusCodes holds "100".."599", so labelling a code never allocates.
var statusCodes = func() (s [500]string) {
	for i := range s {
		s[i] = strconv.Itoa(i + 100)
	}
	return s
}()
