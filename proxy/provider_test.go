package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// rawHTTP writes raw to addr as one HTTP/1.1 exchange and reads the answer.
func rawHTTP(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	return rawExchangeOn(t, addr, raw, false)
}

// errorJSON is the body of a healproxy error answer.
type errorJSON struct {
	Status            string   `json:"status"`
	ProviderID        string   `json:"provider_id"`
	Error             string   `json:"error"`
	CooldownRemaining *float64 `json:"cooldown_remaining"`
}

func decodeError(t *testing.T, body string) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func TestProviderRouting(t *testing.T) {
	up := proxytest.NewUpstream(t)
	slash := proxytest.NewUpstream(t)
	bare := proxytest.NewUpstream(t)
	p := proxytest.Provider(t, "p", up.URL+"/api/v3")
	p.Health.ErrorThreshold = 1000 // the 5xx rows must not trip it
	_, ts := startProviders(t,
		p,
		proxytest.Provider(t, "slash", slash.URL+"/api/"),
		proxytest.Provider(t, "bare", bare.URL),
	)
	c := ts.Client()

	tests := []struct {
		name     string
		up       *proxytest.Upstream
		method   string
		path     string
		body     string
		code     int32 // the upstream's answer
		wantCode int
		wantURI  string
	}{
		{name: "path and query", up: up, method: "GET", path: "/providers/p/v1/x?a=1&b=%20c", wantCode: 200, wantURI: "/api/v3/v1/x?a=1&b=%20c"},
		{name: "provider alone", up: up, method: "GET", path: "/providers/p", wantCode: 200, wantURI: "/api/v3/"},
		{name: "provider with slash", up: up, method: "GET", path: "/providers/p/", wantCode: 200, wantURI: "/api/v3/"},
		{name: "escaped characters kept", up: up, method: "GET", path: "/providers/p/a%20b/c%3Fd", wantCode: 200, wantURI: "/api/v3/a%20b/c%3Fd"},
		{name: "POST with body", up: up, method: "POST", path: "/providers/p/items", body: `{"x":1}`, wantCode: 200, wantURI: "/api/v3/items"},
		{name: "PATCH with body", up: up, method: "PATCH", path: "/providers/p/items/1", body: "patch", wantCode: 200, wantURI: "/api/v3/items/1"},
		{name: "DELETE", up: up, method: "DELETE", path: "/providers/p/items/1", wantCode: 200, wantURI: "/api/v3/items/1"},
		{name: "404 passes through", up: up, method: "GET", path: "/providers/p/missing", code: 404, wantCode: 404, wantURI: "/api/v3/missing"},
		{name: "400 passes through", up: up, method: "POST", path: "/providers/p/bad", body: "x", code: 400, wantCode: 400, wantURI: "/api/v3/bad"},
		{name: "429 passes through", up: up, method: "GET", path: "/providers/p/slow-down", code: 429, wantCode: 429, wantURI: "/api/v3/slow-down"},
		{name: "final 500 passes through", up: up, method: "GET", path: "/providers/p/boom", code: 500, wantCode: 500, wantURI: "/api/v3/boom"},
		{name: "final 503 passes through", up: up, method: "POST", path: "/providers/p/boom", body: "b", code: 503, wantCode: 503, wantURI: "/api/v3/boom"},
		{name: "base path with trailing slash", up: slash, method: "GET", path: "/providers/slash/v1/x?a=1", wantCode: 200, wantURI: "/api/v1/x?a=1"},
		{name: "no base path", up: bare, method: "GET", path: "/providers/bare/v1/x", wantCode: 200, wantURI: "/v1/x"},
		{name: "no base path, provider alone", up: bare, method: "GET", path: "/providers/bare", wantCode: 200, wantURI: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.up.Code.Store(tt.code)
			before := tt.up.Hits.Load()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp, got := proxytest.Do(t, c, tt.method, ts.URL+tt.path, body, nil)
			if g, w := resp.StatusCode, tt.wantCode; g != w {
				t.Errorf("got status %d; want %d (body %q)", g, w, got)
			}
			if g, w := tt.up.Hits.Load()-before, int64(1); g != w {
				t.Fatalf("got %d upstream requests; want %d", g, w)
			}
			seen := tt.up.Last(t)
			if g, w := seen.RequestURI, tt.wantURI; g != w {
				t.Errorf("upstream got URI %q; want %q", g, w)
			}
			if g, w := seen.Method, tt.method; g != w {
				t.Errorf("upstream got method %q; want %q", g, w)
			}
			if g, w := seen.Body, tt.body; g != w {
				t.Errorf("upstream got body %q; want %q", g, w)
			}
			if g, w := resp.Header.Get("X-Upstream-Header"), "from-upstream"; g != w {
				t.Errorf("client got X-Upstream-Header %q; want %q", g, w)
			}
			if g, w := got, "upstream body for "+tt.wantURI; g != w {
				t.Errorf("client got body %q; want %q", g, w)
			}
		})
	}
	up.Code.Store(0)
}

