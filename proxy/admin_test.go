package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// newAdminTestServer is a Server (not listening) with one provider and
// the given admin token; requests go through ServeHTTP with a recorder.
func newAdminTestServer(t *testing.T, token string) *Server {
	t.Helper()
	cfg := &config.Config{AdminToken: token, Providers: []config.Provider{proxytest.Provider(t, "p", proxytest.DeadURL(t))}}
	return newServer(t, cfg)
}

func serveRecorded(s *Server, method, target, remote string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	req.Host = "127.0.0.1:7860" // as a local client names the proxy (httptest's default, example.com, is a host name)
	for k, v := range hdr {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

func TestAdminWithToken(t *testing.T) {
	const token = "s3cret-admin-token"
	s := newAdminTestServer(t, token)
	tests := []struct {
		name     string
		method   string
		target   string
		remote   string
		auth     string
		wantCode int
	}{
		{"no header", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "", 401},
		{"wrong token", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "Bearer nope", 401},
		{"token prefix", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "Bearer s3cret-admin", 401},
		{"token plus more", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "Bearer " + token + "x", 401},
		{"not Bearer", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "Basic " + token, 401},
		{"bare token", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", token, 401},
		{"right token", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", "Bearer " + token, 200},
		{"right token, remote client", "POST", "/api/diagnostics/self-heal?provider_id=p", "192.0.2.1:1234", "Bearer " + token, 200},
		{"wrong token, remote client", "POST", "/api/diagnostics/self-heal?provider_id=p", "192.0.2.1:1234", "Bearer nope", 401},
		{"right token, unknown provider", "POST", "/api/diagnostics/self-heal?provider_id=nope", "192.0.2.1:1234", "Bearer " + token, 404},
		{"health needs no token", "GET", "/api/diagnostics/health", "192.0.2.1:1234", "", 200},
		{"healthz needs no token", "GET", "/healthz", "192.0.2.1:1234", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.auth != "" {
				hdr.Set("Authorization", tt.auth)
			}
			w := serveRecorded(s, tt.method, tt.target, tt.remote, hdr)
			if g, want := w.Code, tt.wantCode; g != want {
				t.Errorf("got status %d; want %d (body %s)", g, want, w.Body)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestAdminWithoutToken(t *testing.T) {
	s := newAdminTestServer(t, "")
	tests := []struct {
		name     string
		method   string
		target   string
		remote   string
		hdr      http.Header
		wantCode int
	}{
		{"IPv4 loopback", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", nil, 200},
		{"other IPv4 loopback", "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.2:1234", nil, 200},
		{"IPv6 loopback", "POST", "/api/diagnostics/self-heal?provider_id=p", "[::1]:1234", nil, 200},
		{"remote", "POST", "/api/diagnostics/self-heal?provider_id=p", "192.0.2.1:1234", nil, 403},
		{"remote IPv6", "POST", "/api/diagnostics/self-heal?provider_id=p", "[2001:db8::1]:1234", nil, 403},
		{"remote claiming loopback in X-Forwarded-For", "POST", "/api/diagnostics/self-heal?provider_id=p", "192.0.2.1:1234",
			http.Header{"X-Forwarded-For": {"127.0.0.1"}, "X-Real-Ip": {"127.0.0.1"}, "Forwarded": {"for=127.0.0.1"}}, 403},
		{"remote with a token nobody configured", "POST", "/api/diagnostics/self-heal?provider_id=p", "192.0.2.1:1234",
			http.Header{"Authorization": {"Bearer anything"}}, 403},
		{"IPv4-mapped remote", "POST", "/api/diagnostics/self-heal?provider_id=p", "[::ffff:192.0.2.1]:1234", nil, 403},
		{"unparsable remote", "POST", "/api/diagnostics/self-heal?provider_id=p", "garbage", nil, 403},
		{"remote may read health", "GET", "/api/diagnostics/health", "192.0.2.1:1234", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serveRecorded(s, tt.method, tt.target, tt.remote, tt.hdr)
			if g, want := w.Code, tt.wantCode; g != want {
				t.Errorf("got status %d; want %d (body %s)", g, want, w.Body)
			}
		})
	}
}

// TestAdminOverLoopback: a real loopback client, no token configured.
func TestAdminOverLoopback(t *testing.T) {
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{
		proxytest.WithHealth(proxytest.Provider(t, "p", proxytest.DeadURL(t)), 1, time.Minute, 1)}})
	resp, body := proxytest.Do(t, ts.Client(), "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=p", nil, nil)
	if resp.StatusCode != 200 {
		t.Errorf("got status %d; want 200 (body %s)", resp.StatusCode, body)
	}
	resp, _ = proxytest.Do(t, ts.Client(), "GET", ts.URL+"/api/diagnostics/self-heal?provider_id=p", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET self-heal: got status %d; want %d", resp.StatusCode, http.StatusMethodNotAllowed)
	}
}
