package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
)

// Provider is one configured upstream API and its pool of equivalent
// upstreams. It is immutable after newProvider except for health, which
// lives in each Upstream's breaker entry.
type Provider struct {
	ID, Name  string
	Upstreams []*Upstream
	cfg       config.Provider
	timeout   time.Duration
	headers   http.Header // injected; values are secrets
	rp        *httputil.ReverseProxy
	rr        atomic.Uint32 // round-robin cursor
	m         *metrics

	// resilience settings (CONTRACT beyond section 4; see README)
	retry        *retryPolicy
	observe      bool          // mode "observe": never block a request
	slowCall     time.Duration // 0: off
	maxPause     time.Duration // cap of a rate-limit pause
	cache        *staleCache   // nil: none
	allDownOrder []string
	allDownWait  time.Duration
	lastResort   *Upstream // nil: none; not among Upstreams
	checker      *checker  // nil: no active health checks
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
	drain   atomic.Pointer[drain] // an operator's drain, see operator.go
	fault   atomic.Pointer[fault] // an injected fault, see fault.go
	fast    *h1Pool               // the lean client's pool for its host; nil: http.Transport only
}

// newProvider builds a provider. An upstream found in keep (by its full
// URL) keeps its health entry, metrics and drain: a reload that changes a
// provider's other upstreams or settings does not reset it.
func newProvider(pc config.Provider, base http.RoundTripper, hooks entryHooks, m *metrics, errLog *slog.Logger, keep map[string]*Upstream) *Provider {
	p := &Provider{
		cfg:          pc,
		ID:           pc.ID,
		Name:         pc.Name,
		timeout:      pc.Timeout,
		headers:      make(http.Header, len(pc.Headers)),
		m:            m,
		retry:        newRetryPolicy(pc.Retry, len(pc.Upstreams)),
		observe:      pc.Mode == config.ModeObserve,
		slowCall:     pc.SlowCallThreshold,
		maxPause:     pc.MaxRateLimitPause,
		allDownOrder: pc.AllDown.Order,
		allDownWait:  pc.AllDown.Wait,
	}
	if p.maxPause <= 0 {
		p.maxPause = 10 * time.Minute
	}
	if p.allDownOrder == nil {
		p.allDownOrder = []string{"stale", "last_resort", "wait", "fail"}
	}
	if pc.Cache != nil {
		p.cache = newStaleCache(*pc.Cache)
		p.cache.injected = p.headers // our own API key does not make an answer private
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
				hooks.changed(Change{Kind: KindProvider, Key: p.ID, Upstream: up.Display, From: from, To: to, entry: up.Health})
			},
		})
		up.metrics = m.forUpstream(p.ID, up.Display)
		p.Upstreams = append(p.Upstreams, up)
	}
	if lr := pc.AllDown.LastResort; lr != nil {
		up := newUpstream(p, lr)
		up.Health = breaker.New("provider/"+pc.ID+"/last-resort", settingsOf(pc.Health), breaker.Options{})
		up.metrics = m.forUpstream(p.ID, "last_resort "+up.Display)
		p.lastResort = up
	}
	if pc.HealthCheck != nil {
		p.checker = newChecker(p, *pc.HealthCheck, base, m, errLog)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &providerTransport{p: p, base: base},
		BufferPool:     bufferPool,
		ErrorHandler:   p.proxyError,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       slog.NewLogLogger(errLog.Handler(), slog.LevelWarn),
	}
	return p
}

// newUpstream is the endpoint u of p, before its health and metrics.
func newUpstream(p *Provider, u *url.URL) *Upstream {
	return &Upstream{provider: p, target: u, Display: redactURL(u), basePath: strings.TrimSuffix(u.EscapedPath(), "/")}
}

func settingsOf(h config.Health) breaker.Settings {
	return breaker.Settings{ErrorThreshold: h.ErrorThreshold, Cooldown: h.Cooldown, RecoveryCount: h.RecoveryCount,
		CooldownMultiplier: h.CooldownMultiplier, MaxCooldown: h.MaxCooldown, StablePeriod: h.StablePeriod}
}

// providerSettings are a provider's breaker settings: its health block,
// and observe mode.
func providerSettings(pc config.Provider) breaker.Settings {
	s := settingsOf(pc.Health)
	s.Observe = pc.Mode == config.ModeObserve
	return s
}

