package opsmetrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/opsmetrics"
)

func TestCollector(t *testing.T) {
	c := opsmetrics.New(opsmetrics.Sources{
		Alerts: func() []api.Alert {
			return []api.Alert{{Name: "ops", Sent: 4, Failed: 3, GivenUp: 1, Dropped: 2, Queued: 5}}
		},
		Models: func() []api.Model {
			return []api.Model{{ModelKey: "m0", Loaded: true, Restarts: 2}, {ModelKey: "m1"}}
		},
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP healproxy_alert_dropped_total Alert events dropped because the alert's queue was full.
# TYPE healproxy_alert_dropped_total counter
healproxy_alert_dropped_total{alert="ops"} 2
# HELP healproxy_alert_failed_attempts_total Webhook deliveries that failed (each retried attempt counts).
# TYPE healproxy_alert_failed_attempts_total counter
healproxy_alert_failed_attempts_total{alert="ops"} 3
# HELP healproxy_alert_given_up_total Alert events given up after every retry failed.
# TYPE healproxy_alert_given_up_total counter
healproxy_alert_given_up_total{alert="ops"} 1
# HELP healproxy_alert_queued Alert events waiting for delivery.
# TYPE healproxy_alert_queued gauge
healproxy_alert_queued{alert="ops"} 5
# HELP healproxy_alert_sent_total Alert events delivered to the alert's webhook.
# TYPE healproxy_alert_sent_total counter
healproxy_alert_sent_total{alert="ops"} 4
# HELP healproxy_model_loaded 1 when the model's plugin process is running, 0 otherwise.
# TYPE healproxy_model_loaded gauge
healproxy_model_loaded{key="m0"} 1
healproxy_model_loaded{key="m1"} 0
# HELP healproxy_model_restarts_total Restarts of the model's plugin process (reinits, on request or automatic).
# TYPE healproxy_model_restarts_total counter
healproxy_model_restarts_total{key="m0"} 2
healproxy_model_restarts_total{key="m1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestNilSources: a source left nil exports nothing of its kind.
func TestNilSources(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(opsmetrics.New(opsmetrics.Sources{}))
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("got %d metrics, %v; want 0, nil", n, err)
	}
}
