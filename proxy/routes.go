package proxy

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/tracing"
	"github.com/healproxy/healproxy/web"
)

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))

	r.Get("/api/diagnostics/health", api.Serve(s.log, s.serveHealth))
	r.Get("/api/diagnostics/events", api.Serve(s.log, s.serveEvents))
	r.Get("/api/diagnostics/history", api.Serve(s.log, s.serveHistory))
	r.Get("/api/diagnostics/report", api.Serve(s.log, s.serveReport))
	r.Get("/api/diagnostics/alerts", api.Serve(s.log, s.serveAlerts))
	r.With(api.Admin(s.adminToken, s.log)).Post("/api/diagnostics/self-heal", api.Serve(s.log, s.serveSelfHeal))
	r.With(api.Admin(s.adminToken, s.log)).Post("/api/admin/providers/{id}/{action}", api.Serve(s.log, s.serveControl))
	r.With(api.Admin(s.adminToken, s.log)).Get("/api/admin/audit", api.Serve(s.log, s.serveAudit))
	r.With(api.Admin(s.adminToken, s.log)).Post("/api/admin/reload", api.Serve(s.log, s.serveReload))
	r.With(api.Admin(s.adminToken, s.log)).HandleFunc("/api/admin/fault", api.Serve(s.log, s.serveFault))

	tr := s.opts.Tracer // nil: Handler returns the handler itself
	providers := tr.Handler("/providers/{id}/*", tracing.KindProvider,
		func(r *http.Request) string { return chi.URLParam(r, "id") }, http.HandlerFunc(s.serveProvider))
	r.Handle("/providers/{id}", providers)
	r.Handle("/providers/{id}/*", providers)

	r.Method(http.MethodPost, "/models/{key}/predict", tr.Handler("/models/{key}/predict", tracing.KindModel,
		func(r *http.Request) string { return chi.URLParam(r, "key") }, http.HandlerFunc(s.servePredict)))
	r.Handle("/v1/*", s.llm) // the OpenAI API of the models served over HTTP

	ui := web.Handler()
	r.Get("/", ui.ServeHTTP)
	r.Get("/assets/*", ui.ServeHTTP)
	return r
}

// serveProvider proxies ANY /providers/{id}/{rest} to an upstream of id.
func (s *Server) serveProvider(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	p := s.state.Load().providers[id]
	if p == nil {
		api.WriteJSON(w, http.StatusNotFound, api.ErrorBody{Status: "error", ProviderID: id, Error: "unknown provider " + strconv.Quote(id)})
		return
	}
	p.ServeHTTP(w, r)
}

// recoverer turns a handler panic into a logged 500. http.ErrAbortHandler
// (ReverseProxy's way to abort a response mid-body) passes through.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				api.WriteError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// adminToken is the admin token of the current configuration ("" for
// none).
func (s *Server) adminToken() string { return s.state.Load().cfg.AdminToken }