// redactURL drops the query string and user info, which may hold secrets.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	return c.String()
}

// rewrite prepares the outgoing request. The upstream itself (scheme, host,
// base path) is chosen per attempt by providerTransport; here the URL keeps
// only the part after /providers/{id}, already checked by restPath.
func (p *Provider) rewrite(pr *httputil.ProxyRequest) {
	rest, _ := restPath(pr.In, p.ID)
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

// modifyResponse maps an upstream's own URLs in Location and
// Content-Location (a redirect within its API) back to this provider's
// path, and drops the upstream's own query parameters from them: they
// would send the client around the proxy and may hold a secret (an API key
// in the upstream URL). URLs to other hosts are left as they are.
func (p *Provider) modifyResponse(resp *http.Response) error {
	for _, h := range [...]string{"Location", "Content-Location"} {
		if v := resp.Header.Get(h); v != "" {
			resp.Header.Set(h, p.clientURL(v, resp.Request))
		}
	}
	return nil
}

// clientURL rewrites one Location value, relative to the request it
// answers; a value that is not one of this provider's upstreams is kept.
func (p *Provider) clientURL(v string, req *http.Request) string {
	loc, err := url.Parse(v)
	if err != nil {
		return v
	}
	if req != nil && req.URL != nil {
		loc = req.URL.ResolveReference(loc)
	}
	for _, u := range append(p.Upstreams, p.lastResort) {
		if u == nil || !strings.EqualFold(loc.Host, u.target.Host) || loc.Scheme != u.target.Scheme {
			continue
		}
		q := loc.Query()
		secret := false
		for k := range u.target.Query() {
			secret = secret || q.Has(k)
			q.Del(k)
		}
		base := u.basePath
		rest, ok := strings.CutPrefix(loc.EscapedPath(), base)
		if !ok || (rest != "" && rest[0] != '/') {
			if !secret {
				return v // the upstream's host, outside its base path: not ours to map
			}
			loc.RawQuery = q.Encode()
			return loc.String()
		}
		out := &url.URL{Path: "/providers/" + p.ID}
		out.RawPath = out.Path + rest
		out.Path, _ = url.PathUnescape(out.RawPath)
		if out.RawPath == out.Path {
			out.RawPath = ""
		}
		out.RawQuery = q.Encode()
		out.Fragment = loc.Fragment
		return out.String()
	}
	return v
}

// restPath is the escaped path after /providers/{id}, starting with "/",
// and false when it could leave the upstream's base path: a "." or ".."
// segment (also percent-encoded), an encoded slash or backslash, a
// backslash, or a NUL.
func restPath(r *http.Request, id string) (string, bool) {
	esc := r.URL.EscapedPath()
	prefix := "/providers/" + id
	if !strings.HasPrefix(esc, prefix) {
		return "", false
	}
	rest := esc[len(prefix):]
	if rest == "" {
		return "/", true
	}
	if rest[0] != '/' {
		return "", false
	}
	if strings.ContainsAny(rest, "\\\x00") {
		return "", false
	}
	lower := strings.ToLower(rest)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%00") {
		return "", false
	}
	for seg := range strings.SplitSeq(rest[1:], "/") {
		if len(seg) > 6 { // the longest dot segment is "%2e%2e"
			continue
		}
		if s, err := url.PathUnescape(seg); err != nil || s == "." || s == ".." {
			return "", false
		}
	}
	return rest, true
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
func (u *Upstream) h1Target(in *url.URL) h1Target {
	t := u.target
	tg := h1Target{path: u.basePath, rest: in.RawPath, query: t.RawQuery, query2: in.RawQuery}
	if tg.query == "" {
		tg.query, tg.query2 = tg.query2, ""
	}
	return tg
}

// Available is what selection asks: may this upstream be sent a request?
func (u *Upstream) Available() bool {
	return u.Health.Status() != breaker.Unavailable && (u.drain.Load() == nil || u.drained(time.Now()) == nil)
}

// bufferPool lends ReverseProxy its copy buffers instead of a new 32 KiB
// one per request.
// Buffers are pooled as array pointers so that Put does not allocate.
var bufferPool = &syncBufferPool{pool: sync.Pool{New: func() any { return new([bufSize]byte) }}}

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
