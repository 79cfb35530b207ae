package proxy

// Security tests (SECURITY.md lists what each covers):
// admin access rules, cross-site request forgery and DNS rebinding against
// the admin endpoints, secrets in every output, request smuggling shapes,
// size limits and slow clients, over the same http.Server settings as
// cmd/healproxy (httpserver.New).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/httpserver"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/provider"
)

// tripAdminTestServer makes provider p of a newAdminTestServer (one dead
// upstream, threshold 3) unavailable, so that a self-heal shows: it
// resets the upstream.
func tripAdminTestServer(t *testing.T, s *Server) *provider.Upstream {
	t.Helper()
	u := s.state.Load().providers["p"].Upstreams[0]
	for i := 0; i < 20 && u.Health.Status() != breaker.Unavailable; i++ {
		serveRecorded(s, "GET", "/providers/p/x", "127.0.0.1:1234", nil)
	}
	if g := u.Health.Status(); g != breaker.Unavailable {
		t.Fatalf("got upstream status %v after 20 failed requests; want unavailable", g)
	}
	return u
}

// TestAdminRefusesCrossSiteRequests: a page on another site, open in a
// browser on the proxy's host, can make that browser post to the proxy
// (a loopback client). Such a request must not self-heal, reload or
// control anything, token or not; curl (no browser headers) and the
// proxy's own UI (same origin, JSON or no body) still work.
func TestAdminRefusesCrossSiteRequests(t *testing.T) {
	const own = "http://127.0.0.1:7860"
	const heal = "/api/diagnostics/self-heal?provider_id=p"
	tests := []struct {
		name     string
		hdr      http.Header
		wantCode int
	}{
		{"curl: no browser headers", nil, 200},
		{"the UI: same-origin fetch", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {own}}, 200},
		{"the UI with a JSON body", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {own}, "Content-Type": {"application/json"}}, 200},
		{"user-initiated (Sec-Fetch-Site none)", http.Header{"Sec-Fetch-Site": {"none"}}, 200},
		{"same origin by Referer, no Origin", http.Header{"Referer": {own + "/"}}, 200},
		{"cross-site form post", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"http://evil.example"},
			"Content-Type": {"application/x-www-form-urlencoded"}}, 403},
		{"cross-site, Sec-Fetch-Site only", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same-site (another port)", http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {"http://127.0.0.1:9999"}}, 403},
		{"foreign Origin, no Sec-Fetch-Site", http.Header{"Origin": {"http://evil.example"}}, 403},
		{"Origin of another port", http.Header{"Origin": {"http://127.0.0.1:9999"}}, 403},
		{"Origin null (sandboxed page)", http.Header{"Origin": {"null"}}, 403},
		{"two Origins", http.Header{"Origin": {own, "http://evil.example"}}, 403},
		{"foreign Referer, no Origin", http.Header{"Referer": {"http://evil.example/page"}}, 403},
		{"form body without browser headers", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415},
		{"multipart body", http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, 415},
		{"text/plain body", http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}, 415},
		{"TEXT/PLAIN body", http.Header{"Content-Type": {"TEXT/PLAIN"}}, 415},
		{"unreadable content type", http.Header{"Content-Type": {";;"}}, 415},
	}
	for _, token := range []string{"", "s3cret-admin-token"} {
		s := newAdminTestServer(t, token)
		for _, tt := range tests {
			name := tt.name
			if token != "" {
				name += ", with token"
			}
			t.Run(name, func(t *testing.T) {
				u := tripAdminTestServer(t, s)
				hdr := tt.hdr.Clone()
				if hdr == nil {
					hdr = http.Header{}
				}
				if token != "" {
					hdr.Set("Authorization", "Bearer "+token)
				}
				w := serveRecorded(s, "POST", heal, "127.0.0.1:1234", hdr)
				if g, want := w.Code, tt.wantCode; g != want {
					t.Fatalf("got status %d; want %d (body %s)", g, want, w.Body)
				}
				healed := u.Health.Status() != breaker.Unavailable
				if healed != (tt.wantCode == 200) {
					t.Errorf("got upstream healed %v; want %v", healed, tt.wantCode == 200)
				}
				for _, target := range []string{"/api/admin/reload", "/api/admin/providers/p/drain"} {
					w := serveRecorded(s, "POST", target, "127.0.0.1:1234", hdr)
					if refused := w.Code == 403 || w.Code == 415; refused != (tt.wantCode != 200) {
						t.Errorf("POST %s: got status %d; want refused %v (body %s)", target, w.Code, tt.wantCode != 200, w.Body)
					}
				}
			})
		}
		// Reading the audit log is not state-changing: the same-origin
		// policy keeps its answer from a cross-site page.
		hdr := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"http://evil.example"}}
		if token != "" {
			hdr.Set("Authorization", "Bearer "+token)
		}
		if w := serveRecorded(s, "GET", "/api/admin/audit", "127.0.0.1:1234", hdr); w.Code != 200 {
			t.Errorf("GET audit, cross-site: got status %d; want 200 (body %s)", w.Code, w.Body)
		}
	}
}

