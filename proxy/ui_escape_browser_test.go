package proxy

// Browser tests of the UI's security (SECURITY.md): what the UI shows from
// the config and from upstreams is text, never markup; and a page of
// another site cannot make a local browser trigger an admin action.

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// markupUpstream is a raw TCP upstream whose status line holds markup:
// net/http's error for it quotes the status code, so the upstream chooses
// (part of) the last_error_message the UI shows.
func markupUpstream(t *testing.T, status string) string {
	t.Helper()
	return "http://" + newRawUpstream(t, func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for { // the request head
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		c.Write([]byte("HTTP/1.1 " + status + " OK\r\nContent-Length: 0\r\n\r\n"))
	}).addr()
}

// TestBrowserUIEscapesNamesAndErrors: a provider name and an upstream
// error message that hold <script> and <img onerror> render as literal
// text; no script of theirs runs.
func TestBrowserUIEscapesNamesAndErrors(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	const name = `<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned = 'name'">`
	const status = `<img/src=x/onerror=window.__pwned=1>`
	pc := config.Provider{ID: "xss", Name: name, Timeout: 5 * time.Second, Health: withCooldown(uiHealth(), time.Hour)}
	pc.Upstreams = append(pc.Upstreams, mustURL(t, markupUpstream(t, status)+"/api"))
	px := startUIProxy(t, uiConfig("", []config.Provider{pc}))
	for range 2 {
		if code := px.send(t, "xss"); code != http.StatusBadGateway {
			t.Fatalf("request to the markup upstream: %d; want 502", code)
		}
	}
	doc := px.provider(t, "xss")
	if doc.Status != breaker.Unavailable.String() || doc.LastErrorMessage == nil || !strings.Contains(*doc.LastErrorMessage, "<img/src=x") {
		t.Fatalf("provider is %s with last error %v; want unavailable with the upstream's markup in it", doc.Status, doc.LastErrorMessage)
	}

	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "xss", "unavailable", 10*time.Second)
	b.click(`article[data-kind="provider"][data-key="xss"] details.explain > summary`)
	b.waitJS("the details are open", rowJS("provider", "xss")+`.querySelector('details').open`, 2*time.Second)
	b.settle()
	row := uiEval[string](b, rowJS("provider", "xss")+`.textContent`)
	if !strings.Contains(row, name) {
		t.Errorf("the row does not show the provider name as text %q:\n%s", name, row)
	}
	if !strings.Contains(row, status) {
		t.Errorf("the row does not show the upstream's error as text %q:\n%s", status, row)
	}
	if pwned := uiEval[string](b, `String(window.__pwned)`); pwned != "undefined" {
		t.Errorf("window.__pwned = %s: markup from the config or an upstream ran", pwned)
	}
	if n := uiEval[int](b, `document.querySelectorAll('[onerror], img[src="x"], #health-diagnostics-result script').length`); n != 0 {
		t.Errorf("got %d elements made of markup from the config or an upstream; want none", n)
	}
	b.noProblems()
}

// TestBrowserCrossSiteFormCannotHeal: a page of another site (served as
// localhost, the proxy being 127.0.0.1) submits a form to the proxy's
// self-heal endpoint. The browser is a loopback client and no token is
// configured, yet the proxy refuses it and the provider stays in
// cooldown.
func TestBrowserCrossSiteFormCannotHeal(t *testing.T) {
	uiChromePath(t)
	pc := uiProvider(t, "victim", "Victim API", withCooldown(uiHealth(), time.Hour))
	pc.Upstreams = append(pc.Upstreams, mustURL(t, proxytest.DeadURL(t)))
	logger, logs := proxytest.CaptureLogs()
	srv, hs := startServer(t, uiConfig("", []config.Provider{pc}), withLogger(logger))
	for range 4 {
		uiGet(t, hs.URL+"/providers/victim/x")
	}
	u := srv.state.Load().providers["victim"].Upstreams[0]
	if g := u.Health.Status(); g != breaker.Unavailable {
		t.Fatalf("victim is %v; want unavailable", g)
	}
	target := hs.URL + "/api/diagnostics/self-heal?provider_id=victim"
	evil := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>evil</title>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink1" action="` + target + `"><input name="a" value="b"></form>
<form id="g" method="POST" target="sink2" action="` + target + `"></form>
<script>document.getElementById('f').submit(); document.getElementById('g').submit();</script>`))
	})
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	b := newUIBrowser(t)
	b.do(chromedp.Navigate(evilURL))
	proxytest.Eventually(t, 15*time.Second, "the proxy refused both cross-site posts", func() bool {
		return strings.Count(logs.String(), "admin request refused: cross-site") >= 2
	})
	if g := u.Health.Status(); g != breaker.Unavailable {
		t.Errorf("victim is %v after the cross-site posts; want still unavailable", g)
	}
	if strings.Contains(logs.String(), "self-heal: provider reset") {
		t.Errorf("the proxy logged a self-heal:\n%s", logs)
	}
}

func withCooldown(h config.Health, d time.Duration) config.Health {
	h.Cooldown = d
	return h
}
