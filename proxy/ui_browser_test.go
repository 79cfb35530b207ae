package proxy

// Real-browser tests of the diagnostics UI (docs/behaviour.md, "The UI"):
// headless Chromium, driven with chromedp, against a proxy with real
// providers (httptest) and real plugin subprocesses (the built-in
// sentiment plugin, served by this test binary; see TestMain).
//
// Without Chromium the tests skip loudly, naming
// scripts/install-test-deps.sh; with CI=true they fail instead.
// HEALPROXY_UPDATE_SCREENSHOT=1 writes docs/ui-small.png (docs/ui.png, a
// fleet with filters and a timeline, is web's);
// HEALPROXY_UI_SHOTS=DIR also writes desktop, dark and phone shots there.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// ---- fixtures -------------------------------------------------------------

// uiHealth is short on purpose: 2 errors trip, a 3 s cooldown, 1 trial to
// recover, and a 1 s reinit cooldown so that reinits can repeat.
func uiHealth() config.Health {
	return config.Health{ErrorThreshold: 2, Cooldown: 3 * time.Second, RecoveryCount: 1,
		AutoReinit: false, ReinitCooldown: time.Second, MaxConcurrentReinit: 5}
}

// newUIUpstream is an upstream answering its Code (200 at first) with a
// JSON body naming the code and the path.
func newUIUpstream(t *testing.T) *proxytest.Upstream {
	t.Helper()
	u := proxytest.NewUpstream(t)
	u.Code.Store(http.StatusOK)
	u.Set(func(w http.ResponseWriter, r *http.Request) {
		code := int(u.Code.Load())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"code":%d,"path":%q}`, code, r.URL.Path)
	})
	return u
}

func uiProvider(t *testing.T, id, name string, h config.Health, ups ...*proxytest.Upstream) config.Provider {
	t.Helper()
	p := config.Provider{ID: id, Name: name, Timeout: 5 * time.Second, Health: h}
	for _, u := range ups {
		pu, err := url.Parse(u.URL + "/api/v3")
		if err != nil {
			t.Fatal(err)
		}
		p.Upstreams = append(p.Upstreams, pu)
	}
	return p
}

func uiModel(key, name string) config.Model {
	return config.Model{Key: key, Name: name, Plugin: "sentiment", Timeout: 10 * time.Second, Health: uiHealth()}
}

func uiConfig(token string, providers []config.Provider, models ...config.Model) *config.Config {
	return &config.Config{Listen: "127.0.0.1:0", Health: uiHealth(), AdminToken: token,
		Providers: providers, Models: models}
}

// uiProxy is a running proxy behind an httptest server.
type uiProxy struct {
	srv *Server
	url string
}

func startUIProxy(t *testing.T, cfg *config.Config) *uiProxy {
	t.Helper()
	srv, hs := startServer(t, cfg)
	p := &uiProxy{srv: srv, url: hs.URL}
	p.waitModelsLoaded(t)
	return p
}

// send makes one request through the proxy to provider id.
func (p *uiProxy) send(t *testing.T, id string) int {
	t.Helper()
	return uiGet(t, p.url+"/providers/"+id+"/ticker")
}

func uiGet(t *testing.T, u string) int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func (p *uiProxy) model(t *testing.T, key string) api.Model {
	t.Helper()
	for _, m := range p.srv.healthDocument().Models.Entries {
		if m.ModelKey == key {
			return m
		}
	}
	t.Fatalf("no model %q in the health document", key)
	return api.Model{}
}

func (p *uiProxy) provider(t *testing.T, id string) api.Provider {
	t.Helper()
	for _, e := range p.srv.healthDocument().Providers.Entries {
		if e.ProviderID == id {
			return e
		}
	}
	t.Fatalf("no provider %q in the health document", id)
	return api.Provider{}
}

func (p *uiProxy) waitModelsLoaded(t *testing.T) {
	t.Helper()
	proxytest.Eventually(t, 30*time.Second, "every model's plugin is loaded", func() bool {
		for _, m := range p.srv.healthDocument().Models.Entries {
			if !m.Loaded || m.Pid == nil {
				return false
			}
		}
		return true
	})
}

// kill SIGKILLs the model's plugin process and returns its pid.
func (p *uiProxy) kill(t *testing.T, key string) int {
	t.Helper()
	m := p.model(t, key)
	if m.Pid == nil {
		t.Fatalf("model %s has no pid", key)
	}
	proc, err := os.FindProcess(*m.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil { // SIGKILL on Unix
		t.Fatalf("kill plugin of %s (pid %d): %v", key, *m.Pid, err)
	}
	return *m.Pid
}

// ---- browser --------------------------------------------------------------

type uiBrowser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors
}

// uiChromePath finds Chromium, or skips (fails with CI=true).
func uiChromePath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "\n" + strings.Repeat("!", 72) + "\n" +
		"!! BROWSER TESTS SKIPPED: no Chromium found (looked for /usr/bin/chromium).\n" +
		"!! Install it with: scripts/install-test-deps.sh   (apt-get install chromium)\n" +
		strings.Repeat("!", 72)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "\nCI=true: failing instead of skipping")
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

func newUIBrowser(t *testing.T) *uiBrowser {
	t.Helper()
	exe := uiChromePath(t)
	// The profile is not a t.TempDir: Chromium's helper processes may
	// still write into it a moment after the browser exits, and TempDir's
	// single RemoveAll then fails the test.
	profile, err := os.MkdirTemp("", "healproxy-ui-profile-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1200, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		err := os.RemoveAll(profile)
		for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond) // poll interval
			err = os.RemoveAll(profile)
		}
		if err != nil {
			t.Errorf("removing the browser profile: %v", err)
		}
	})
	b := &uiBrowser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Network errors (a 401 the page handles, the event stream
			// while the proxy restarts) are expected; anything else that
			// is an error is a bug of the page: an uncaught exception,
			// console.error, a CSP violation.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *uiBrowser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.debug())
	}
}

func (b *uiBrowser) open(u string) {
	b.t.Helper()
	b.do(chromedp.Navigate(u))
	b.waitJS("the page is connected to the event stream", `document.querySelector('#connection').dataset.state === 'live'`, 15*time.Second)
}

// uiEval evaluates expr in the page.
func uiEval[T any](b *uiBrowser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is truthy in the page.
func (b *uiBrowser) waitJS(what, expr string, d time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		b.t.Fatalf("waiting until %s (%s): %v\n%s", what, expr, err, b.debug())
	}
}

func (b *uiBrowser) debug() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#health-diagnostics-result [data-kind]')]
		.filter(r => r.tagName === 'ARTICLE')
		.map(r => r.dataset.kind + ' ' + r.dataset.key + ': ' + r.dataset.status).join('\n') +
		'\nconnection: ' + document.querySelector('#connection').dataset.state +
		'\nnotification: ' + document.querySelector('#notification').textContent`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page state:\n" + s
}

// noProblems fails on any uncaught exception or console error so far.
func (b *uiBrowser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("the page reported %d problem(s):\n%s", len(b.problems), strings.Join(b.problems, "\n"))
	}
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func rowJS(kind, key string) string {
	return `document.querySelector('#health-diagnostics-result article[data-kind=` + jsString(kind) + `][data-key=` + jsString(key) + `]')`
}

func (b *uiBrowser) waitStatus(kind, key, status string, d time.Duration) {
	b.t.Helper()
	b.waitJS(kind+" row "+key+" shows "+status, `(`+rowJS(kind, key)+` || {dataset: {}}).dataset.status === `+jsString(status), d)
}

func (b *uiBrowser) fact(kind, key, name string) string {
	b.t.Helper()
	return uiEval[string](b, `(`+rowJS(kind, key)+`.querySelector('.facts [data-fact=`+jsString(name)+`] dd') || {}).textContent || ''`)
}

func (b *uiBrowser) text(sel string) string {
	b.t.Helper()
	return uiEval[string](b, `(document.querySelector(`+jsString(sel)+`) || {}).textContent || ''`)
}

func (b *uiBrowser) click(sel string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(sel)))
}

