package provider

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/balance"
	"github.com/healproxy/healproxy/internal/clientbody"
	"github.com/healproxy/healproxy/internal/coalesce"
	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/healthcheck"
	"github.com/healproxy/healproxy/internal/provpath"
	"github.com/healproxy/healproxy/internal/redact"
	"github.com/healproxy/healproxy/internal/retry"
	"github.com/healproxy/healproxy/internal/stalecache"
	"github.com/healproxy/healproxy/internal/tracing"
)

// Provider is one configured upstream API and its pool of equivalent
// upstreams. It is immutable after New except for health, which
// lives in each Upstream's breaker entry.
type Provider struct {
	ID, Name  string
	Upstreams []*Upstream
	cfg       config.Provider
	timeout   time.Duration // until the answer starts (send)
	// idleTimeout bounds the silence between reads of an answer's body
	// once it started, maxDuration the whole answer (0: none): boundBody.
	idleTimeout, maxDuration time.Duration
	headers                  http.Header // injected; values are secrets
	rp                       *httputil.ReverseProxy
	rr                       atomic.Uint32 // round-robin cursor
	m                        *Metrics
	tracer                   *tracing.Tracer // nil: tracing off (UseTracer)

	// resilience settings (README, "Resilience settings (per provider)")
	retry        *retry.Policy
	observe      bool          // mode "observe": never block a request
	slowCall     time.Duration // 0: off
	maxPause     time.Duration // cap of a rate-limit pause
	cache        *stalecache.Cache
	allDownOrder []string
	allDownWait  time.Duration
	lastResort   *Upstream            // nil: none; not among Upstreams
	checker      *healthcheck.Checker // nil: no active health checks
	hedge        *hedger              // nil: no hedging (hedge.go)
	coalesce     *coalesce.Handler    // nil: no coalescing (coalesce.go)

	// secrets are the values this provider must never show: its upstreams'
	// query strings and values, its injected header values; scrubbed from
	// every error message (Provider.classify) and URL header it answers.
	secrets *redact.Scrubber

	outlier    *outlierDetector // nil: no outlier detection (outlier.go)
	balancer   *balancer        // nil: plain round robin (balance.go)
	quotaClock func() time.Time // nil: no quota block (quota.go)
}

// Hooks tell the server what happens to a provider's upstreams.
type Hooks struct {
	// Changed is called on every status change of the health entry e of
	// provider id's upstream shown as upstream.
	Changed func(id, upstream string, e *breaker.Entry, from, to breaker.Status)
}

// Upstream is one endpoint of a provider with its own health.
type Upstream struct {
	provider *Provider
	target   *url.URL // scheme, host, base path and query of the endpoint
	basePath string   // target's escaped path without a trailing slash
	// Display is the URL without query string or user info: the form
	// shown in diagnostics, metrics and logs.
	Display string
	Health  *breaker.Entry
	metrics *upstreamMetrics
	drain   atomic.Pointer[DrainInfo]   // an operator's drain, see operator.go
	fault   atomic.Pointer[fault.Fault] // an injected fault, see fault.go
	fast    *h1.Pool                    // the lean client's pool for its host; nil: http.Transport only
	outlier *outlierRecorder            // this interval's results for outlier detection; nil: off (outlier.go)
	ewma    *balance.EWMA               // latency estimate; nil unless least_latency (balance.go)
	quota   *upstreamQuota              // announced quota; nil unless a quota block (quota.go)
}

