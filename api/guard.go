package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Admin guards the admin endpoints (docs/behaviour.md, "Admin endpoints"):
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
//
// token is called for every request, so that a reload's new token takes
// effect at once.
func Admin(token func() string, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return adminGuard(token, log, next)
	}
}

func adminGuard(tokenOf func() string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := tokenOf()
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !tokenMatches(strings.TrimSpace(got), token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="healproxy admin"`)
				WriteError(w, http.StatusUnauthorized, "admin endpoint: send Authorization: Bearer <admin token>")
				log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
				return
			}
		} else if !isLoopback(r.RemoteAddr) {
			WriteError(w, http.StatusForbidden, "admin endpoint: without an admin token only loopback clients are served")
			log.Warn("admin request refused: not loopback", "path", r.URL.Path, "remote", r.RemoteAddr)
			return
		} else if !localHostHeader(r.Host) {
			WriteError(w, http.StatusForbidden, "admin endpoint: without an admin token the proxy must be addressed "+
				"by an IP address or as localhost, not by host name "+strconv.Quote(r.Host))
			log.Warn("admin request refused: host name not local (DNS rebinding?)", "path", r.URL.Path,
				"remote", r.RemoteAddr, "host", r.Host)
			return
		}
		if stateChanging(r.Method) {
			if why := crossSite(r); why != "" {
				WriteError(w, http.StatusForbidden, "admin endpoint: cross-site request refused ("+why+")")
				log.Warn("admin request refused: cross-site", "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
				return
			}
			if formContentType(r.Header.Get("Content-Type")) {
				WriteError(w, http.StatusUnsupportedMediaType, "admin endpoint: send a JSON body "+
					"(Content-Type: application/json) or none; form and text/plain bodies are refused")
				log.Warn("admin request refused: form content type", "path", r.URL.Path, "remote", r.RemoteAddr)
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