// clearNotification empties #notification, so that the next one can be
// waited for.
func (b *uiBrowser) clearNotification() {
	b.t.Helper()
	uiEval[bool](b, `document.querySelector('#notification').replaceChildren(), true`)
}

func (b *uiBrowser) waitNotification(what, contains string, d time.Duration) string {
	b.t.Helper()
	b.waitJS(what, `document.querySelector('#notification').textContent.includes(`+jsString(contains)+`)`, d)
	return b.text("#notification")
}

// noHorizontalOverflow checks the page at the current viewport.
func (b *uiBrowser) noHorizontalOverflow(label string) {
	b.t.Helper()
	type dims struct {
		ScrollWidth int    `json:"scrollWidth"`
		InnerWidth  int    `json:"innerWidth"`
		Widest      string `json:"widest"`
	}
	d := uiEval[dims](b, `(() => {
		let widest = '', max = 0;
		for (const el of document.querySelectorAll('body *')) {
			const r = el.getBoundingClientRect();
			if (r.right > max && !el.closest('.table-wrap')) { max = r.right; widest = el.tagName + '.' + el.className + ' ' + Math.round(r.right); }
		}
		return {scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth, widest};
	})()`)
	if d.ScrollWidth > d.InnerWidth {
		b.t.Errorf("%s: the page scrolls horizontally: scrollWidth %d > innerWidth %d (widest element: %s)",
			label, d.ScrollWidth, d.InnerWidth, d.Widest)
	}
}