// New builds a provider. An upstream found in keep (by its full
// URL) keeps its health entry, metrics and drain: a reload that changes a
// provider's other upstreams or settings does not reset it.
func New(pc config.Provider, base http.RoundTripper, hooks Hooks, m *Metrics, errLog *slog.Logger, keep map[string]*Upstream) *Provider {
	p := &Provider{
		cfg:          pc,
		ID:           pc.ID,
		Name:         pc.Name,
		timeout:      pc.Timeout,
		idleTimeout:  pc.IdleTimeout,
		maxDuration:  pc.MaxDuration,
		headers:      make(http.Header, len(pc.Headers)),
		m:            m,
		retry:        retry.NewPolicy(pc.Retry),
		observe:      pc.Mode == config.ModeObserve,
		slowCall:     pc.SlowCallThreshold,
		maxPause:     pc.MaxRateLimitPause,
		allDownOrder: pc.AllDown.Order,
		allDownWait:  pc.AllDown.Wait,
	}
	if pc.Cache != nil {
		p.cache = stalecache.New(*pc.Cache, p.headers) // our own API key does not make an answer private
	}
	for k, v := range pc.Headers {
		if v != "" { // an unset env("…") secret sends no header rather than an empty one
			p.headers.Set(k, v)
		}
	}
	for _, u := range pc.Upstreams {
		up := newUpstream(p, u)
		if old := keep[u.String()]; old != nil {
			up.Health, up.metrics = old.Health, old.metrics
			up.drain.Store(old.drain.Load())
			up.fault.Store(old.fault.Load())
			up.Health.SetSettings(providerSettings(pc))
			p.Upstreams = append(p.Upstreams, up)
			continue
		}
		up.Health = breaker.New("provider/"+pc.ID+"/"+up.Display, providerSettings(pc), breaker.Options{
			OnChange: func(_ *breaker.Entry, from, to breaker.Status) {
				if hooks.Changed != nil {
					hooks.Changed(p.ID, up.Display, up.Health, from, to)
				}
			},
		})
		up.metrics = m.forUpstream(p.ID, up.Display)
		p.Upstreams = append(p.Upstreams, up)
	}
	p.initBalance(pc, keep)
	p.initQuota(pc)
	if lr := pc.AllDown.LastResort; lr != nil {
		up := newUpstream(p, lr)
		up.Health = breaker.New("provider/"+pc.ID+"/last-resort", breaker.SettingsOf(pc.Health), breaker.Options{})
		up.metrics = m.forUpstream(p.ID, "last_resort "+up.Display)
		p.lastResort = up
	}
	var secrets []string
	for _, u := range append(p.Upstreams, p.lastResort) {
		if u != nil {
			secrets = append(secrets, redact.ForURL(u.target, false)...)
		}
	}
	for _, vs := range p.headers {
		secrets = append(secrets, vs...)
	}
	p.secrets = redact.New(secrets...)
	if pc.HealthCheck != nil {
		p.checker = newChecker(p, *pc.HealthCheck, base, m, errLog)
	}
	p.outlier = newOutlierDetector(p, pc.OutlierDetection, m, errLog)
	if pc.Hedge != nil {
		p.hedge = newHedger(pc.ID, *pc.Hedge, m)
	}
	if pc.Coalesce {
		p.coalesce = newCoalescer(p, m)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &providerTransport{p: p, base: base},
		BufferPool:     BufferPool,
		ErrorHandler:   p.proxyError,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       slog.NewLogLogger(errLog.Handler(), slog.LevelWarn),
	}
	return p
}

// newUpstream is the endpoint u of p, before its health and metrics.
func newUpstream(p *Provider, u *url.URL) *Upstream {
	return &Upstream{provider: p, target: u, Display: redact.URL(u), basePath: strings.TrimSuffix(u.EscapedPath(), "/")}
}

// providerSettings are a provider's breaker settings: its health block,
// and observe mode.
func providerSettings(pc config.Provider) breaker.Settings {
	s := breaker.SettingsOf(pc.Health)
	s.Observe = pc.Mode == config.ModeObserve
	return s
}

// rewrite prepares the outgoing request. The upstream itself (scheme, host,
// base path) is chosen per attempt by providerTransport; here the URL keeps
// only the part after /providers/{id}, already checked by provpath.Rest.
func (p *Provider) rewrite(pr *httputil.ProxyRequest) {
	rest, _ := provpath.Rest(pr.In, p.ID)
	out := pr.Out.URL
	out.Scheme, out.Host, out.User = "", "", nil
	out.RawPath = rest
	out.Path, _ = url.PathUnescape(rest)
	pr.Out.Host = "" // the Host header is the upstream's, never the client's
	// X-Forwarded-For: the client's, with its address appended (as Envoy and nginx do).
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	for k, v := range p.headers {
		pr.Out.Header[k] = v
	}
}

