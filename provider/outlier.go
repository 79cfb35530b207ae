package provider

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/internal/outlier"
)

// Outlier detection (block outlier_detection, docs/behaviour.md "Outlier
// ejection"): every attempt's result and latency is counted in its
// upstream's recorder; every interval the detector compares the
// provider's upstreams over that interval (internal/outlier) and ejects
// those far worse than their peers through their health entry
// (breaker.Entry.Eject): unavailable for a cooldown with the usual
// backoff, then recovery trials. The status change goes through the
// entry's OnChange like any other, so events and transition metrics come
// with it; ejections are counted in healproxy_outlier_ejections_total.
//
// The loop (run) only schedules; tick does one round, so that tests can
// drive rounds one at a time.

// outlierRecorder is an upstream's recorder, nil when its provider has no
// outlier detection.
type outlierRecorder = outlier.Recorder

// outlierDetector runs the outlier detection of one provider.
type outlierDetector struct {
	p   *Provider
	cfg routecfg.OutlierDetection
	m   *outlierMetrics // nil without metrics
	log *slog.Logger

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newOutlierDetector gives each upstream of p a recorder and returns the
// detector comparing them under cfg; nil when cfg is nil (off). cfg is
// normalized (config.Normalize).
func newOutlierDetector(p *Provider, cfg *routecfg.OutlierDetection, m *Metrics, logger *slog.Logger) *outlierDetector {
	if cfg == nil {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &outlierDetector{p: p, cfg: *cfg, log: logger.With(slog.String("provider", p.ID))}
	if d.cfg.Interval <= 0 {
		d.cfg.Interval = routecfg.DefaultOutlierInterval
	}
	if m != nil {
		d.m = m.outlier
	}
	for _, u := range p.Upstreams {
		u.outlier = new(outlierRecorder)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// observed is fn, an attempt's call through u's breaker, counting its
// result for outlier detection: fn itself when detection is off. A result
// the breaker excludes (the client left) counts for nothing here either.
func (u *Upstream) observed(fn func() (time.Duration, error)) func() (time.Duration, error) {
	if u.outlier == nil {
		return fn
	}
	return func() (time.Duration, error) {
		latency, err := fn()
		if err != breaker.Excluded() {
			u.outlier.Observe(err != nil, latency)
		}
		return latency, err
	}
}

// start starts the loop; later calls do nothing, as does a call after
// stop. Nil-safe.
func (d *outlierDetector) start() {
	if d == nil {
		return
	}
	d.startOnce.Do(func() {
		if d.ctx.Err() != nil || len(d.p.Upstreams) < 2 {
			return // one upstream has no peers
		}
		d.wg.Add(1)
		go d.run()
	})
}

// stop ends the loop and waits for it. It may be called more than once,
// and without start. Nil-safe.
func (d *outlierDetector) stop() {
	if d == nil {
		return
	}
	d.stopOnce.Do(func() {
		d.startOnce.Do(func() {})
		d.cancel()
	})
	d.wg.Wait()
}

func (d *outlierDetector) run() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			d.tick()
		}
	}
}

// tick ends an interval: it takes every upstream's counts, asks
// outlier.Detect which to eject, and ejects them. It returns the
// ejections made.
func (d *outlierDetector) tick() []outlier.Decision {
	ups := make([]outlier.Upstream, len(d.p.Upstreams))
	for i, u := range d.p.Upstreams {
		ups[i] = outlier.Upstream{Stats: u.outlier.Take(), Unavailable: !u.Available()}
	}
	var done []outlier.Decision
	for _, dec := range outlier.Detect(d.cfg, ups) {
		u := d.p.Upstreams[dec.Index]
		if !u.Health.Eject(dec.Reason) {
			continue // it tripped meanwhile
		}
		done = append(done, dec)
		if d.m != nil {
			d.m.ejections.WithLabelValues(d.p.ID, u.Display, dec.Rule).Inc()
		}
		until, _ := u.Health.CooldownUntil()
		d.log.Warn("upstream ejected against its peers", slog.String("upstream", u.Display),
			slog.String("rule", dec.Rule), slog.String("reason", dec.Reason), slog.Time("until", until))
	}
	return done
}

// outlierMetrics are the metrics of outlier detection, part of Metrics.
type outlierMetrics struct {
	ejections *prometheus.CounterVec
}

// newOutlierMetrics makes the outlier metrics and registers them on reg.
func newOutlierMetrics(reg prometheus.Registerer) *outlierMetrics {
	m := &outlierMetrics{
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healproxy_outlier_ejections_total",
			Help: "Provider upstreams ejected by outlier detection, by rule: failure_percentage, success_rate, latency.",
		}, []string{"provider", "upstream", "rule"}),
	}
	reg.MustRegister(m.ejections)
	return m
}

// forget drops the series matching l (Metrics.Forget).
func (m *outlierMetrics) forget(l prometheus.Labels) {
	m.ejections.DeletePartialMatch(l)
}