func (b *uiBrowser) viewport(w, h int64) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(w, h))
	b.settle()
}

// settle waits two animation frames, so that layout and paint are done.
func (b *uiBrowser) settle() {
	b.t.Helper()
	uiEval[bool](b, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)
}

// ---- tests ----------------------------------------------------------------

// TestBrowserUIRowsAndLiveStatus: rows appear with the right data-status,
// badges, counts and buttons; failing an upstream turns its row
// unavailable, live, without a reload, with its reason, failures table and
// sparkline; recovering turns it healthy again; the page fits 375 px.
func TestBrowserUIRowsAndLiveStatus(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	upA, upB, upC := newUIUpstream(t), newUIUpstream(t), newUIUpstream(t)
	betaHealth := uiHealth()
	betaHealth.Cooldown = 6 * time.Second // room for the checks while it is unavailable
	cfg := uiConfig("", []config.Provider{
		uiProvider(t, "alpha", "Alpha API", uiHealth(), upA),
		uiProvider(t, "beta", "Beta API", betaHealth, upB),
		uiProvider(t, "gamma", "Gamma API", uiHealth(), upC),
	}, uiModel("sent", "Sentiment"))
	px := startUIProxy(t, cfg)
	px.send(t, "alpha")
	px.send(t, "beta")
	b := newUIBrowser(t)
	b.open(px.url + "/")

	b.waitStatus("provider", "alpha", "healthy", 10*time.Second)
	b.waitStatus("provider", "beta", "healthy", 10*time.Second)
	b.waitStatus("provider", "gamma", "unknown", 10*time.Second)
	b.waitStatus("model", "sent", "healthy", 10*time.Second)

	for _, c := range []struct{ kind, key, want string }{
		{"provider", "alpha", "✅healthy"}, {"provider", "gamma", "❔unknown"}, {"model", "sent", "✅healthy"},
	} {
		if got := uiEval[string](b, rowJS(c.kind, c.key)+`.querySelector('.entry-badge').textContent`); got != c.want {
			t.Errorf("%s %s badge = %q; want %q", c.kind, c.key, got, c.want)
		}
	}
	if pid, want := b.fact("model", "sent", "pid"), strconv.Itoa(*px.model(t, "sent").Pid); pid != want {
		t.Errorf("model pid shown = %q; want %q", pid, want)
	}
	if n := uiEval[int](b, `document.querySelectorAll('#health-diagnostics-result button[data-reinit="sent"]').length`); n != 1 {
		t.Errorf("%d reinit buttons for model sent; want 1", n)
	}
	if n := uiEval[int](b, `document.querySelectorAll('#health-diagnostics-result button[data-reset]').length`); n != 3 {
		t.Errorf("%d provider reset buttons; want 3", n)
	}
	if got := b.text(`.card[data-summary="provider"] [data-count="healthy"] .count-n`); got != "2" {
		t.Errorf("providers healthy card = %q; want 2", got)
	}
	if got := b.fact("provider", "alpha", "successes"); got != "1" {
		t.Errorf("alpha successes = %q; want 1", got)
	}
	// relative time with the exact time at hand
	if got := uiEval[string](b, rowJS("provider", "alpha")+`.querySelector('[data-fact="last-success"] time').getAttribute('datetime')`); got == "" {
		t.Error("last success has no datetime")
	}

	// Fail beta: 2 failures (threshold 2) make it unavailable.
	uiEval[bool](b, `window.__notReloaded = true`)
	upB.Code.Store(http.StatusInternalServerError)
	for range 2 {
		if code := px.send(t, "beta"); code != http.StatusInternalServerError {
			t.Fatalf("beta answered %d; want the upstream's 500", code)
		}
	}
	b.waitStatus("provider", "beta", "unavailable", 5*time.Second)
	if !uiEval[bool](b, `window.__notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	if got := uiEval[string](b, rowJS("provider", "beta")+`.querySelector('.entry-badge').textContent`); got != "❌unavailable" {
		t.Errorf("beta badge = %q", got)
	}
	if got := b.fact("provider", "beta", "cooldown"); !strings.Contains(got, "left") && !strings.Contains(got, "ending") {
		t.Errorf("beta cooldown fact = %q; want a countdown", got)
	}
	if got := uiEval[string](b, rowJS("provider", "beta")+`.querySelector('.last-error').textContent`); !strings.Contains(got, "500") {
		t.Errorf("beta last error = %q; want the 500", got)
	}
	if got := b.text(`.card[data-summary="provider"] [data-count="unavailable"] .count-n`); got != "1" {
		t.Errorf("providers unavailable card = %q; want 1", got)
	}
	if got := uiEval[string](b, `document.querySelector('.card.overall').dataset.overall`); got != "unavailable" {
		t.Errorf("overall = %q; want unavailable", got)
	}

	// The row explains itself: reason, next trial, failures table. The
	// page's next read moves beta first (problems first); a row being
	// moved cannot be clicked, so the click waits for the order.
	b.waitJS("beta is listed first", `document.querySelector('#health-diagnostics-result [data-group="provider"] article[data-kind]').dataset.key === 'beta'`, 5*time.Second)
	b.click(`article[data-kind="provider"][data-key="beta"] details.explain > summary`)
	b.waitJS("beta's details are open", rowJS("provider", "beta")+`.querySelector('details').open`, 2*time.Second)
	expl := uiEval[string](b, rowJS("provider", "beta")+`.querySelector('.explain-body').textContent`)
	for _, want := range []string{"Why", "Next trial", "Recent failures", "500", "Latency"} {
		if !strings.Contains(expl, want) {
			t.Errorf("beta's explanation lacks %q:\n%s", want, expl)
		}
	}
	if n := uiEval[int](b, rowJS("provider", "beta")+`.querySelectorAll('table.failures tbody tr').length`); n != 2 {
		t.Errorf("%d failure rows; want 2", n)
	}
	// the sparkline shows the errors
	b.waitJS("beta's sparkline shows errors", rowJS("provider", "beta")+`.querySelector('.spark svg.sparkline rect.spark-err')`, 5*time.Second)

	// Phone width: no horizontal scrolling, with the details open.
	b.viewport(375, 800)
	b.noHorizontalOverflow("375 px, beta unavailable")
	b.viewport(1200, 900)

	// Recover: after the cooldown one trial success makes it healthy again.
	upB.Code.Store(http.StatusOK)
	deadline := time.Now().Add(15 * time.Second)
	for uiEval[string](b, rowJS("provider", "beta")+`.dataset.status`) != "healthy" {
		if time.Now().After(deadline) {
			t.Fatalf("beta did not turn healthy again\n%s", b.debug())
		}
		if px.provider(t, "beta").Status != "unavailable" {
			px.send(t, "beta")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.noProblems()
}

// TestBrowserUIReinitAndAutoHeal: a killed plugin turns its row
// unavailable; its Reinit button brings it back with a new pid; Auto-Heal
// brings back two killed models at once.
// TestBrowserUINamelessAndManyEntries: entries without a name (the name
// is then the id), with one, and many of them render as text a person
// can read: the id once, never "null" or "undefined" (DOM methods such as
// replaceChildren turn a null argument into the text "null").
func TestBrowserUINamelessAndManyEntries(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	up := newUIUpstream(t)
	var providers []config.Provider
	for i := range 30 {
		name := ""
		if i%3 == 0 {
			name = "Exchange " + strconv.Itoa(i)
		}
		providers = append(providers, uiProvider(t, "p"+strconv.Itoa(i), name, uiHealth(), up))
	}
	px := startUIProxy(t, uiConfig("", providers, uiModel("named", "Sentiment"), uiModel("nameless", "")))
	px.send(t, "p1")
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "p1", "healthy", 10*time.Second)
	if n := uiEval[int](b, `document.querySelectorAll('#health-diagnostics-result article[data-kind]').length`); n != 32 {
		t.Errorf("%d rows; want 32", n)
	}
	for _, c := range []struct{ kind, key, want string }{
		{"provider", "p1", "p1"}, {"provider", "p3", "Exchange 3p3"}, {"model", "nameless", "nameless"}, {"model", "named", "Sentimentnamed"},
	} {
		if got := uiEval[string](b, rowJS(c.kind, c.key)+`.querySelector('.entry-title').textContent`); got != c.want {
			t.Errorf("%s %s title = %q; want %q", c.kind, c.key, got, c.want)
		}
	}
	text := uiEval[string](b, `document.body.innerText`)
	for _, bad := range []string{"null", "undefined", "NaN"} {
		if i := strings.Index(text, bad); i >= 0 {
			t.Errorf("the page shows %q: …%s…", bad, text[max(0, i-80):min(len(text), i+40)])
		}
	}
	b.noProblems()
}

func TestBrowserUIReinitAndAutoHeal(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	up := newUIUpstream(t)
	cfg := uiConfig("", []config.Provider{uiProvider(t, "alpha", "Alpha API", uiHealth(), up)},
		uiModel("m1", "Model one"), uiModel("m2", "Model two"), uiModel("m3", "Model three"))
	px := startUIProxy(t, cfg)
	b := newUIBrowser(t)
	b.open(px.url + "/")
	for _, k := range []string{"m1", "m2", "m3"} {
		b.waitStatus("model", k, "healthy", 10*time.Second)
	}

	old := px.kill(t, "m1")
	b.waitStatus("model", "m1", "unavailable", 10*time.Second)
	if got := b.fact("model", "m1", "loaded"); got != "no" {
		t.Errorf("m1 loaded = %q after the kill; want no", got)
	}
	b.click(`button[data-reinit="m1"]`)
	b.waitStatus("model", "m1", "healthy", 20*time.Second)
	note := b.waitNotification("the reinit is reported", "Reinit of m1 done", 10*time.Second)
	if !strings.Contains(note, "success") {
		t.Errorf("notification %q lacks the result", note)
	}
	m1 := px.model(t, "m1")
	if m1.Pid == nil || *m1.Pid == old {
		t.Fatalf("m1 pid after reinit: %v (old %d)", m1.Pid, old)
	}
	b.waitJS("m1's row shows the new pid", rowJS("model", "m1")+`.querySelector('[data-fact="pid"] dd').textContent === `+jsString(strconv.Itoa(*m1.Pid)), 5*time.Second)

	old2, old3 := px.kill(t, "m2"), px.kill(t, "m3")
	b.waitStatus("model", "m2", "unavailable", 10*time.Second)
	b.waitStatus("model", "m3", "unavailable", 10*time.Second)
	// The card counts the server's summary, read again at most every
	// 500 ms after events: a read sent before m3's event may land after it.
	b.waitJS("the models' unavailable card counts 2",
		`document.querySelector('.card[data-summary="model"] [data-count="unavailable"] .count-n').textContent === "2"`, 5*time.Second)
	b.clearNotification()
	b.click("#auto-heal")
	b.waitStatus("model", "m2", "healthy", 20*time.Second)
	b.waitStatus("model", "m3", "healthy", 20*time.Second)
	note = b.waitNotification("the auto-heal is reported", "Auto-heal: 2 of 2 reinitialised", 10*time.Second)
	for _, k := range []string{"m2", "m3"} {
		if !strings.Contains(note, k+": success") {
			t.Errorf("notification %q lacks %s's result", note, k)
		}
	}
	if p := px.model(t, "m2").Pid; p == nil || *p == old2 {
		t.Errorf("m2 pid after auto-heal: %v (old %d)", p, old2)
	}
	if p := px.model(t, "m3").Pid; p == nil || *p == old3 {
		t.Errorf("m3 pid after auto-heal: %v (old %d)", p, old3)
	}
	b.waitJS("the models card is all healthy again", `document.querySelector('.card[data-summary="model"] [data-count="healthy"] .count-n').textContent === '3'`, 5*time.Second)
	b.noProblems()
}

// TestBrowserUIAdminToken: with an admin token, an action asks for it in
// a form; a wrong one gives a clear 401 message; the right one is kept for
// the session and the action succeeds.
func TestBrowserUIAdminToken(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	const token = "ui-test-admin-token"
	up := newUIUpstream(t)
	cfg := uiConfig(token, []config.Provider{uiProvider(t, "alpha", "Alpha API", uiHealth(), up)}, uiModel("m1", "Model one"))
	px := startUIProxy(t, cfg)
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("model", "m1", "healthy", 10*time.Second)
	pid0 := *px.model(t, "m1").Pid

	// wrong token: 401 message, nothing kept, nothing done
	b.click(`button[data-reinit="m1"]`)
	b.waitJS("the token form opens", `document.querySelector('#token-dialog').open`, 5*time.Second)
	b.do(chromedp.SendKeys(chromedp.CSS("#admin-token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#token-submit")))
	note := b.waitNotification("the 401 is reported", "401", 10*time.Second)
	if !strings.Contains(note, "refused") {
		t.Errorf("401 notification %q is not clear", note)
	}
	if uiEval[bool](b, `document.querySelector('#token-dialog').open`) {
		t.Error("the token form is still open after a refused token")
	}
	if got := uiEval[string](b, `sessionStorage.getItem('healproxy.admin-token') || ''`); got != "" {
		t.Errorf("a refused token was kept: %q", got)
	}
	if p := *px.model(t, "m1").Pid; p != pid0 {
		t.Errorf("m1 was reinitialised with a wrong token (pid %d → %d)", pid0, p)
	}

	// by keyboard: Enter on the button opens the form, Escape cancels it
	// and gives the focus back to the button
	b.clearNotification()
	b.do(chromedp.Focus(chromedp.CSS(`button[data-reinit="m1"]`)), chromedp.KeyEvent(kb.Enter))
	b.waitJS("the token form opens from the keyboard", `document.querySelector('#token-dialog').open && document.activeElement.id === 'admin-token'`, 5*time.Second)
	b.do(chromedp.KeyEvent(kb.Escape))
	b.waitNotification("the cancel is reported", "Cancelled", 5*time.Second)
	if !uiEval[bool](b, `document.activeElement === document.querySelector('button[data-reinit="m1"]')`) {
		t.Error("the focus did not return to the Reinit button")
	}

	// right token: the action succeeds, the token is kept for the session
	b.clearNotification()
	b.click(`button[data-reinit="m1"]`)
	b.waitJS("the token form opens again", `document.querySelector('#token-dialog').open`, 5*time.Second)
	b.do(chromedp.SendKeys(chromedp.CSS("#admin-token"), token),
		chromedp.Click(chromedp.CSS("#token-submit")))
	b.waitNotification("the reinit is reported", "Reinit of m1 done", 20*time.Second)
	if p := *px.model(t, "m1").Pid; p == pid0 {
		t.Error("m1 has its old pid after an accepted reinit")
	}
	if got := uiEval[string](b, `sessionStorage.getItem('healproxy.admin-token') || ''`); got != token {
		t.Errorf("session token = %q; want the accepted one", got)
	}
	if got := uiEval[string](b, `localStorage.length + ':' + document.cookie`); got != "0:" {
		t.Errorf("the token leaked beyond sessionStorage: %q", got)
	}

	// next action: no prompt, the stored token is sent
	b.clearNotification()
	b.click(`button[data-reset="alpha"]`)
	b.waitNotification("the reset is reported", "Reset of alpha done", 10*time.Second)
	if uiEval[bool](b, `document.querySelector('#token-dialog').open`) {
		t.Error("the token form opened although a token is stored")
	}
	b.noProblems()
}

// TestBrowserUIForbiddenWithoutToken: without an admin token, a client
// that is not on loopback gets a clear 403 message.
func TestBrowserUIForbiddenWithoutToken(t *testing.T) {
	uiChromePath(t)
	ip := uiNonLoopbackIP()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this host to reach the proxy from")
	}
	up := newUIUpstream(t)
	cfg := uiConfig("", []config.Provider{uiProvider(t, "alpha", "Alpha API", uiHealth(), up)}, uiModel("m1", "Model one"))
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := newServer(t, cfg)
	hs := &http.Server{Handler: srv}
	hs.RegisterOnShutdown(srv.BeginShutdown)
	go hs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(ctx) // before the Server's own close (cleanups run last first)
	})
	b := newUIBrowser(t)
	b.open("http://" + l.Addr().String() + "/")
	b.waitStatus("model", "m1", "healthy", 30*time.Second)
	b.click(`button[data-reinit="m1"]`)
	note := b.waitNotification("the 403 is reported", "403", 10*time.Second)
	if !strings.Contains(note, "loopback only") {
		t.Errorf("403 notification %q does not say why", note)
	}
	if uiEval[bool](b, `document.querySelector('#token-dialog').open`) {
		t.Error("a 403 opened the token form")
	}
	b.noProblems()
}

func uiNonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestBrowserUIReconnectsAfterRestart: the page follows a proxy that stops
// and starts again on the same address, without a reload.
func TestBrowserUIReconnectsAfterRestart(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	up := newUIUpstream(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	serve := func(l net.Listener, cfg *config.Config) (stop func()) {
		var closeSrv func()
		srv := newServer(t, cfg, closedBy(&closeSrv))
		hs := &http.Server{Handler: srv}
		hs.RegisterOnShutdown(srv.BeginShutdown)
		go hs.Serve(l)
		var once sync.Once
		stop = func() {
			once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				hs.Shutdown(ctx)
				closeSrv()
			})
		}
		t.Cleanup(stop)
		return stop
	}
	stop1 := serve(l, uiConfig("", []config.Provider{uiProvider(t, "alpha", "Alpha API", uiHealth(), up)}))

	b := newUIBrowser(t)
	b.open("http://" + addr + "/")
	b.waitStatus("provider", "alpha", "unknown", 10*time.Second)
	uiEval[bool](b, `window.__notReloaded = true`)

	stop1()
	b.waitJS("the page notices the proxy is gone", `document.querySelector('#connection').dataset.state !== 'live'`, 10*time.Second)

	// The same address again, with a new provider "delta".
	var l2 net.Listener
	proxytest.Eventually(t, 10*time.Second, "the address can be listened on again", func() bool {
		l2, err = net.Listen("tcp", addr)
		return err == nil
	})
	up2 := newUIUpstream(t)
	deltaHealth := uiHealth()
	deltaHealth.Cooldown = time.Minute
	serve(l2, uiConfig("", []config.Provider{
		uiProvider(t, "alpha", "Alpha API", uiHealth(), up),
		uiProvider(t, "delta", "Delta API", deltaHealth, up2),
	}))
	b.waitJS("the page is live again", `document.querySelector('#connection').dataset.state === 'live'`, 30*time.Second)
	b.waitStatus("provider", "delta", "unknown", 10*time.Second)

	// and live updates flow on the new stream
	up2.Code.Store(http.StatusBadGateway)
	uiGet(t, "http://"+addr+"/providers/delta/x")
	uiGet(t, "http://"+addr+"/providers/delta/x")
	b.waitStatus("provider", "delta", "unavailable", 10*time.Second)
	if !uiEval[bool](b, `window.__notReloaded === true`) {
		t.Fatal("the page reloaded")
	}
	b.noProblems()
}

// TestBrowserUIScreenshot renders a mixed state: a healthy, a degraded and
// an unavailable provider, a healthy and an unavailable model. It checks
// the phone width and keeps a screenshot of a small setup in
// docs/ui-small.png (written only with HEALPROXY_UPDATE_SCREENSHOT=1).
func TestBrowserUIScreenshot(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	long := uiHealth()
	long.Cooldown = 2 * time.Minute // stays unavailable while we look
	long.ErrorThreshold = 4         // degraded from 2 errors
	okUp, flaky, down := newUIUpstream(t), newUIUpstream(t), newUIUpstream(t)
	okUp2 := newUIUpstream(t)
	cfg := uiConfig("", []config.Provider{
		uiProvider(t, "coingecko", "CoinGecko API", long, okUp),
		uiProvider(t, "binance", "Binance Spot API", long, okUp2, flaky),
		uiProvider(t, "kraken", "Kraken Public API", long, down),
	}, uiModel("crypto_sent_0", "Crypto sentiment"), uiModel("crypto_sent_1", "Crypto sentiment (backup)"))
	px := startUIProxy(t, cfg)

	for range 6 {
		px.send(t, "coingecko")
	}
	// binance: its second upstream fails; failover keeps clients served,
	// and the provider shows degraded.
	flaky.Code.Store(http.StatusServiceUnavailable)
	proxytest.Eventually(t, 10*time.Second, "binance is degraded", func() bool {
		px.send(t, "binance")
		return px.provider(t, "binance").Status == "degraded"
	})
	down.Code.Store(http.StatusInternalServerError)
	for range 4 {
		px.send(t, "kraken")
	}
	if st := px.provider(t, "kraken").Status; st != "unavailable" {
		t.Fatalf("kraken is %s; want unavailable", st)
	}
	body := strings.NewReader(`{"inputs":["BTC breaks out to a new high","ETH dumps after the hack"]}`)
	res, err := http.Post(px.url+"/models/crypto_sent_0/predict", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	px.kill(t, "crypto_sent_1")
	proxytest.Eventually(t, 10*time.Second, "crypto_sent_1 is unavailable", func() bool {
		return px.model(t, "crypto_sent_1").Status == "unavailable"
	})

	b := newUIBrowser(t)
	b.viewport(1100, 900)
	b.open(px.url + "/")
	b.waitStatus("provider", "coingecko", "healthy", 10*time.Second)
	b.waitStatus("provider", "binance", "degraded", 10*time.Second)
	b.waitStatus("provider", "kraken", "unavailable", 10*time.Second)
	b.waitStatus("model", "crypto_sent_0", "healthy", 10*time.Second)
	b.waitStatus("model", "crypto_sent_1", "unavailable", 10*time.Second)
	b.waitJS("sparklines are drawn", `document.querySelectorAll('.spark svg.sparkline').length >= 5`, 10*time.Second)
	b.click(`article[data-kind="provider"][data-key="kraken"] details.explain > summary`)
	b.waitJS("kraken's failures table is shown", rowJS("provider", "kraken")+`.querySelector('table.failures')`, 5*time.Second)
	b.click("#refresh-health")
	b.waitNotification("the refresh is reported", "Health refreshed", 10*time.Second)

	shot := func(name string) []byte {
		t.Helper()
		b.settle()
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if len(png) < 1000 {
			t.Fatalf("screenshot %s: %d bytes", name, len(png))
		}
		if dir := os.Getenv("HEALPROXY_UI_SHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return png
	}
	desktop := shot("desktop.png")
	if os.Getenv("HEALPROXY_UPDATE_SCREENSHOT") == "1" {
		if err := os.MkdirAll("../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../docs/ui-small.png", desktop, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote docs/ui-small.png")
	}
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	}))
	shot("dark.png")

	b.viewport(375, 812)
	b.noHorizontalOverflow("375 px, mixed state")
	shot("phone.png")
	b.noProblems()
}
