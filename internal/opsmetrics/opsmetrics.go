// Package opsmetrics exports, as Prometheus metrics, what healproxy
// already counts but did not export: the webhook alerts' delivery
// counters and the model plugins' restarts. The shipped alert rules and
// dashboard (deploy/) use them.
//
// The Collector reads its sources at scrape time, as the health gauges
// do, so the request path does no extra work. Register it once on the
// proxy's registry:
//
//	reg.MustRegister(opsmetrics.New(opsmetrics.Sources{Alerts: …, Models: …}))
package opsmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/api"
)

// Sources are read at every scrape. A nil function exports nothing of
// its kind. They must be safe for concurrent use.
type Sources struct {
	// Alerts returns every alert's delivery counters (GET
	// /api/diagnostics/alerts).
	Alerts func() []api.Alert
	// Models returns every model's entry (the health document's
	// models.entries); Loaded and Restarts are used.
	Models func() []api.Model
}

var (
	alertSentDesc = prometheus.NewDesc("healproxy_alert_sent_total",
		"Alert events delivered to the alert's webhook.", []string{"alert"}, nil)
	alertFailedDesc = prometheus.NewDesc("healproxy_alert_failed_attempts_total",
		"Webhook deliveries that failed (each retried attempt counts).", []string{"alert"}, nil)
	alertGivenUpDesc = prometheus.NewDesc("healproxy_alert_given_up_total",
		"Alert events given up after every retry failed.", []string{"alert"}, nil)
	alertDroppedDesc = prometheus.NewDesc("healproxy_alert_dropped_total",
		"Alert events dropped because the alert's queue was full.", []string{"alert"}, nil)
	alertQueuedDesc = prometheus.NewDesc("healproxy_alert_queued",
		"Alert events waiting for delivery.", []string{"alert"}, nil)
	modelRestartsDesc = prometheus.NewDesc("healproxy_model_restarts_total",
		"Restarts of the model's plugin process (reinits, on request or automatic).", []string{"key"}, nil)
	modelLoadedDesc = prometheus.NewDesc("healproxy_model_loaded",
		"1 when the model's plugin process is running, 0 otherwise.", []string{"key"}, nil)
)

// Collector is a prometheus.Collector over Sources.
type Collector struct{ src Sources }

// New returns a Collector reading src.
func New(src Sources) *Collector { return &Collector{src: src} }

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{alertSentDesc, alertFailedDesc, alertGivenUpDesc, alertDroppedDesc,
		alertQueuedDesc, modelRestartsDesc, modelLoadedDesc} {
		ch <- d
	}
}

// Collect reads the sources and sends their values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Alerts != nil {
		for _, a := range c.src.Alerts() {
			ch <- prometheus.MustNewConstMetric(alertSentDesc, prometheus.CounterValue, float64(a.Sent), a.Name)
			ch <- prometheus.MustNewConstMetric(alertFailedDesc, prometheus.CounterValue, float64(a.Failed), a.Name)
			ch <- prometheus.MustNewConstMetric(alertGivenUpDesc, prometheus.CounterValue, float64(a.GivenUp), a.Name)
			ch <- prometheus.MustNewConstMetric(alertDroppedDesc, prometheus.CounterValue, float64(a.Dropped), a.Name)
			ch <- prometheus.MustNewConstMetric(alertQueuedDesc, prometheus.GaugeValue, float64(a.Queued), a.Name)
		}
	}
	if c.src.Models != nil {
		for _, m := range c.src.Models() {
			loaded := 0.0
			if m.Loaded {
				loaded = 1
			}
			ch <- prometheus.MustNewConstMetric(modelRestartsDesc, prometheus.CounterValue, float64(m.Restarts), m.ModelKey)
			ch <- prometheus.MustNewConstMetric(modelLoadedDesc, prometheus.GaugeValue, loaded, m.ModelKey)
		}
	}
}

// Interface guards.
var _ prometheus.Collector = (*Collector)(nil)
