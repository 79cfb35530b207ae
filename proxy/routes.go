package proxy

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/healproxy/healproxy/web"
)

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))

	r.Get("/api/diagnostics/health", s.serveHealth)
	r.Get("/api/diagnostics/events", s.serveEvents)
	r.Get("/api/diagnostics/history", s.serveHistory)
	r.Get("/api/diagnostics/report", s.serveReport)
	r.Get("/api/diagnostics/alerts", s.serveAlerts)
	r.With(s.admin).Post("/api/diagnostics/self-heal", s.serveSelfHeal)
	r.With(s.admin).Post("/api/admin/providers/{id}/{action}", s.serveControl)
	r.With(s.admin).Get("/api/admin/audit", s.serveAudit)
	r.With(s.admin).Post("/api/admin/reload", s.serveReload)
	r.With(s.admin).HandleFunc("/api/admin/fault", s.serveFault)

	r.Handle("/providers/{id}", http.HandlerFunc(s.serveProvider))
	r.Handle("/providers/{id}/*", http.HandlerFunc(s.serveProvider))

	r.Post("/models/{key}/predict", s.servePredict)

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
		writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ProviderID: id, Error: "unknown provider " + strconv.Quote(id)})
		return
	}
	if _, ok := restPath(r, id); !ok {
		writeJSON(w, http.StatusBadRequest, errorBody{Status: "error", ProviderID: id,
			Error: "path must not hold dot segments, encoded slashes or backslashes"})
		return
	}
	if !p.available() && !p.hasAllDownFallback() {
		writeCooldown(w, p, p.cooldownRemaining())
		return
	}
	// A client that stops reading must not hold this goroutine (and the
	// upstream connection) forever: the answer has as long as every
	// attempt may take, plus a margin for a slow link.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(p.writeBudget()))
	p.rp.ServeHTTP(w, r)
}

// admin guards admin endpoints (CONTRACT section 8): with a token, a
// matching Bearer token (401 otherwise); without one, loopback clients
// only (403 otherwise). The client address is the connection's, never a
// header's.
func (s *Server) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.state.Load().cfg.AdminToken
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="healproxy admin"`)
				writeError(w, http.StatusUnauthorized, "admin endpoint: send Authorization: Bearer <admin token>")
				s.log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
				return
			}
		} else if !isLoopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, "admin endpoint: without an admin token only loopback clients are served")
			s.log.Warn("admin request refused: not loopback", "path", r.URL.Path, "remote", r.RemoteAddr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