// TestAdminRefusesDNSRebinding: without a token, a page on
// rebind.example whose name was made to resolve to 127.0.0.1 is
// same-origin with the proxy to the browser; only the Host header tells.
// Admin requests must name the proxy by IP address or as localhost. With
// a token, the host name does not matter (the page has no token).
func TestAdminRefusesDNSRebinding(t *testing.T) {
	tests := []struct {
		host     string
		wantCode int
	}{
		{"rebind.example:7860", 403},
		{"rebind.example", 403},
		{"127.0.0.1.nip.io:7860", 403},
		{"127.0.0.1:7860", 200},
		{"[::1]:7860", 200},
		{"localhost:7860", 200},
		{"LOCALHOST.:7860", 200},
		{"healproxy.localhost:7860", 200},
		{"192.0.2.7:7860", 200}, // an address of this host: no DNS involved
	}
	s := newAdminTestServer(t, "")
	st := newAdminTestServer(t, "tok")
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			same := "http://" + tt.host
			hdr := http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {same}}
			req := func(s *Server, hdr http.Header) int {
				w := serveRecordedHost(s, "POST", "/api/diagnostics/self-heal?provider_id=p", "127.0.0.1:1234", tt.host, hdr)
				return w.Code
			}
			if g := req(s, hdr); g != tt.wantCode {
				t.Errorf("no token: got status %d; want %d", g, tt.wantCode)
			}
			hdr = hdr.Clone()
			hdr.Set("Authorization", "Bearer tok")
			if g := req(st, hdr); g != 200 {
				t.Errorf("with the token: got status %d; want 200", g)
			}
		})
	}
}

// serveRecordedHost is serveRecorded with the Host header given.
func serveRecordedHost(s *Server, method, target, remote, host string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr, req.Host = remote, host
	for k, v := range hdr {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// startServedProxy serves s as cmd/healproxy does (httpserver.New on a
// GuardListener) on a loopback port; tune may change the server's
// settings before it starts.
func startServedProxy(t *testing.T, s *Server, tune func(*http.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httpserver.New(s, log.New(io.Discard, "", 0))
	if tune != nil {
		tune(hs)
	}
	go hs.Serve(httpserver.GuardListener(ln))
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// rawExchange writes raw to a new connection to addr and reads until the
// server closes it; it returns the status lines of the answers.
func rawExchange(t *testing.T, addr, raw string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails the test, not a timing assertion
	// Written while the answer is read: a server may answer (413, 404)
	// and close before it has read a large request, and the write then
	// fails while the answer is already there to read.
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, raw)
		wrote <- err
	}()
	var status []string
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server neither answered nor closed the connection: %v (so far %q)", err, status)
			}
			if werr := <-wrote; werr != nil && len(status) == 0 {
				t.Fatalf("writing the request: %v; no answer: %v", werr, err)
			}
			return status
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = append(status, resp.Status)
	}
}

// TestRequestSmugglingRefused: over raw TCP to the server as
// cmd/healproxy runs it, each request whose framing a front-end could
// read differently is refused (400, or 501 for a transfer coding net/http
// does not implement), the connection is closed, and the upstream never
// sees the smuggled request (nor the refused one). Well-formed pipelined
// requests still pass, so the framing is followed correctly.
func TestRequestSmugglingRefused(t *testing.T) {
	up := proxytest.NewUpstream(t)
	s, _ := startProviders(t, proxytest.Provider(t, "p", up.URL))
	addr := startServedProxy(t, s, nil)
	const ambiguousHead = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	const smuggled = "GET /providers/p/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name       string
		raw        string
		wantStatus []int
		wantUp     []string // RequestURIs the upstream sees
	}{
		{"CL.TE", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"TE.CL", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"duplicate differing Content-Length", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nContent-Length: 80\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"Transfer-Encoding: chunked, identity", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{501}, nil},
		{"two Transfer-Encoding headers", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{501}, nil},
		{"obs-fold hiding Transfer-Encoding", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"obs-fold", "GET /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n\tc\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"Transfer-Encoding with a space before the colon", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{400}, nil},
		{"Content-Length: +5", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +5\r\n\r\n0\r\n\r\n" + smuggled,
			[]int{400}, nil},
		// controls: what a correct client sends passes, framing followed
		{"chunked, then a pipelined request", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n0\r\nTrailer-A: 1\r\n\r\n" + smuggled,
			[]int{200, 200}, []string{"/a", "/smuggled"}},
		{"a body that looks like an ambiguous head", "POST /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
			strconv.Itoa(len(ambiguousHead)) + "\r\n\r\n" + ambiguousHead + smuggled,
			[]int{200, 200}, []string{"/a", "/smuggled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.Requests())
			status := rawExchange(t, addr, tt.raw)
			if len(status) != len(tt.wantStatus) {
				t.Fatalf("got answers %q; want statuses %v", status, tt.wantStatus)
			}
			for i, st := range status {
				if !strings.HasPrefix(st, strconv.Itoa(tt.wantStatus[i])+" ") {
					t.Errorf("answer %d: got %q; want %d", i, st, tt.wantStatus[i])
				}
			}
			var seen []string
			for _, r := range up.Requests()[before:] {
				seen = append(seen, r.RequestURI)
			}
			if !slices.Equal(seen, tt.wantUp) {
				t.Errorf("the upstream saw %q; want %q", seen, tt.wantUp)
			}
		})
	}
}

