package llm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics, labelled by model key
// (the model that answered).
type metrics struct {
	tokens     *prometheus.CounterVec   // model, type: prompt | completion
	ttft       *prometheus.HistogramVec // model
	tps        *prometheus.HistogramVec // model
	recoveries *prometheus.CounterVec   // model, way
	malformed  *prometheus.CounterVec   // model
	fallbacks  *prometheus.CounterVec   // from, to, reason
	attempts   *prometheus.CounterVec   // model, endpoint, result
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_llm_tokens_total",
			Help: "Tokens of answered calls by the model that answered, from the answers' usage: type prompt or completion.",
		}, []string{"model", "type"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healproxy_llm_time_to_first_token_seconds",
			Help:    "Time from a streamed call's arrival to its first token reaching the client, by the model that answered.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"model"}),
		tps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healproxy_llm_tokens_per_second",
			Help:    "Completion tokens per second of complete streamed answers, after their first token.",
			Buckets: []float64{1, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"model"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_llm_recoveries_total",
			Help: "Streamed answers that broke after reaching the client, by the model that broke and the way they ended: prefill, replay or failed.",
		}, []string{"model", "way"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_llm_malformed_events_total",
			Help: "Stream events dropped because their data was not valid JSON.",
		}, []string{"model"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_llm_fallbacks_total",
			Help: "Calls handed from one model to another before their answer began, by reason: failure or context_length.",
		}, []string{"from", "to", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_llm_attempts_total",
			Help: "Requests sent to endpoints, by result: ok, failure, rate_limited, client_error, gone.",
		}, []string{"model", "endpoint", "result"}),
	}
	if reg != nil {
		m.tokens = register(reg, m.tokens)
		m.ttft = register(reg, m.ttft)
		m.tps = register(reg, m.tps)
		m.recoveries = register(reg, m.recoveries)
		m.malformed = register(reg, m.malformed)
		m.fallbacks = register(reg, m.fallbacks)
		m.attempts = register(reg, m.attempts)
	}
	return m
}

// forget drops a removed model's series.
func (m *metrics) forget(model string) {
	l := prometheus.Labels{"model": model}
	m.tokens.DeletePartialMatch(l)
	m.ttft.DeletePartialMatch(l)
	m.tps.DeletePartialMatch(l)
	m.recoveries.DeletePartialMatch(l)
	m.malformed.DeletePartialMatch(l)
	m.attempts.DeletePartialMatch(l)
	m.fallbacks.DeletePartialMatch(prometheus.Labels{"from": model})
	m.fallbacks.DeletePartialMatch(prometheus.Labels{"to": model})
}

// register registers c, or returns the collector registered before it
// under the same name (a second gateway on the same registry).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
		panic("llm: registering metrics: " + err.Error())
	}
	return c
}