func TestProviderUnknown(t *testing.T) {
	up := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.Provider(t, "p", up.URL))
	for _, path := range []string{"/providers/nope", "/providers/nope/x?y=1", "/providers/P/x"} {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+path)
		if g, w := resp.StatusCode, http.StatusNotFound; g != w {
			t.Errorf("GET %s: got status %d; want %d", path, g, w)
		}
		if g, w := resp.Header.Get("Content-Type"), "application/json"; g != w {
			t.Errorf("GET %s: got Content-Type %q; want %q", path, g, w)
		}
		if e := decodeError(t, body); e.Status != "error" || e.Error == "" {
			t.Errorf("GET %s: got body %q; want status error with a message", path, body)
		}
	}
	if n := up.Hits.Load(); n != 0 {
		t.Errorf("upstream got %d requests for unknown providers; want 0", n)
	}
}

// TestProviderPathSecurity: whatever the path, request line or headers
// hold, a request goes to the configured upstream under its base path,
// or nowhere.
func TestProviderPathSecurity(t *testing.T) {
	up := proxytest.NewUpstream(t)
	attacker := proxytest.NewUpstream(t)
	_, ts := startProviders(t,
		proxytest.Provider(t, "p", up.URL+"/base"),
		proxytest.Provider(t, "bare", up.URL),
	)
	proxyAddr := ts.Listener.Addr().String()
	atk := attacker.HostPort()

	tests := []struct {
		name     string
		target   string // request target as written on the request line
		host     string // the Host header; "" means the attacker's
		extra    string // extra header lines
		wantCode int
		wantURI  string // for a forward: what the upstream must see
	}{
		{name: "dot-dot segments", target: "/providers/p/../../secret", wantCode: 400},
		{name: "dot-dot at end", target: "/providers/p/x/..", wantCode: 400},
		{name: "single dot", target: "/providers/p/./x", wantCode: 400},
		{name: "encoded dot-dot", target: "/providers/p/%2e%2e/%2e%2e/secret", wantCode: 400},
		{name: "mixed-case encoded dot-dot", target: "/providers/p/%2E%2e/secret", wantCode: 400},
		{name: "half-encoded dot-dot", target: "/providers/p/.%2e/secret", wantCode: 400},
		{name: "dot-dot encoded slash", target: "/providers/p/..%2fsecret", wantCode: 400},
		{name: "dot-dot encoded upper slash", target: "/providers/p/..%2Fsecret", wantCode: 400},
		{name: "encoded slash", target: "/providers/p/a%2fb", wantCode: 400},
		{name: "encoded backslash", target: "/providers/p/..%5csecret", wantCode: 400},
		{name: "backslash", target: `/providers/p/..\secret`, wantCode: 400},
		{name: "encoded NUL", target: "/providers/p/a%00b", wantCode: 400},
		{name: "raw NUL", target: "/providers/p/a\x00b", wantCode: 400},
		{name: "absolute-form request line", target: "http://" + atk + "/providers/p/x", wantCode: 200, wantURI: "/base/x"},
		{name: "absolute-form with dot-dot", target: "http://" + atk + "/providers/p/../x", wantCode: 400},
		{name: "Host header of the attacker", target: "/providers/p/x", wantCode: 200, wantURI: "/base/x"},
		{name: "X-Forwarded-Host of the attacker", target: "/providers/p/x", host: proxyAddr,
			extra: "X-Forwarded-Host: " + atk + "\r\nForwarded: host=" + atk + "\r\nX-Forwarded-Proto: https\r\n", wantCode: 200, wantURI: "/base/x"},
		{name: "double slash", target: "/providers/p//x", wantCode: 200, wantURI: "/base//x"},
		{name: "double slash naming a host", target: "/providers/bare//" + atk + "/x", wantCode: 200, wantURI: "//" + atk + "/x"},
		{name: "encoded provider id", target: "/providers/%70/x", wantCode: 404},
		{name: "dot-dot instead of provider id", target: "/providers/../providers/p/x", wantCode: 404},
		// Shapes some servers behind the proxy read as "..": refused.
		{name: "double-encoded dot-dot", target: "/providers/p/%252e%252e/x", wantCode: 400},
		{name: "double-encoded slash", target: "/providers/p/..%252fx", wantCode: 400},
		{name: "dot-dot with a path parameter", target: "/providers/p/..;/admin", wantCode: 400},
		{name: "encoded dot-dot with a path parameter", target: "/providers/p/%2e%2e;x/admin", wantCode: 400},
		{name: "dot-dot and an encoded tab", target: "/providers/p/..%09/admin", wantCode: 400},
		{name: "overlong UTF-8 dots", target: "/providers/p/%c0%ae%c0%ae/admin", wantCode: 400},
		{name: "encoded control character", target: "/providers/p/a%0db", wantCode: 400},
		{name: "path parameter kept", target: "/providers/p/a;v=1/x", wantCode: 200, wantURI: "/base/a;v=1/x"},
		{name: "UTF-8 kept", target: "/providers/p/%c3%a9t%c3%a9", wantCode: 200, wantURI: "/base/%c3%a9t%c3%a9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.Hits.Load()
			host := tt.host
			if host == "" {
				host = atk
			}
			raw := "GET " + tt.target + " HTTP/1.1\r\nHost: " + host + "\r\n" + tt.extra + "Connection: close\r\n\r\n"
			resp, body := rawHTTP(t, proxyAddr, raw)
			if g, w := resp.StatusCode, tt.wantCode; g != w {
				t.Errorf("got status %d; want %d (body %q)", g, w, body)
			}
			if n := attacker.Hits.Load(); n != 0 {
				t.Fatalf("attacker got %d requests; want 0", n)
			}
			hits := up.Hits.Load() - before
			if tt.wantURI == "" {
				if hits != 0 {
					t.Errorf("upstream got %d requests (last %q); want 0", hits, up.Last(t).RequestURI)
				}
				return
			}
			if hits != 1 {
				t.Fatalf("upstream got %d requests; want 1", hits)
			}
			seen := up.Last(t)
			if g, w := seen.RequestURI, tt.wantURI; g != w {
				t.Errorf("upstream got URI %q; want %q", g, w)
			}
			if g, w := seen.Host, up.HostPort(); g != w {
				t.Errorf("upstream got Host %q; want %q", g, w)
			}
			// X-Forwarded-Host tells the client's Host header, whatever
			// X-Forwarded-* the client sent.
			if g := seen.Header.Values("X-Forwarded-Host"); len(g) != 1 || g[0] != host {
				t.Errorf("upstream got X-Forwarded-Host %q; want only the client's Host %q", g, host)
			}
			if g := seen.Header.Values("X-Forwarded-Proto"); len(g) != 1 || g[0] != "http" {
				t.Errorf("upstream got X-Forwarded-Proto %q; want only %q", g, "http")
			}
			if g := seen.Header.Get("Forwarded"); g != "" {
				t.Errorf("upstream got Forwarded %q; want none", g)
			}
		})
	}
}