// modifyResponse cleans the upstream's answer before it goes to the
// client:
//   - URLs in Location, Content-Location, Link and Refresh lose the
//     upstream's own query parameters (they may hold its API key) and
//     every other secret of the provider, on any host and scheme; those
//     that point into an upstream's base path are mapped back to this
//     provider's path, so that a redirect or a next-page link stays on
//     the proxy;
//   - CORS headers (Access-Control-*) pass only as the provider's cors
//     setting allows, so that no page of another site can read answers
//     made with the proxy's keys because an upstream allows "*".
func (p *Provider) modifyResponse(resp *http.Response) error {
	cors := 0 // 1: the client's Origin may read answers; -1: it may not
	for k, vs := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			if cors == 0 {
				cors = -1
				if resp.Request != nil && p.cfg.CORS.Allows(resp.Request.Header.Get("Origin")) {
					cors = 1
				}
			}
			if cors < 0 {
				delete(resp.Header, k)
			}
			continue
		}
		switch k {
		case "Location", "Content-Location":
			for i, v := range vs {
				vs[i] = p.secrets.Scrub(provpath.ClientURL(v, resp.Request, p.ID, p.upstreamBases))
			}
		case "Link":
			for i, v := range vs {
				vs[i] = p.secrets.Scrub(provpath.ClientLinks(v, resp.Request, p.ID, p.upstreamBases))
			}
		case "Refresh":
			for i, v := range vs {
				vs[i] = p.secrets.Scrub(v)
			}
		}
	}
	if cors != 0 && p.cfg.CORS != nil {
		resp.Header.Add("Vary", "Origin") // the answer's headers depend on the client's Origin
	}
	return nil
}

// upstreamBases yields p's upstreams, then its last resort, as
// provpath.Upstreams.
func (p *Provider) upstreamBases(yield func(*url.URL, string) bool) {
	for _, u := range p.Upstreams {
		if !yield(u.target, u.basePath) {
			return
		}
	}
	if u := p.lastResort; u != nil {
		yield(u.target, u.basePath)
	}
}

// targetURL is the upstream URL for an escaped rest path: the upstream's
// base path joined with rest, and the upstream's own query (if any) joined
// with the client's.
func (u *Upstream) targetURL(in *url.URL) *url.URL {
	t := u.target
	out := &url.URL{Scheme: t.Scheme, Host: t.Host, User: t.User}
	out.RawPath = u.basePath + in.RawPath
	out.Path, _ = url.PathUnescape(out.RawPath)
	if out.RawPath == out.Path {
		out.RawPath = ""
	}
	switch {
	case t.RawQuery == "":
		out.RawQuery = in.RawQuery
	case in.RawQuery == "":
		out.RawQuery = t.RawQuery
	default:
		out.RawQuery = t.RawQuery + "&" + in.RawQuery
	}
	return out
}

// h1Target is targetURL's request target in pieces, for the lean client.
func (u *Upstream) h1Target(in *url.URL) h1.Target {
	t := u.target
	tg := h1.Target{Path: u.basePath, Rest: in.RawPath, Query: t.RawQuery, Query2: in.RawQuery}
	if tg.Query == "" {
		tg.Query, tg.Query2 = tg.Query2, ""
	}
	return tg
}

// Available is what selection asks: may this upstream be sent a request?
func (u *Upstream) Available() bool {
	return u.Health.Status() != breaker.Unavailable && (u.drain.Load() == nil || u.Drained(time.Now()) == nil)
}

// BufferPool lends ReverseProxy its copy buffers instead of a new 32 KiB
// one per request.
// Buffers are pooled as array pointers so that Put does not allocate.
var BufferPool = &syncBufferPool{pool: sync.Pool{New: func() any { return new([bufSize]byte) }}}

const bufSize = 32 * 1024

type syncBufferPool struct{ pool sync.Pool }

func (b *syncBufferPool) Get() []byte { return b.pool.Get().(*[bufSize]byte)[:] }

func (b *syncBufferPool) Put(p []byte) {
	if cap(p) >= bufSize {
		b.pool.Put((*[bufSize]byte)(p[:bufSize]))
	}
}

// Interface guards
var _ httputil.BufferPool = (*syncBufferPool)(nil)

