package provider

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/clientbody"
)

// Active health checks (block health_check): every upstream of a provider
// is sent a GET of its base path joined with the check's path, every
// interval give or take 10%. A passing probe during a cooldown ends the
// cooldown early, so recovery trials need not wait for it to run out nor
// recovery for user traffic; a failing probe while closed counts as a
// failure. Probes are not user requests: they are counted only in
// healproxy_health_checks_total.
//
// The loop (run) only schedules; tick does one upstream's check, so that
// tests can drive checks one at a time.

const (
	checkJitter    = 0.1 // ± share of the interval
	checkUserAgent = "healproxy-health-check"
)

// checker runs the active health checks of one provider.
type checker struct {
	p      *Provider
	cfg    config.HealthCheck
	path   string // escaped path of the check, starting with "/"
	query  string // the check path's own query, if any
	expect map[int]bool
	rt     http.RoundTripper
	log    *slog.Logger
	rand   func() float64 // in [0, 1): the first probe's offset and the jitter

	ups []*checkedUpstream

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the loop and the probes in flight
}

// checkedUpstream is what the checker keeps per upstream.
type checkedUpstream struct {
	u          *Upstream
	pass, fail prometheus.Counter // nil without metrics
	inflight   atomic.Bool        // a probe is running: the loop skips it
	failing    atomic.Int32       // 0 unknown, 1 passing, 2 failing: logged on change
}

// newChecker probes every upstream of p with cfg through rt (the provider
// transport's base), sending p's configured headers, which are secrets and
// never logged. cfg is normalized (config.Normalize).
func newChecker(p *Provider, cfg config.HealthCheck, rt http.RoundTripper, m *Metrics, logger *slog.Logger) *checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &checker{p: p, cfg: cfg, rt: rt, rand: rand.Float64, expect: map[int]bool{},
		log: logger.With(slog.String("provider", p.ID))}
	c.path, c.query = checkPath(cfg.Path)
	for _, code := range cfg.ExpectStatus {
		c.expect[code] = true
	}
	for _, u := range p.Upstreams {
		cu := &checkedUpstream{u: u}
		if m != nil && m.healthChecks != nil {
			cu.pass = m.healthChecks.WithLabelValues(p.ID, u.Display, "pass")
			cu.fail = m.healthChecks.WithLabelValues(p.ID, u.Display, "fail")
		}
		c.ups = append(c.ups, cu)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// checkPath splits the configured path into its escaped path, always
// starting with "/", and its query.
func checkPath(p string) (path, query string) {
	if p == "" {
		return "/", ""
	}
	if u, err := url.Parse(p); err == nil && u.Scheme == "" && u.Host == "" {
		path, query = u.EscapedPath(), u.RawQuery
	} else {
		path = (&url.URL{Path: p}).EscapedPath()
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return path, query
}

// start starts the loop; later calls do nothing, as does a call after stop.
func (c *checker) start() {
	c.startOnce.Do(func() {
		if c.ctx.Err() != nil || len(c.ups) == 0 {
			return
		}
		c.wg.Add(1)
		go c.run()
	})
}

// stop ends the loop and waits for it and any probe in flight. It may be
// called more than once, and without start.
func (c *checker) stop() {
	c.stopOnce.Do(func() {
		c.startOnce.Do(func() {}) // a start after stop does nothing
		c.cancel()
	})
	c.wg.Wait()
}

// run schedules the probes: each upstream first at a random offset within
// the first interval (so that upstreams and providers do not all fire at
// once), then every jittered interval. A probe runs on its own goroutine,
// so that a slow upstream does not delay the others; an upstream whose
// previous probe is still running skips its turn.
func (c *checker) run() {
	defer c.wg.Done()
	now := time.Now()
	next := make([]time.Time, len(c.ups))
	for i := range next {
		next[i] = now.Add(time.Duration(c.rand() * float64(c.cfg.Interval)))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		first := next[0]
		for _, t := range next[1:] {
			if t.Before(first) {
				first = t
			}
		}
		timer.Reset(time.Until(first))
		select {
		case <-c.ctx.Done():
			return
		case <-timer.C:
		}
		now = time.Now()
		for i, cu := range c.ups {
			if next[i].After(now) {
				continue
			}
			next[i] = now.Add(jitter(c.cfg.Interval, c.rand()))
			if !cu.inflight.CompareAndSwap(false, true) {
				continue
			}
			c.wg.Go(func() {
				defer cu.inflight.Store(false)
				c.tick(c.ctx, cu.u)
			})
		}
	}
}

// jitter is d changed by up to ±10%: r in [0, 1) maps to [0.9d, 1.1d).
func jitter(d time.Duration, r float64) time.Duration {
	return d + time.Duration((2*r-1)*checkJitter*float64(d))
}

// probe sends one health check to u: a GET of u's base path joined with
// the check's path, u's own query kept, within cfg.Timeout. ok says the
// answer's status was expected; otherwise f says why, in a message free
// of URLs (whose query strings may hold secrets), or is nil when the
// check could not be made for want of the proxy's own resources.
func (c *checker) probe(ctx context.Context, u *Upstream) (ok bool, f *breaker.Failure) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	target := u.targetURL(&url.URL{RawPath: c.path, RawQuery: c.query})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return false, &breaker.Failure{Kind: breaker.KindError, Message: "health check: invalid request"}
	}
	for k, v := range c.p.headers {
		req.Header[k] = v
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", checkUserAgent)
	}
	start := time.Now()
	resp, err := u.send(c.rt, req) // an injected fault (fault.go) fails the checks too
	latency := time.Since(start)
	if err != nil {
		if clientbody.LocalResource(err) {
			return false, nil // the proxy's own shortage: the check says nothing of u
		}
		kind, msg := c.p.classify(err, ctx)
		return false, &breaker.Failure{Kind: kind, Latency: latency, Message: "health check: " + msg}
	}
	drainBody(resp.Body)
	if c.expect[resp.StatusCode] {
		return true, nil
	}
	return false, &breaker.Failure{Kind: breaker.KindStatus, StatusCode: resp.StatusCode, Latency: latency,
		Message: "health check: upstream answered " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)}
}

