package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/opsmetrics"
	"github.com/healproxy/healproxy/provider"
)

// metrics are healproxy's Prometheus metrics: the providers' (package
// provider), the status changes, and the current status and cooldown of
// every entry, which are not stored: a collector reads them from the
// health entries at scrape time.
type metrics struct {
	reg         *prometheus.Registry
	providers   *provider.Metrics
	transitions *prometheus.CounterVec
	// reinits counts the models' reinit attempts by mode (warm, cold),
	// why (self-heal, auto-reinit, recycle) and status; reinitSwitch
	// times the switch of those that succeeded.
	reinits      *prometheus.CounterVec
	reinitSwitch *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_health_transitions_total",
			Help: "Health status changes of provider upstreams and models.",
		}, []string{"kind", "key", "upstream", "from", "to"}),
	}
	m.reinits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "healproxy_model_reinits_total",
		Help: "Reinit attempts of model plugins, by mode (warm: the new process took over from the live one; cold: it replaced a dead or hung one), why (self-heal, auto-reinit, recycle) and status (success, failed).",
	}, []string{"key", "mode", "why", "status"})
	m.reinitSwitch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "healproxy_model_reinit_switch_seconds",
		Help:    "Time from the start of a successful reinit until new calls went to the new process.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"key", "mode"})
	m.reg.MustRegister(m.reinits, m.reinitSwitch)
	m.providers = provider.NewMetrics(m.reg)
	m.reg.MustRegister(opsmetrics.New(opsmetrics.Sources{Alerts: s.alertDocs, Models: func() []api.Model {
		st := s.state.Load()
		docs := make([]api.Model, 0, len(st.modelList))
		for _, m := range st.modelList {
			docs = append(docs, m.document())
		}
		return docs
	}}))
	m.reg.MustRegister(m.transitions, &healthCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

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
	for _, m := range c.s.llm.Models() {
		for _, ep := range m.Endpoints() {
			emit(KindModel, m.Key, ep.URL, ep.Health)
		}
	}
}
