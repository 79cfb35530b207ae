package provider

import (
	"log/slog"
	"net/http"
	"net/url"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/clientbody"
	"github.com/healproxy/healproxy/internal/healthcheck"
)

// newChecker makes the active health checker of p (internal/healthcheck),
// cfg normalized: it probes every upstream of p, in order, through rt
// (the provider transport's base) and u.send, so that an injected fault
// fails the checks too, with p's configured headers, which are secrets
// and never logged; it counts the checks in m.
func newChecker(p *Provider, cfg config.HealthCheck, rt http.RoundTripper, m *Metrics, logger *slog.Logger) *healthcheck.Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	targets := make([]healthcheck.Target, 0, len(p.Upstreams))
	for _, u := range p.Upstreams {
		t := healthcheck.Target{
			Name: u.Display,
			URL: func(path, query string) *url.URL {
				return u.targetURL(&url.URL{RawPath: path, RawQuery: query})
			},
			Send:   func(req *http.Request) (*http.Response, error) { return u.send(rt, req) },
			Health: u.Health,
		}
		if m != nil && m.healthChecks != nil {
			t.Pass = m.healthChecks.WithLabelValues(p.ID, u.Display, "pass")
			t.Fail = m.healthChecks.WithLabelValues(p.ID, u.Display, "fail")
		}
		targets = append(targets, t)
	}
	return healthcheck.New(cfg, targets, healthcheck.Options{
		Header:        p.headers,
		Classify:      p.classify,
		LocalResource: clientbody.LocalResource,
		Logger:        logger.With(slog.String("provider", p.ID)),
	})
}
