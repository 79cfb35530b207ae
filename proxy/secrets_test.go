package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/proctest"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// echoUpstream is a TCP echo service on loopback: whatever a connection
// sends comes back as it is, the way a wrong port or a misconfigured
// upstream answers. Its "answer" to a request is the request itself.
func echoUpstream(t *testing.T) string {
	t.Helper()
	return newRawUpstream(t, func(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				if _, werr := io.WriteString(c, line); werr != nil {
					return
				}
			}
			if err != nil || line == "\r\n" {
				return // the head echoed: close, as a line-based service would
			}
		}
	}).addr()
}

// recordEvents records the event stream of the proxy at base until stop,
// which waits for the recording to end.
func recordEvents(base string) (events *proctest.Buffer, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	events = &proctest.Buffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/diagnostics/events", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(events, resp.Body)
			resp.Body.Close()
		}
	}()
	return events, func() { cancel(); <-done }
}

// TestNoSecretThroughEchoedRequests: an upstream that answers non-HTTP
// bytes echoing the request makes the HTTP parse error quote the request
// target, the upstream's query with its API key in it. No output of the
// proxy may carry it, nor the injected header's value: the error answer,
// the health document, the report (JSON and CSV), the logs (text and
// JSON), the event stream, the webhook's body and the state file.
func TestNoSecretThroughEchoedRequests(t *testing.T) {
	const (
		querySecret  = "SECRET-QUERY-456"
		headerSecret = "SECRET-HEADER-789"
	)
	echo := echoUpstream(t)
	hook := proxytest.NewUpstream(t)

	statePath := filepath.Join(t.TempDir(), "state")
	src := `
state { path = "` + statePath + `" }
provider "echo" {
  upstreams = ["http://` + echo + `/base?apikey=` + querySecret + `"]
  headers   = { "X-Api-Key" = "` + headerSecret + `" }
  timeout   = "5s"
  health {
    error_threshold = 2
    cooldown        = "1m"
  }
}
alert "ops" {
  webhook      = "` + hook.URL + `/hook"
  min_interval = "0s"
}
`
	logs := &proctest.Buffer{}
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var closeServer func()
	_, ts := startHCL(t, src, withLogger(logger), closedBy(&closeServer))

	sse, stopEvents := recordEvents(ts.URL)
	defer stopEvents()

	var out strings.Builder
	call := func(method, path string) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"a":1}`)
		}
		resp, b := proxytest.Do(t, http.DefaultClient, method, ts.URL+path, body, nil)
		fmt.Fprintf(&out, "%s %s -> %s %v\n%s\n", method, path, resp.Status, resp.Header, b)
	}
	// GET takes the lean client, POST http.Transport: both parse the echo.
	call("GET", "/providers/echo/x?client=1")
	call("POST", "/providers/echo/y")
	proxytest.Eventually(t, 20*time.Second, "an alert for the tripped provider", func() bool { return hook.Hits.Load() > 0 })
	for _, p := range []string{"/api/diagnostics/health", "/api/diagnostics/history", "/api/diagnostics/report?format=json",
		"/api/diagnostics/report?format=csv", "/api/diagnostics/alerts"} {
		call("GET", p)
	}
	stopEvents()
	closeServer() // writes the state file
	state, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatalf("reading the state file: %v", err)
	}
	var hookText strings.Builder
	for _, r := range hook.Requests() {
		hookText.WriteString(r.Body + "\n")
	}

	// The echo was parsed, and failed: else this test proves nothing.
	if !strings.Contains(out.String(), "malformed HTTP") {
		t.Errorf("answers: want the parse error of the echoed request line:\n%s", out.String())
	}
	outputs := map[string]string{"answers": out.String(), "logs": logs.String(), "event stream": sse.String(),
		"webhook bodies": hookText.String(), "state file": string(state)}
	for name, text := range outputs {
		if text == "" {
			t.Errorf("%s: empty; want something to scan", name)
		}
		for _, secret := range []string{querySecret, headerSecret} {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s hold secret %q: …%s…", name, secret, text[max(0, i-200):min(len(text), i+len(secret)+50)])
			}
		}
	}
}

// TestNoSecretInURLHeaders: the upstream's API key in its URL's query
// does not come back to the client in any header that carries a URL:
// Location to the same host over another scheme or port, to another host
// (an upstream that copied its own query into the redirect), Link (both
// kinds of URL), Content-Location and Refresh. A URL into the upstream's
// base path is mapped to the provider's own path.
func TestNoSecretInURLHeaders(t *testing.T) {
	const secret = "SECRET-QUERY-456"
	var self string
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		q := "apikey=" + secret + "&x=1"
		switch strings.TrimPrefix(r.URL.Path, "/base") {
		case "/scheme":
			h.Set("Location", "https://"+self+"/base/next?"+q)
		case "/port":
			h.Set("Location", "http://127.0.0.1:1/base/next?"+q)
		case "/host":
			h.Set("Location", "http://other.example/callback?"+q)
		case "/fragment":
			h.Set("Location", "http://other.example/callback#apikey="+secret)
		case "/link":
			h.Set("Link", `<http://`+self+`/base/page2?`+q+`&page=2>; rel="next", <https://other.example/x?`+q+`>; rel="alternate"`)
			h.Set("Content-Location", "http://other.example/doc?"+q)
			h.Set("Refresh", "5; url=http://other.example/r?"+q)
		}
		w.WriteHeader(http.StatusFound)
	})
	self = strings.TrimPrefix(up.URL, "http://")
	_, ts := startProviders(t, proxytest.Provider(t, "p", up.URL+"/base?apikey="+secret))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/scheme", "/port", "/host", "/fragment", "/link"} {
		resp, _ := proxytest.Do(t, client, "GET", ts.URL+"/providers/p"+path, nil, nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("%s: got status %d; want the upstream's 302", path, resp.StatusCode)
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					t.Errorf("%s: header %s: %q holds the upstream's key", path, k, v)
				}
			}
		}
		if path == "/link" {
			if l := resp.Header.Get("Link"); !strings.Contains(l, "</providers/p/page2?page=2&x=1>") {
				t.Errorf("Link %q: want the next page mapped to the provider's path", l)
			}
		}
		if path == "/host" {
			if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "http://other.example/callback?") || !strings.HasSuffix(l, "&x=1") {
				t.Errorf("Location = %q; want the other host's URL, its other parameters kept", l)
			}
		}
	}
	if int(up.Hits.Load()) != 5 {
		t.Errorf("upstream got %d requests; want 5", int(up.Hits.Load()))
	}
}
