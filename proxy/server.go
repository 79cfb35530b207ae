// Package proxy is healproxy's HTTP side: the chi router, the provider
// reverse proxy with health-aware upstream selection and failover, the
// model endpoints, the diagnostics and admin API, and metrics.
//
// A Server holds one registry of health: a breaker.Entry per provider
// upstream and per model. Diagnostics, metrics and logs all read those
// entries; none keeps a copy.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/healproxy/healproxy/alert"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/cluster"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/feed"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/tracing"
	"github.com/healproxy/healproxy/llm"
	"github.com/healproxy/healproxy/provider"
	"github.com/healproxy/healproxy/store"
	"github.com/healproxy/healproxy/supervisor"
)

// Kinds of health entries, as in diagnostics and metrics labels.
const (
	KindProvider = "provider"
	KindModel    = "model"
)

// Change is one status change of a health entry.
type Change struct {
	Kind     string // KindProvider or KindModel
	Key      string // provider id or model key
	Upstream string // the upstream's display URL, for providers
	From, To breaker.Status
	entry    *breaker.Entry
}

// Options for New.
type Options struct {
	// Logger receives the server's logs. nil means slog.Default().
	Logger *slog.Logger
	// Transport sends provider requests. nil means a tuned clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// PluginEnv adds KEY=VALUE pairs to the environment of plugin processes.
	PluginEnv []string
	// ConfigSource re-reads the configuration for ReloadConfig (SIGHUP,
	// POST /api/admin/reload). nil: reloads are refused.
	ConfigSource ConfigSource
	// Tracer traces client requests, upstream attempts and plugin calls
	// (internal/tracing); nil: tracing off, at no cost.
	Tracer *tracing.Tracer
}

// Server is a running healproxy: router, providers, models and health.
// Create it with New, serve Handler, and call Close when done.
type Server struct {
	log       *slog.Logger
	transport http.RoundTripper
	h1        *h1.Pools // the lean client for plain-HTTP GET and HEAD; nil with Options.Transport
	metrics   *metrics
	events    *feed.Hub
	timeline  feed.Marks // each entry's recent marks (timeline.go)
	audit     feed.Audit
	alerts    atomic.Pointer[alert.Notifier]
	reloadMu  sync.Mutex   // one reload at a time
	retiring  sync.Map     // *Model → struct{}: removed by a reload, stopping once idle
	store     *store.Store // nil: no persistence
	restoring atomic.Bool  // status changes now come from the state file
	router    chi.Router
	llm       *llm.Gateway        // the models served over HTTP (endpoints.go)
	reinits   *supervisor.Limiter // max_concurrent_reinit, shared by the models' reinits
	state     atomic.Pointer[state]
	opts      Options

	replica      string           // this replica's id (cluster.go)
	cluster      *cluster.Cluster // nil: health not shared
	clusterState atomic.Pointer[state]

	stop chan struct{}
	done chan struct{}
}

// state is what a config produces; a reload swaps it whole.
type state struct {
	cfg          *config.Config
	providers    map[string]*provider.Provider
	providerList []*provider.Provider
	models       map[string]*Model
	modelList    []*Model
}

// New builds a Server for cfg, which must be valid and normalized
// (config.Load, or config.Normalize for a Config built by hand).
// Models start in the background: a model whose plugin cannot start is
// reported unavailable and does not fail New.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("proxy: nil config")
	}
	if err := cfg.CheckNormalized(); err != nil {
		return nil, err
	}
	s := &Server{
		log:       opts.Logger,
		transport: opts.Transport,
		opts:      opts,
		events:    feed.NewHub(),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.transport == nil {
		s.transport = newTransport()
		s.h1 = h1.NewPools()
	}
	s.metrics = newMetrics(s)
	s.llm = s.newGateway(cfg)
	s.reinits = supervisor.NewLimiter(cfg.Health.MaxConcurrentReinit)
	s.alerts.Store(alert.New(cfg.Alerts, alert.Options{Logger: s.log}))
	s.openStore(cfg.StatePath)
	st := &state{cfg: cfg, providers: map[string]*provider.Provider{}, models: map[string]*Model{}}
	for _, pc := range cfg.Providers {
		p := provider.New(pc, s.transport, s.providerHooks(), s.metrics.providers, s.log, nil)
		s.attachLean(p)
		st.providers[p.ID] = p
		st.providerList = append(st.providerList, p)
	}
	for _, mc := range pluginModels(cfg.Models) {
		m := newModel(mc, s)
		st.models[m.Key] = m
		st.modelList = append(st.modelList, m)
	}
	s.restore(st)
	s.state.Store(st)
	s.startCluster(cfg, st) // cluster.go: before serving, pull the replicas' shared state
	s.router = s.routes()
	for _, m := range st.modelList {
		m.Start()
	}
	for _, p := range st.providerList {
		p.StartChecks()
	}
	go s.pollLoop()
	return s, nil
}

