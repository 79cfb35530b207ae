package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
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
	switch r.Method {
	case http.MethodConnect: // a tunnel through the proxy to the upstream's host: never
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Status: "error", ProviderID: id,
			Error: "method CONNECT is not forwarded to providers"})
		return
	case http.MethodTrace:
		// An upstream that echoes TRACE would show the client the headers
		// the proxy injects (its API keys).
		if !p.cfg.AllowTrace {
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Status: "error", ProviderID: id,
				Error: "method TRACE is not forwarded to provider " + strconv.Quote(id) + " (allow_trace is off)"})
			return
		}
	}
	if !p.available() && !p.hasAllDownFallback() {
		writeCooldown(w, p, p.cooldownRemaining())
		return
	}
	if limit := p.cfg.MaxRequestBody; limit > 0 {
		if r.ContentLength > limit {
			p.m.notUpstream.WithLabelValues(p.ID, causeBodyTooLarge).Inc()
			writeBodyTooLarge(w, p)
			return
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit) // chunked: counted as it streams
		}
	}
	r = withClientBody(w, r) // tells the client's faults from the upstream's (clienterrors.go)
	// A client that stops reading must not hold this goroutine (and the
	// upstream connection) forever: the answer has as long as every
	// attempt may take, plus a margin for a slow link.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(p.writeBudget()))
	p.rp.ServeHTTP(w, r)
}

// admin guards admin endpoints (docs/behaviour.md, "Admin endpoints"):
// with a token, a
// matching Bearer token (401 otherwise); without one, loopback clients
// only (403 otherwise). The client address is the connection's, never a
// header's. See SECURITY.md for the threat model.
//
// Two browser attacks are refused on top of that, token or not:
//   - cross-site request forgery: a page on another site, open in a
//     browser on this host, posting to the proxy (the browser is a
//     loopback client) — see crossSite;
//   - DNS rebinding, without a token: a page whose own host name was made
//     to resolve to 127.0.0.1 is same-origin with the proxy as far as the
//     browser knows, so the Host header must name the proxy by an IP
//     address or as localhost.
func (s *Server) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.state.Load().cfg.AdminToken
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !tokenMatches(strings.TrimSpace(got), token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="healproxy admin"`)
				writeError(w, http.StatusUnauthorized, "admin endpoint: send Authorization: Bearer <admin token>")
				s.log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
				return
			}
		} else if !isLoopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, "admin endpoint: without an admin token only loopback clients are served")
			s.log.Warn("admin request refused: not loopback", "path", r.URL.Path, "remote", r.RemoteAddr)
			return
		} else if !localHostHeader(r.Host) {
			writeError(w, http.StatusForbidden, "admin endpoint: without an admin token the proxy must be addressed "+
				"by an IP address or as localhost, not by host name "+strconv.Quote(r.Host))
			s.log.Warn("admin request refused: host name not local (DNS rebinding?)", "path", r.URL.Path,
				"remote", r.RemoteAddr, "host", r.Host)
			return
		}
		if stateChanging(r.Method) {
			if why := crossSite(r); why != "" {
				writeError(w, http.StatusForbidden, "admin endpoint: cross-site request refused ("+why+")")
				s.log.Warn("admin request refused: cross-site", "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
				return
			}
			if formContentType(r.Header.Get("Content-Type")) {
				writeError(w, http.StatusUnsupportedMediaType, "admin endpoint: send a JSON body "+
					"(Content-Type: application/json) or none; form and text/plain bodies are refused")
				s.log.Warn("admin request refused: form content type", "path", r.URL.Path, "remote", r.RemoteAddr)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// tokenMatches compares in constant time, also in the token's length:
// subtle.ConstantTimeCompare returns at once on a length mismatch, so both
// sides are hashed to one length first.
func tokenMatches(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// crossSite says why r comes from a page of another origin, or "" when it
// does not. Browsers set Sec-Fetch-Site and Origin themselves (a page
// cannot forge them); clients such as curl send neither and pass.
// Referer counts only when Origin is absent, as some older browsers omit
// Origin on same-origin requests.
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none": // none: the user typed or bookmarked it
	default:
		return "Sec-Fetch-Site: " + site
	}
	if origin := r.Header.Values("Origin"); len(origin) > 0 {
		if len(origin) > 1 || !sameHost(origin[0], r.Host) {
			return "Origin " + strconv.Quote(strings.Join(origin, ", ")) + " is not this proxy"
		}
		return ""
	}
	if ref := r.Header.Get("Referer"); ref != "" && !sameHost(ref, r.Host) {
		return "Referer is not this proxy"
	}
	return ""
}

// sameHost: the URL u (an Origin or Referer value) names host, the host
// (and port) the client sent the request to. "null" (a sandboxed or file
// page) names none.
func sameHost(u, host string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return false
	}
	return strings.EqualFold(p.Host, host)
}

// formContentType: a body an HTML form (or a no-CORS fetch) can send
// cross-site without a preflight. Admin endpoints take JSON or nothing.
func formContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unreadable: not JSON either
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// localHostHeader: a Host header that DNS rebinding cannot produce: an IP
// address, localhost or a name under .localhost (which browsers resolve
// to loopback themselves), or none (HTTP/1.0).
func localHostHeader(host string) bool {
	if host == "" {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
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