func TestProviderHeaders(t *testing.T) {
	up := proxytest.NewUpstream(t)
	p := proxytest.Provider(t, "p", up.URL)
	p.Headers = map[string]string{"x-api-key": "configured-key", "X-Empty": "", "authorization": "Bearer configured"}
	_, ts := startProviders(t, p)

	raw := "POST /providers/p/h HTTP/1.1\r\n" +
		"Host: " + ts.Listener.Addr().String() + "\r\n" +
		"Connection: keep-alive, X-Custom\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"X-Custom: drop-me\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"TE: gzip\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"X-Api-Key: client-key\r\n" +
		"Authorization: Bearer client\r\n" +
		"X-Empty: client-empty\r\n" +
		"X-Forwarded-For: 203.0.113.9\r\n" +
		"X-Kept: yes\r\n" +
		"\r\n" +
		"5\r\nhello\r\n0\r\n\r\n"
	resp, body := rawHTTP(t, ts.Listener.Addr().String(), raw)
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d; want 200 (body %q)", resp.StatusCode, body)
	}
	seen := up.Last(t)
	if g, w := seen.Body, "hello"; g != w {
		t.Errorf("upstream got body %q; want %q", g, w)
	}
	if g, w := seen.Host, up.HostPort(); g != w {
		t.Errorf("upstream got Host %q; want %q", g, w)
	}
	wantOne := map[string]string{
		"X-Api-Key":       "configured-key",
		"Authorization":   "Bearer configured",
		"X-Kept":          "yes",
		"X-Forwarded-For": "203.0.113.9, 127.0.0.1",
	}
	for k, w := range wantOne {
		if g := seen.Header.Values(k); len(g) != 1 || g[0] != w {
			t.Errorf("upstream got %s %q; want exactly %q", k, g, w)
		}
	}
	// X-Empty: the configured value is empty, so healproxy sends none of
	// its own; the client's passes as any other client header.
	if g := seen.Header.Values("X-Empty"); len(g) != 1 || g[0] != "client-empty" {
		t.Errorf("upstream got X-Empty %q; want the client's alone", g)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "X-Custom", "Proxy-Authorization", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"} {
		if g := seen.Header.Values(k); len(g) != 0 {
			t.Errorf("upstream got hop-by-hop header %s %q; want none", k, g)
		}
	}
}