// newTransport is http.DefaultTransport tuned for a proxy: more idle
// connections per host (the default of 2 makes a busy proxy redial), and
// bounded dial and TLS handshake times.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.MaxResponseHeaderBytes = 1 << 20 // as http.Server's request limit; the default is 10 MiB
	t.ExpectContinueTimeout = time.Second
	t.Proxy = nil // never route provider traffic through an environment proxy
	// Pass the client's Accept-Encoding through, as nginx and Caddy do,
	// rather than ask for gzip and decompress (the lean client does the same).
	t.DisableCompression = true
	return t
}

// attachLean gives p's plain-HTTP upstreams the lean client's pool for
// their host (see internal/h1).
func (s *Server) attachLean(p *provider.Provider) {
	if s.h1 != nil {
		p.UseLean(s.h1)
	}
	p.UseTracer(s.opts.Tracer)
}

// providerHooks forward the providers' status changes to s.
func (s *Server) providerHooks() provider.Hooks {
	return provider.Hooks{Changed: func(id, upstream string, e *breaker.Entry, from, to breaker.Status) {
		s.changed(Change{Kind: KindProvider, Key: id, Upstream: upstream, From: from, To: to, entry: e})
	}}
}

// ServeHTTP serves every endpoint of healproxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// BeginShutdown ends the long-lived event streams, so that an
// http.Server's Shutdown need not wait for them; register it with
// http.Server.RegisterOnShutdown.
func (s *Server) BeginShutdown() { s.events.Close() }

// Close stops background work and every plugin process. ctx bounds it.
func (s *Server) Close(ctx context.Context) error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.events.Close()
	st := s.state.Load()
	for _, p := range st.providerList {
		p.StopChecks()
	}
	defer s.h1.Close()
	var wg sync.WaitGroup
	for _, m := range st.modelList {
		wg.Go(m.Close)
	}
	s.retiring.Range(func(k, _ any) bool {
		wg.Go(k.(*Model).Close)
		return true
	})
	wg.Wait()
	if t, ok := s.transport.(interface{ CloseIdleConnections() }); ok && s.opts.Transport == nil {
		t.CloseIdleConnections() // ours, and nothing will send on its keep-alive connections again
	}
	s.llm.Close()
	s.closeCluster(ctx)
	s.saveState()
	if err := s.store.Close(); err != nil {
		s.log.Warn("closing the state store", "error", err)
	}
	if err := s.alerts.Load().Close(ctx); err != nil {
		s.log.Warn("alerts still queued at shutdown were dropped", "error", err)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pollLoop notices status changes that time alone makes (a cooldown that
// ends), so logs and metrics see them without waiting for a request, and
// saves the health state when it changed.
func (s *Server) pollLoop() {
	defer close(s.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			st := s.state.Load()
			for _, p := range st.providerList {
				for _, u := range p.Upstreams {
					u.Health.Poll()
				}
			}
			for _, m := range st.modelList {
				m.Health.Poll()
			}
			s.syncClusterMembers(st) // after a reload
			s.saveState()
		}
	}
}

// changed is called by every health entry on a status change.
func (s *Server) changed(c Change) {
	s.metrics.transitions.WithLabelValues(c.Kind, c.Key, c.Upstream, c.From.String(), c.To.String()).Inc()
	snap := c.entry.Snapshot()
	attrs := []any{slog.String("kind", c.Kind), slog.String("key", c.Key)}
	if c.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", c.Upstream))
	}
	attrs = append(attrs, slog.String("from", c.From.String()), slog.String("to", c.To.String()),
		slog.Int64("error_count", snap.ErrorCount), slog.String("reason", snap.Reason))
	if snap.LastErrorMessage != "" && c.To > breaker.Healthy {
		attrs = append(attrs, slog.String("last_error", snap.LastErrorMessage))
	}
	level := slog.LevelInfo
	if c.To == breaker.Unavailable {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "health status changed", attrs...)
	s.noteChange(c, snap.Reason)
	s.publishChange(c)
	if t := alert.TypeOf(c.From.String(), c.To.String()); t != "" && s.restoring.Load() {
		// Restored from the state file: reported before the restart.
		s.alerts.Load().Seed(c.Kind, c.Key, c.Upstream, t)
	} else if t != "" {
		s.alerts.Load().Notify(alert.Event{Type: t, Kind: c.Kind, Key: c.Key, Upstream: c.Upstream,
			From: c.From.String(), To: c.To.String(), Reason: snap.Reason, Message: snap.LastErrorMessage})
	}
}