// tick probes u once and records the result in u's health and in the
// metrics. A probe cut short by ctx (the checker stopping) counts for
// nothing.
func (c *checker) tick(ctx context.Context, u *Upstream) {
	ok, f := c.probe(ctx, u)
	if ctx.Err() != nil {
		return
	}
	if !ok && f == nil {
		c.log.Warn("health check not made: the proxy is out of connections or file descriptors",
			slog.String("upstream", u.Display))
		return
	}
	_, coolingBefore := u.Health.CooldownUntil()
	u.Health.Probe(ok, f)
	cu := c.upstream(u)
	if cu != nil {
		if ok && cu.pass != nil {
			cu.pass.Inc()
		} else if !ok && cu.fail != nil {
			cu.fail.Inc()
		}
	}
	log := c.log.With(slog.String("upstream", u.Display), slog.String("path", c.path))
	if !ok {
		log.Debug("health check failed", slog.String("kind", string(f.Kind)), slog.String("error", f.Message))
	}
	if _, cooling := u.Health.CooldownUntil(); ok && coolingBefore && !cooling {
		log.Info("health check passed: cooldown ended early, recovery trials decide")
	}
	if cu == nil {
		return
	}
	state := int32(1)
	if !ok {
		state = 2
	}
	if old := cu.failing.Swap(state); old != 0 && old != state {
		if ok {
			log.Info("health check passing again")
		} else {
			log.Info("health check failing", slog.String("kind", string(f.Kind)), slog.String("error", f.Message))
		}
	}
}

// upstream is u's checker state; nil for an upstream not of this provider.
func (c *checker) upstream(u *Upstream) *checkedUpstream {
	for _, cu := range c.ups {
		if cu.u == u {
			return cu
		}
	}
	return nil
}