// ServeHTTP proxies a request for /providers/{id}/{rest} to an upstream
// of p (the router has found p by its id).
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.coalesce != nil { // identical requests share an exchange (coalesce.go)
		p.coalesce.ServeHTTP(w, r)
		return
	}
	p.serve(w, r)
}

// serve is ServeHTTP for one request's own exchange.
func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	id := p.ID
	if _, ok := provpath.Rest(r, id); !ok {
		api.WriteJSON(w, http.StatusBadRequest, api.ErrorBody{Status: "error", ProviderID: id,
			Error: "path must not hold dot segments, encoded slashes or backslashes"})
		return
	}
	switch r.Method {
	case http.MethodConnect: // a tunnel through the proxy to the upstream's host: never
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		api.WriteJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Status: "error", ProviderID: id,
			Error: "method CONNECT is not forwarded to providers"})
		return
	case http.MethodTrace:
		// An upstream that echoes TRACE would show the client the headers
		// the proxy injects (its API keys).
		if !p.cfg.AllowTrace {
			api.WriteJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Status: "error", ProviderID: id,
				Error: "method TRACE is not forwarded to provider " + strconv.Quote(id) + " (allow_trace is off)"})
			return
		}
	}
	if !p.available() && !p.hasAllDownFallback() {
		writeCooldown(w, p, p.CooldownRemaining())
		return
	}
	if limit := p.cfg.MaxRequestBody; limit > 0 {
		if r.ContentLength > limit {
			p.m.notUpstream.WithLabelValues(p.ID, CauseBodyTooLarge).Inc()
			writeBodyTooLarge(w, p)
			return
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit) // chunked: counted as it streams
		}
	}
	r = clientbody.Wrap(w, r) // tells the client's faults from the upstream's (internal/clientbody)
	// A client that stops reading must not hold this goroutine (and the
	// upstream connection) forever: the answer has as long as every
	// attempt may take, plus a margin for a slow link, and each write
	// that goes through gives a streamed answer that long again.
	dw := &deadlineWriter{ResponseWriter: w, rc: *http.NewResponseController(w), budget: p.writeBudget()}
	dw.extend(time.Now())
	p.rp.ServeHTTP(dw, r)
}

// deadlineWriter keeps a response's write deadline budget ahead of its
// last successful write, so that a long answer that keeps flowing (a
// stream) is never cut while a client that stops reading still is, within
// the budget. The deadline moves at most every budget/4, not on every
// write.
type deadlineWriter struct {
	http.ResponseWriter
	rc     http.ResponseController // a copy: no allocation of its own
	budget time.Duration
	next   time.Time // when to move the deadline again
}

func (w *deadlineWriter) extend(now time.Time) {
	_ = w.rc.SetWriteDeadline(now.Add(w.budget))
	w.next = now.Add(w.budget / 4)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	if err == nil {
		if now := time.Now(); now.After(w.next) {
			w.extend(now)
		}
	}
	return n, err
}

// Unwrap gives http.ResponseController (flushes, hijacks) the writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Config is the configuration p was built from.
func (p *Provider) Config() config.Provider { return p.cfg }

// Timeout bounds one attempt (the provider's timeout setting).
func (p *Provider) Timeout() time.Duration { return p.timeout }

// UpdateHealth applies the health block of pc, a configuration that
// differs from p's only there, to p's upstreams in place: their state is
// kept. Only a reload calls it, one at a time.
func (p *Provider) UpdateHealth(pc config.Provider) {
	for _, u := range p.Upstreams {
		u.Health.SetSettings(providerSettings(pc))
	}
	p.cfg.Health = pc.Health
}

// Target is u's full URL, which may hold a secret in its query string:
// to tell upstreams apart, never to show.
func (u *Upstream) Target() string { return u.target.String() }

// UseTracer makes p trace its attempts with tr (nil: off).
func (p *Provider) UseTracer(tr *tracing.Tracer) { p.tracer = tr }

// UseLean gives p's plain-HTTP upstreams the lean client's pool for
// their host (see internal/h1): their GET and HEAD requests go through it.
func (p *Provider) UseLean(pools *h1.Pools) {
	for _, u := range append(p.Upstreams, p.lastResort) {
		if u != nil {
			u.fast = pools.Pool(u.target.Scheme, u.target.Host)
		}
	}
}
