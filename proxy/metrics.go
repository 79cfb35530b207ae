package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/healproxy/healproxy/breaker"
)

// metrics are healproxy's Prometheus metrics. Request counters and
// latency histograms are resolved once per upstream and status code, so
// the request path only increments (no label hashing, no allocation).
// Status and cooldown gauges are not stored: a collector reads them from
// the health entries at scrape time.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	transitions *prometheus.CounterVec
	// healthChecks counts active health checks (healthcheck.go); they are
	// never counted in requests.
	healthChecks *prometheus.CounterVec

	retryBudgetExhausted *prometheus.CounterVec
	allDown              *prometheus.CounterVec
	// notUpstream counts provider requests that failed for a cause that
	// is not the upstream's (clienterrors.go): never counted in health.
	notUpstream *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_upstream_requests_total",
			Help: "Requests sent to provider upstreams, by answer: an HTTP status code, or timeout/connect/error/canceled when there was none.",
		}, []string{"provider", "upstream", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healproxy_upstream_request_duration_seconds",
			Help:    "Time from sending a request to a provider upstream to its response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "upstream"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_health_transitions_total",
			Help: "Health status changes of provider upstreams and models.",
		}, []string{"kind", "key", "upstream", "from", "to"}),
		healthChecks: newHealthChecksVec(),
	}
	m.retryBudgetExhausted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "healproxy_retry_budget_exhausted_total",
		Help: "Retries not made because the provider's retry budget was spent.",
	}, []string{"provider"})
	m.allDown = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "healproxy_all_down_total",
		Help: "Requests answered by the all-down policy, by the step that answered: stale, last_resort, wait, fail.",
	}, []string{"provider", "step"})
	m.notUpstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "healproxy_provider_errors_not_upstream_total",
		Help: "Provider requests that failed for a cause other than the upstream, never counted against its health, by cause: " +
			"client_body_malformed, client_body_aborted, client_body_slow, client_body_too_large, client_gone, proxy_resources.",
	}, []string{"provider", "cause"})
	m.reg.MustRegister(m.retryBudgetExhausted, m.allDown, m.notUpstream)
	m.reg.MustRegister(m.requests, m.latency, m.transitions, m.healthChecks, &healthCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// newHealthChecksVec is healproxy_health_checks_total: active health
// checks of provider upstreams, by result ("pass" or "fail").
func newHealthChecksVec() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "healproxy_health_checks_total",
		Help: "Active health checks of provider upstreams, by result: pass or fail. They are not counted in healproxy_upstream_requests_total.",
	}, []string{"provider", "upstream", "result"})
}

// upstreamMetrics are one upstream's resolved metrics.
type upstreamMetrics struct {
	m                  *metrics
	provider, upstream string
	latency            prometheus.Observer
	mu                 sync.Mutex // serialises additions to codes
	codes              atomic.Pointer[[]codeCounter]
}

type codeCounter struct {
	code string
	c    prometheus.Counter
}

func (m *metrics) forUpstream(provider, upstream string) *upstreamMetrics {
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

// healthCollector exports the current status and cooldown of every entry,
// read from the entries themselves at scrape time.
type healthCollector struct{ s *Server }

var (
	statusDesc = prometheus.NewDesc("healproxy_health_status",
		"Current health status: 0 unknown, 1 healthy, 2 degraded, 3 unavailable.",
		[]string{"kind", "key", "upstream"}, nil)
	errorCountDesc = prometheus.NewDesc("healproxy_health_error_count",
		"Current error_count of the health state machine.",
		[]string{"kind", "key", "upstream"}, nil)
	cooldownDesc = prometheus.NewDesc("healproxy_health_cooldown_remaining_seconds",
		"Seconds left in the current cooldown; 0 when not cooling down.",
		[]string{"kind", "key", "upstream"}, nil)
)

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- statusDesc
	ch <- errorCountDesc
	ch <- cooldownDesc
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	emit := func(kind, key, upstream string, e *breaker.Entry) {
		snap := e.Snapshot()
		ch <- prometheus.MustNewConstMetric(statusDesc, prometheus.GaugeValue, float64(snap.Status), kind, key, upstream)
		ch <- prometheus.MustNewConstMetric(errorCountDesc, prometheus.GaugeValue, float64(snap.ErrorCount), kind, key, upstream)
		var rem float64
		if snap.InCooldown {
			rem = snap.CooldownUntil.Sub(now).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(cooldownDesc, prometheus.GaugeValue, rem, kind, key, upstream)
	}
	st := c.s.state.Load()
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			emit(KindProvider, p.ID, u.Display, u.Health)
		}
	}
	for _, m := range st.modelList {
		emit(KindModel, m.Key, "", m.Health)
	}
}