// TestSizeLimitsAndSlowClients: headers over MaxHeaderBytes get 431, a
// predict body over MaxPredictBody 413, and a client trickling its
// headers is cut off at ReadHeaderTimeout (here shortened) however it
// keeps sending.
func TestSizeLimitsAndSlowClients(t *testing.T) {
	up := proxytest.NewUpstream(t)
	s, _ := startProviders(t, proxytest.Provider(t, "p", up.URL))
	addr := startServedProxy(t, s, func(hs *http.Server) { hs.ReadHeaderTimeout = 300 * time.Millisecond })

	t.Run("huge header", func(t *testing.T) {
		status := rawExchange(t, addr, "GET /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "+
			strings.Repeat("a", 2*httpserver.MaxHeaderBytes)+"\r\n\r\n")
		if len(status) != 1 || !strings.HasPrefix(status[0], "431 ") {
			t.Errorf("got %q; want 431", status)
		}
	})
	t.Run("huge request line", func(t *testing.T) {
		status := rawExchange(t, addr, "GET /providers/p/"+strings.Repeat("a", 2*httpserver.MaxHeaderBytes)+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		if len(status) != 1 || !strings.HasPrefix(status[0], "431 ") && !strings.HasPrefix(status[0], "414 ") {
			t.Errorf("got %q; want 431 or 414", status)
		}
	})
	if n := len(up.Requests()); n != 0 {
		t.Errorf("the upstream saw %d requests; want none", n)
	}
	t.Run("predict body over the limit", func(t *testing.T) {
		body := `{"inputs": "` + strings.Repeat("a", MaxPredictBody) + `"}`
		status := rawExchange(t, addr, "POST /models/m/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: "+
			strconv.Itoa(len(body))+"\r\n\r\n"+body)
		// no model m here: 404 is fine too, as long as nothing reads it all
		if len(status) != 1 || !strings.HasPrefix(status[0], "413 ") && !strings.HasPrefix(status[0], "404 ") {
			t.Errorf("got %q; want 413 (or 404 for no such model)", status)
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "GET /providers/p/a HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		done := make(chan struct{})
		go func() { // one header byte at a time, never the end of the head
			defer close(done)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 1000 {
				<-tick.C
				if _, err := io.WriteString(c, "X"); err != nil {
					return
				}
			}
		}()
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept the trickling connection open: %v", err)
		}
		c.Close()
		<-done
		if n := len(up.Requests()); n != 0 {
			t.Errorf("the upstream saw %d requests; want none", n)
		}
	})
}

// TestNoSecretInOutputs: secrets in the config (an upstream's query-string
// API key, an injected header, the admin token, a webhook's query token)
// are used, but none appears in any output: logs (debug level), every
// diagnostics answer (health, history, report as JSON and CSV, alerts,
// the event stream), metrics, the audit log, error bodies and headers of
// failed, reset, redirected and refused requests, and a refused reload's
// diagnostics, even when that config holds credentials in a URL.
func TestNoSecretInOutputs(t *testing.T) {
	const (
		querySecret   = "qs-7f3a9c-upstream-query"
		deadSecret    = "qs-2b4c11-dead-upstream-query"
		headerSecret  = "hs-51be20-header-value"
		adminSecret   = "as-c0ffee-admin-token"
		webhookSecret = "ws-9d8e7f-webhook-query"
		userSecret    = "us-4a4a10-userinfo-password"
	)
	secrets := []string{querySecret, deadSecret, headerSecret, adminSecret, webhookSecret, userSecret}

	var upMu sync.Mutex
	var upSaw []string
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		upMu.Lock()
		upSaw = append(upSaw, r.RequestURI+" "+r.Header.Get("X-Api-Key"))
		upMu.Unlock()
		switch strings.TrimPrefix(r.URL.Path, "/base") {
		case "/fail":
			http.Error(w, "upstream trouble", http.StatusInternalServerError)
		case "/reset":
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		case "/redirect":
			http.Redirect(w, r, "http://"+r.Host+"/base/next?api_key="+querySecret+"&x=1", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	})
	var hooks atomic.Int64
	var hookQuery atomic.Value
	hook := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		hookQuery.Store(r.URL.RawQuery)
		hooks.Add(1)
		http.Error(w, "nope", http.StatusInternalServerError)
	})

	env := map[string]string{"HS": headerSecret, "AS": adminSecret}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	src := `
admin { token = env("AS") }
provider "leaky" {
  name      = "Leaky"
  upstreams = ["` + up.URL + `/base?api_key=` + querySecret + `", "` + proxytest.DeadURL(t) + `/v1?key=` + deadSecret + `"]
  headers   = { "X-Api-Key" = env("HS") }
  timeout   = "2s"
  health { error_threshold = 2 }
}
alert "ops" {
  webhook = "` + hook.URL + `/hook?token=` + webhookSecret + `"
}
`
	cfg, diags := config.Parse("secrets.hcl", []byte(src), config.LoadOptions{Getenv: getenv})
	if diags.HasErrors() {
		t.Fatalf("config: %s", config.FormatDiagnostics(diags))
	}
	// a reload that finds credentials and keys in URLs it refuses
	badSrc := strings.Replace(src, "http://", "http://user:"+userSecret+"@", 1) + `
provider "bad" { upstreams = ["http://h/%zz?key=` + deadSecret + `"] }`
	source := func() (*config.Config, hcl.Diagnostics) {
		return config.Parse("secrets.hcl", []byte(badSrc), config.LoadOptions{Getenv: getenv})
	}
	logger, logs := proxytest.CaptureLogs()
	_, ts := startServer(t, cfg, withOptions(Options{Logger: logger, ConfigSource: source}), withUndeliveredAlerts())

	var out strings.Builder // every byte the proxy gave out
	sse, stopEvents := recordEvents(ts.URL)
	defer stopEvents()
	call := func(method, path, body string, hdr http.Header) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, b := proxytest.Do(t, client, method, ts.URL+path, rd, hdr)
		fmt.Fprintf(&out, "%s %s -> %s %v\n%s\n", method, path, resp.Status, resp.Header, b)
		return resp
	}
	admin := http.Header{"Authorization": {"Bearer " + adminSecret}, "Content-Type": {"application/json"}}
	for _, p := range []string{"/ok", "/ok", "/ok", "/fail", "/fail", "/reset", "/reset", "/redirect", "/fail", "/fail", "/ok"} {
		call("GET", "/providers/leaky"+p+"?client=1", "", nil)
	}
	call("POST", "/api/diagnostics/self-heal?provider_id=leaky", "", http.Header{"Authorization": {"Bearer wrong-" + adminSecret[:5]}})
	call("POST", "/api/admin/reload", "", admin)
	call("POST", "/api/admin/providers/leaky/drain", `{"upstream": "`+up.URL+`/base?api_key=`+querySecret+`", "reason": "test"}`, admin)
	call("POST", "/api/admin/providers/leaky/drain", `{"upstream": "`+up.URL+`/base", "reason": "test", "ttl": "1m"}`, admin)
	call("GET", "/providers/leaky/ok", "", nil)
	call("POST", "/api/diagnostics/self-heal?provider_id=leaky", "", admin)
	proxytest.Eventually(t, 20*time.Second, "an alert delivery attempt", func() bool { return hooks.Load() > 0 })
	for _, p := range []string{"/api/diagnostics/health", "/api/diagnostics/history", "/api/diagnostics/report?format=json",
		"/api/diagnostics/report?format=csv", "/api/diagnostics/alerts", "/metrics", "/api/admin/audit"} {
		call("GET", p, "", admin)
	}
	stopEvents()

	// the secrets were in use
	upMu.Lock()
	saw := strings.Join(upSaw, "\n")
	upMu.Unlock()
	if !strings.Contains(saw, "api_key="+querySecret) || !strings.Contains(saw, headerSecret) {
		t.Errorf("the upstream did not get the configured key and header:\n%s", saw)
	}
	if q, _ := hookQuery.Load().(string); !strings.Contains(q, webhookSecret) {
		t.Errorf("the webhook got query %q; want its token", q)
	}
	outputs := map[string]string{"answers": out.String(), "logs": logs.String(), "event stream": sse.String()}
	for name, text := range outputs {
		if text == "" {
			t.Errorf("%s: empty; want something to scan", name)
		}
		for _, secret := range secrets {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s hold secret %q: …%s…", name, secret, text[max(0, i-200):min(len(text), i+len(secret)+50)])
			}
		}
	}
}