func TestProviderHeadersEmptyConfiguredValue(t *testing.T) {
	up := proxytest.NewUpstream(t)
	p := proxytest.Provider(t, "p", up.URL)
	p.Headers = map[string]string{"X-Secret-Key": ""}
	_, ts := startProviders(t, p)
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	if g, ok := up.Last(t).Header["X-Secret-Key"]; ok {
		t.Errorf("upstream got X-Secret-Key %q; want no header for an empty configured value", g)
	}
	if g, w := up.Last(t).Header.Get("X-Forwarded-For"), "127.0.0.1"; g != w {
		t.Errorf("upstream got X-Forwarded-For %q; want %q", g, w)
	}
}

// TestProviderSecretsNeverShown: query strings of upstream URLs and header
// values appear in no answer, metric or log line, after successes,
// connection errors, timeouts and trips alike.
func TestProviderSecretsNeverShown(t *testing.T) {
	const secret = "s3cret"
	up := proxytest.NewUpstream(t)
	slow := proxytest.NewUpstream(t)
	slow.Hold()
	defer slow.Release()
	hdrs := map[string]string{"Authorization": "Bearer " + secret + "-h1", "X-Api-Key": secret + "-h2"}
	mk := func(id string, timeout time.Duration, ups ...string) config.Provider {
		pc := proxytest.WithHealth(proxytest.Provider(t, id, ups...), 2, time.Minute, 1)
		pc.Headers = hdrs
		pc.Timeout = timeout
		return pc
	}
	log, logs := proxytest.CaptureLogs()
	cfg := &config.Config{Providers: []config.Provider{
		mk("ok", 5*time.Second, up.URL+"/base?apikey="+secret+"-q1"),
		mk("dead", 5*time.Second, proxytest.DeadURL(t)+"/x?apikey="+secret+"-q2"),
		mk("slow", 100*time.Millisecond, slow.URL+"/?token="+secret+"-q3"),
		mk("mixed", 100*time.Millisecond, proxytest.DeadURL(t)+"/?k="+secret+"-q4", slow.URL+"/?k="+secret+"-q5"),
	}}
	cfg.AdminToken = "admin-" + secret
	s, ts := startServer(t, cfg, withLogger(log))
	c := ts.Client()

	var answers strings.Builder
	record := func(resp *http.Response, body string) {
		for k, v := range resp.Header {
			answers.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		answers.WriteString(body + "\n")
	}
	resp, _ := proxytest.Get(t, c, ts.URL+"/providers/ok/v1?x=1")
	if resp.StatusCode != 200 {
		t.Fatalf("ok: got status %d; want 200", resp.StatusCode)
	}
	// The secrets are used: the upstream sees them.
	seen := up.Last(t)
	if g, w := seen.RequestURI, "/base/v1?apikey="+secret+"-q1&x=1"; g != w {
		t.Errorf("upstream got URI %q; want %q", g, w)
	}
	if g, w := seen.Header.Get("X-Api-Key"), secret+"-h2"; g != w {
		t.Errorf("upstream got X-Api-Key %q; want %q", g, w)
	}
	for _, path := range []string{"/providers/dead/a", "/providers/dead/a", "/providers/dead/a",
		"/providers/slow/b", "/providers/slow/b", "/providers/slow/b",
		"/providers/mixed/c", "/providers/mixed/c", "/providers/mixed/c"} {
		record(proxytest.Get(t, c, ts.URL+path))
	}
	record(proxytest.Do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=nope", nil, http.Header{"Authorization": {"Bearer wrong"}}))
	record(proxytest.Get(t, c, ts.URL+"/api/diagnostics/health"))
	record(proxytest.Get(t, c, ts.URL+"/metrics"))
	record(proxytest.Do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=dead", nil, http.Header{"Authorization": {"Bearer admin-" + secret}}))
	record(proxytest.Get(t, c, ts.URL+"/api/diagnostics/health"))
	s.healthDocument() // and once more in-process, for the log of any poll

	all := answers.String()
	for _, want := range []string{`"provider_id":"dead"`, `"status":"cooldown"`, "upstream timed out", "cannot connect to upstream"} {
		if !strings.Contains(all, want) {
			t.Errorf("answers lack %q; the failures did not happen as planned:\n%s", want, all)
		}
	}
	if i := strings.Index(all, secret); i >= 0 {
		t.Errorf("an answer shows a secret: …%s…", all[max(0, i-200):min(len(all), i+100)])
	}
	if !strings.Contains(logs.String(), "health status changed") {
		t.Errorf("logs lack status changes; want some:\n%s", logs.String())
	}
	if l := logs.String(); strings.Contains(l, secret) {
		i := strings.Index(l, secret)
		t.Errorf("a log line shows a secret: …%s…", l[max(0, i-200):min(len(l), i+100)])
	}
}

// TestNewRefusesUnnormalized: New does not invent defaults; a Config built
// by hand that skipped config.Normalize is refused, naming the setting.
func TestNewRefusesUnnormalized(t *testing.T) {
	_, err := New(&config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", "http://a.test")}}, Options{Logger: proxytest.DiscardLogger()})
	if err == nil || !strings.Contains(err.Error(), `provider "p": mode is zero`) || !strings.Contains(err.Error(), "Normalize") {
		t.Errorf("New of a Config not normalized: %v; want an error naming the setting and Normalize", err)
	}
}
