// Package healthcheck runs a provider's active health checks (block
// health_check; README and docs/behaviour.md): every upstream is sent a
// GET of its base path joined with the check's path, every interval give
// or take 10%. A passing probe during a cooldown ends the cooldown early,
// so recovery trials need not wait for it to run out nor recovery for
// user traffic; a failing probe while closed counts as a failure. Probes
// are not user requests: they are counted only in the counters a Target
// brings (healproxy_health_checks_total).
//
// The checker knows an upstream only as a Target: how to address and
// send a probe, its health entry and its counters. The loop (Start)
// only schedules; Check does one upstream's check, so that tests can
// drive checks one at a time.
package healthcheck

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
)

const (
	checkJitter = 0.1 // ± share of the interval
	// UserAgent is the probes' User-Agent unless the headers set one.
	UserAgent = "healproxy-health-check"
)

// Health is the part of an upstream's health entry (*breaker.Entry) a
// check reads and feeds.
type Health interface {
	CooldownUntil() (time.Time, bool)
	Probe(ok bool, f *breaker.Failure)
}

// Counter counts checks (a prometheus.Counter).
type Counter interface{ Inc() }

// Target is one upstream as the checker sees it.
type Target struct {
	// Name is the upstream's display URL, free of secrets: for logs.
	Name string
	// URL is the probe's URL: the upstream's base path joined with path
	// (escaped, starting with "/"), the upstream's own query kept, and
	// query added.
	URL func(path, query string) *url.URL
	// Send sends a probe as an attempt is sent (an injected fault fails
	// it too).
	Send func(*http.Request) (*http.Response, error)
	// Health is the upstream's health entry.
	Health Health
	// Pass and Fail count the checks made; nil counts nothing.
	Pass, Fail Counter
}

// Options are what the checker needs from its provider besides targets.
type Options struct {
	// Header is sent with every probe; its values are secrets, never
	// logged.
	Header http.Header
	// Classify gives a failed probe's error its kind and a message free
	// of URLs (whose query strings may hold secrets); ctx is the probe's.
	Classify func(err error, ctx context.Context) (breaker.Kind, string)
	// LocalResource says whether err is the proxy's own shortage (no
	// descriptor, buffer or port): such a check says nothing of the
	// upstream and is not counted. Nil: none is.
	LocalResource func(err error) bool
	// Logger logs the changes of a check's result; nil discards.
	Logger *slog.Logger
}

// Checker runs the active health checks of one provider.
type Checker struct {
	cfg    config.HealthCheck
	opt    Options
	path   string // escaped path of the check, starting with "/"
	query  string // the check path's own query, if any
	expect map[int]bool
	log    *slog.Logger
	rand   func() float64 // in [0, 1): the first probe's offset and the jitter

	ups []*checked

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the loop and the probes in flight
}

// checked is what the checker keeps per target.
type checked struct {
	Target
	inflight atomic.Bool  // a probe is running: the loop skips it
	failing  atomic.Int32 // 0 unknown, 1 passing, 2 failing: logged on change
}

// New makes a checker that probes targets with cfg, which is normalized
// (config.Normalize). It does not start (Start).
func New(cfg config.HealthCheck, targets []Target, opt Options) *Checker {
	c := &Checker{cfg: cfg, opt: opt, rand: rand.Float64, expect: map[int]bool{}, log: opt.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.opt.LocalResource == nil {
		c.opt.LocalResource = func(error) bool { return false }
	}
	c.path, c.query = checkPath(cfg.Path)
	for _, code := range cfg.ExpectStatus {
		c.expect[code] = true
	}
	for _, t := range targets {
		c.ups = append(c.ups, &checked{Target: t})
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

// Start starts the loop; later calls do nothing, as does a call after Stop.
func (c *Checker) Start() {
	c.startOnce.Do(func() {
		if c.ctx.Err() != nil || len(c.ups) == 0 {
			return
		}
		c.wg.Add(1)
		go c.run()
	})
}

// Stop ends the loop and waits for it and any probe in flight. It may be
// called more than once, and without Start.
func (c *Checker) Stop() {
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
func (c *Checker) run() {
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
				c.check(c.ctx, cu)
			})
		}
	}
}

// jitter is d changed by up to ±10%: r in [0, 1) maps to [0.9d, 1.1d).
func jitter(d time.Duration, r float64) time.Duration {
	return d + time.Duration((2*r-1)*checkJitter*float64(d))
}

// Probe sends one health check to target i (in New's order) and records
// nothing: a GET of its URL within cfg.Timeout. ok says the answer's
// status was expected; otherwise f says why, in a message free of URLs,
// or is nil when the check could not be made for want of the proxy's own
// resources (or i is not a target).
func (c *Checker) Probe(ctx context.Context, i int) (ok bool, f *breaker.Failure) {
	if i < 0 || i >= len(c.ups) {
		return false, nil
	}
	return c.probe(ctx, c.ups[i])
}

func (c *Checker) probe(ctx context.Context, t *checked) (ok bool, f *breaker.Failure) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL(c.path, c.query).String(), nil)
	if err != nil {
		return false, &breaker.Failure{Kind: breaker.KindError, Message: "health check: invalid request"}
	}
	for k, v := range c.opt.Header {
		req.Header[k] = v
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	start := time.Now()
	resp, err := t.Send(req)
	latency := time.Since(start)
	if err != nil {
		if c.opt.LocalResource(err) {
			return false, nil // the proxy's own shortage: the check says nothing of the upstream
		}
		kind, msg := breaker.KindError, "request failed"
		if c.opt.Classify != nil {
			kind, msg = c.opt.Classify(err, ctx)
		}
		return false, &breaker.Failure{Kind: kind, Latency: latency, Message: "health check: " + msg}
	}
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	if c.expect[resp.StatusCode] {
		return true, nil
	}
	return false, &breaker.Failure{Kind: breaker.KindStatus, StatusCode: resp.StatusCode, Latency: latency,
		Message: "health check: upstream answered " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)}
}

// Check probes target i (in New's order) once and records the result in
// its health and counters. A probe cut short by ctx (the checker
// stopping) counts for nothing.
func (c *Checker) Check(ctx context.Context, i int) {
	if i < 0 || i >= len(c.ups) {
		return
	}
	c.check(ctx, c.ups[i])
}

func (c *Checker) check(ctx context.Context, t *checked) {
	ok, f := c.probe(ctx, t)
	if ctx.Err() != nil {
		return
	}
	if !ok && f == nil {
		c.log.Warn("health check not made: the proxy is out of connections or file descriptors",
			slog.String("upstream", t.Name))
		return
	}
	_, coolingBefore := t.Health.CooldownUntil()
	t.Health.Probe(ok, f)
	if ok && t.Pass != nil {
		t.Pass.Inc()
	} else if !ok && t.Fail != nil {
		t.Fail.Inc()
	}
	log := c.log.With(slog.String("upstream", t.Name), slog.String("path", c.path))
	if !ok {
		log.Debug("health check failed", slog.String("kind", string(f.Kind)), slog.String("error", f.Message))
	}
	if _, cooling := t.Health.CooldownUntil(); ok && coolingBefore && !cooling {
		log.Info("health check passed: cooldown ended early, recovery trials decide")
	}
	state := int32(1)
	if !ok {
		state = 2
	}
	if old := t.failing.Swap(state); old != 0 && old != state {
		if ok {
			log.Info("health check passing again")
		} else {
			log.Info("health check failing", slog.String("kind", string(f.Kind)), slog.String("error", f.Message))
		}
	}
}
