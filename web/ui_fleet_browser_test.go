package web_test

// Real-browser tests of the diagnostics UI with a fleet (docs/behaviour.md,
// "The UI"): headless Chromium against a real proxy built from HCL, with
// real upstreams (httptest) and real plugin subprocesses (the built-in
// sentiment plugin, served by this test binary; see TestMain). They find
// entries (search, status filters, sort, pages, the URL), use the page
// with the keyboard only, open timelines, and read the rendered text.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/browsertest"
	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/proxy"
)

func TestMain(m *testing.M) {
	testplugins.ServeIfAsked(nil) // the sentiment plugin, when re-executed as one
	os.Exit(m.Run())
}

// ---- fixtures -------------------------------------------------------------

// upstream is an httptest upstream whose answer status can be switched.
type upstream struct {
	*httptest.Server
	code atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.code.Store(http.StatusOK)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(u.code.Load()))
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// fleet is a running proxy built from HCL, behind an httptest server.
type fleet struct {
	srv       *proxy.Server
	url       string
	histories atomic.Int32 // GET /api/diagnostics/history answered
	unscoped  atomic.Int32 // of which without ?kind=&key= (a whole fleet's)
	wholes    atomic.Int32 // GET /api/diagnostics/health without a limit (a whole fleet's)
}

func startFleet(t *testing.T, src string) *fleet {
	t.Helper()
	cfg, diags := config.Parse("fleet.hcl", []byte(src), config.LoadOptions{
		Getenv: func(string) (string, bool) { return "", false }, // no HEALTH_* from the environment
	})
	if diags.HasErrors() {
		t.Fatalf("config: %s", diags.Error())
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{srv: srv}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/diagnostics/history" {
			f.histories.Add(1)
			if q := r.URL.Query(); q.Get("kind") == "" || q.Get("key") == "" {
				f.unscoped.Add(1)
			}
		}
		if r.URL.Path == "/api/diagnostics/health" && r.URL.Query().Get("limit") == "" && strings.Contains(r.UserAgent(), "Chrome") {
			f.wholes.Add(1) // by the browser, not the test itself
		}
		srv.ServeHTTP(w, r)
	}))
	hs.Config.RegisterOnShutdown(srv.BeginShutdown)
	hs.Start()
	t.Cleanup(func() {
		srv.BeginShutdown() // end event streams, or Close waits for them
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	f.url = hs.URL
	return f
}

func (f *fleet) health(t *testing.T) api.Health {
	t.Helper()
	var doc api.Health
	getJSON(t, f.url+"/api/diagnostics/health", &doc)
	return doc
}

func (f *fleet) provider(t *testing.T, id string) api.Provider {
	t.Helper()
	for _, p := range f.health(t).Providers.Entries {
		if p.ProviderID == id {
			return p
		}
	}
	t.Fatalf("no provider %q", id)
	return api.Provider{}
}

func (f *fleet) send(t *testing.T, id string) {
	t.Helper()
	res, err := http.Get(f.url + "/providers/" + id + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// admin sends an admin request from loopback (no token is configured).
func (f *fleet) admin(t *testing.T, path, body string) {
	t.Helper()
	res, err := http.Post(f.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the page -------------------------------------------------------------

type page struct {
	*browsertest.Browser
	t *testing.T
}

func openPage(t *testing.T, u string) *page {
	t.Helper()
	b := browsertest.New(t, browsertest.Options{Width: 1200, Height: 900})
	p := &page{Browser: b, t: t}
	b.Debug = p.state
	p.Open(u)
	p.waitReady()
	return p
}

// waitReady waits until the page shows the health document and listens
// to the event stream.
func (p *page) waitReady() {
	p.t.Helper()
	p.WaitJS("the page is connected and shows the health document",
		`document.querySelector('#connection').dataset.state === 'live' && document.body.dataset.ready === 'true'`, 20*time.Second)
}

func (p *page) state() string {
	ctx, cancel := context.WithTimeout(p.Context(), 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.search + '\n' +
		[...document.querySelectorAll('#health-diagnostics-result article[data-kind]')]
		.map(r => r.dataset.kind + ' ' + r.dataset.key + ': ' + r.dataset.status).join('\n')`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return "page state: " + s
}

// rows are the kind's rows on the page, in order.
func (p *page) rows(kind string) []string {
	p.t.Helper()
	return browsertest.Eval[[]string](p.Browser, `[...document.querySelectorAll('#health-diagnostics-result [data-group=`+
		browsertest.JS(kind)+`] article[data-kind]')].map(r => r.dataset.key)`)
}

// waitRows waits until the kind's rows are want.
func (p *page) waitRows(what, kind string, want []string) {
	p.t.Helper()
	js, _ := json.Marshal(want)
	p.WaitJS(what, `JSON.stringify([...document.querySelectorAll('#health-diagnostics-result [data-group=`+browsertest.JS(kind)+
		`] article[data-kind]')].map(r => r.dataset.key)) === `+browsertest.JS(string(js)), 10*time.Second)
}

// search empties the search box, then types text into it.
func (p *page) search(text string) {
	p.t.Helper()
	p.Do(chromedp.Evaluate[chromedp.Void](`(() => { const el = document.querySelector('#filter'); el.value = ''; el.dispatchEvent(new Event('input')); })()`))
	if text != "" {
		p.Do(chromedp.SendKeys(`#filter`, text))
	}
}

func (p *page) key(k string) {
	p.t.Helper()
	p.Do(chromedp.KeyEvent(k))
}

// tabTo presses Tab until the focused element matches sel (at most n times).
func (p *page) tabTo(sel string, n int) {
	p.t.Helper()
	for range n {
		if browsertest.Eval[bool](p.Browser, `!!document.activeElement && document.activeElement.matches(`+browsertest.JS(sel)+`)`) {
			return
		}
		p.key(kb.Tab)
	}
	p.t.Fatalf("%d Tabs never reached %s; focus is on %s", n, sel,
		browsertest.Eval[string](p.Browser, `document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : 'nothing'`))
}

// badText fails on "null", "undefined", "NaN" or "[object Object]" in the
// page's rendered text (innerText: what a user reads) or in the tooltips
// and labels a user hears or hovers.
func (p *page) badText(label string) {
	p.t.Helper()
	text := browsertest.Eval[string](p.Browser, `document.body.innerText + '\n' +
		[...document.querySelectorAll('[title], [aria-label], [data-tip]')].map(e =>
			(e.getAttribute('title') || '') + ' ' + (e.getAttribute('aria-label') || '') + ' ' + (e.getAttribute('data-tip') || '')).join('\n') + '\n' +
		[...document.querySelectorAll('svg title')].map(e => e.textContent).join('\n')`)
	for _, bad := range []string{"null", "undefined", "NaN", "[object Object]"} {
		re := regexp.MustCompile(`\b` + regexp.QuoteMeta(bad) + `\b`)
		if bad == "[object Object]" {
			re = regexp.MustCompile(regexp.QuoteMeta(bad))
		}
		if loc := re.FindStringIndex(text); loc != nil {
			p.t.Errorf("%s: the page shows %q: …%s…", label, bad, text[max(0, loc[0]-80):min(len(text), loc[1]+40)])
		}
	}
}

// ---- tests ----------------------------------------------------------------

// fleetHCL is 120 providers (every third with a name, every seventh in
// "eu-west"), three of them failing, a named and a nameless model, and a
// model whose plugin never starts.
func fleetHCL(good, bad *upstream) string {
	var b strings.Builder
	b.WriteString(`health {
  error_threshold = 2
  cooldown        = "10m"
  auto_reinit     = false
}
`)
	for i := range 120 {
		id := fmt.Sprintf("p%03d", i)
		u, zone := good.URL, "us-east"
		if failing[id] {
			u = bad.URL
		}
		if i%7 == 0 {
			zone = "eu-west"
		}
		fmt.Fprintf(&b, "provider %q {\n", id)
		if i%3 == 0 {
			fmt.Fprintf(&b, "  name = \"Exchange %d\"\n", i)
		}
		fmt.Fprintf(&b, "  upstreams = [\"%s/%s/%s\"]\n", u, zone, id)
		if id == "p010" {
			b.WriteString("  health {\n    error_threshold = 4\n  }\n") // 2 errors: degraded
		}
		b.WriteString("}\n")
	}
	b.WriteString(`model "m_named" {
  name   = "Crypto sentiment"
  plugin = "sentiment"
}
model "m_nameless" {
  plugin = "sentiment"
}
model "m_never" {
  plugin = "never-starts"
}
`)
	return b.String()
}

var failing = map[string]bool{"p005": true, "p010": true, "p117": true}

// startTestFleet starts fleetHCL's proxy and makes p005 and p117
// unavailable, p010 degraded and p001 healthy.
func startTestFleet(t *testing.T) *fleet {
	t.Helper()
	good, bad := newUpstream(t), newUpstream(t)
	bad.code.Store(http.StatusInternalServerError)
	f := startFleet(t, fleetHCL(good, bad))
	for _, id := range []string{"p005", "p005", "p010", "p010", "p117", "p117", "p001"} {
		f.send(t, id)
	}
	eventually(t, 30*time.Second, "the sentiment models are loaded and m_never has failed", func() bool {
		h := f.health(t)
		n := 0
		for _, m := range h.Models.Entries {
			if m.Loaded || m.ModelKey == "m_never" && m.Status == "unavailable" {
				n++
			}
		}
		return n == 3
	})
	if st := f.provider(t, "p010").Status; st != "degraded" {
		t.Fatalf("p010 is %s; want degraded", st)
	}
	return f
}

// TestBrowserUIFleetFindThings: problems first, pages, the search box
// (id, name, upstream URL, as one types), the status filters and their
// counts (the summary cards'; a card filters too), both sorts, and the
// URL keeping all of it across a reload.
func TestBrowserUIFleetFindThings(t *testing.T) {
	browsertest.ChromiumPath(t) // skip before starting anything
	f := startTestFleet(t)
	p := openPage(t, f.url+"/")

	// problems first, then configuration order; 50 rows a page
	rows := p.rows("provider")
	if len(rows) != 50 {
		t.Fatalf("%d provider rows on the first page; want 50", len(rows))
	}
	if want := []string{"p005", "p117", "p010", "p000", "p001"}; !slices.Equal(rows[:5], want) {
		t.Errorf("first rows %v; want problems first: %v", rows[:5], want)
	}
	if got := p.Text(`[data-pager="provider"] .pager-text`); !strings.Contains(got, "1–50 of 120 providers") {
		t.Errorf("pager says %q; want 1–50 of 120 providers", got)
	}
	if got := p.rows("model"); !slices.Equal(got, []string{"m_never", "m_named", "m_nameless"}) {
		t.Errorf("model rows %v; want the unavailable one first", got)
	}
	p.Click(`[data-pager="provider"] button[data-page="next"]`)
	p.WaitJS("page 2 is shown", `location.search.includes('page=2')`, 5*time.Second)
	// the server answers page 2: wait for its rows
	p.WaitJS("page 2's rows", `document.querySelector('[data-group="provider"] article[data-kind]').dataset.key === 'p049' &&
		document.querySelectorAll('[data-group="provider"] article[data-kind]').length === 50`, 5*time.Second)
	if rows := p.rows("provider"); len(rows) != 50 || rows[0] != "p049" {
		t.Errorf("page 2 rows start %v (%d rows); want p049, 50 rows", rows[:min(3, len(rows))], len(rows))
	}

	// the status filters' counts are the cards'
	doc := f.health(t)
	ps, ms := doc.Providers.Summary, doc.Models.Summary
	for filter, want := range map[string]int{
		"all": ps.Total + ms.Total, "problems": ps.Unavailable + ps.Degraded + ms.Unavailable + ms.Degraded,
		"unavailable": ps.Unavailable + ms.Unavailable, "degraded": ps.Degraded + ms.Degraded,
		"healthy": ps.Healthy + ms.Healthy, "unknown": ps.Unknown + ms.Unknown,
	} {
		got := p.Text(`#status-filters button[data-filter="` + filter + `"] .filter-n`)
		if got != fmt.Sprint(want) {
			t.Errorf("filter %s shows %s; want %d (the summary's)", filter, got, want)
		}
	}
	p.Click(`#status-filters button[data-filter="unavailable"]`)
	p.waitRows("only unavailable providers are listed", "provider", []string{"p005", "p117"})
	p.waitRows("only unavailable models are listed", "model", []string{"m_never"})
	p.Click(`.card[data-summary="provider"] button[data-filter="degraded"]`)
	p.waitRows("a card filters: only degraded providers", "provider", []string{"p010"})
	if got := p.Text(`[data-group="model"] .empty`); !strings.Contains(got, "No model matches") {
		t.Errorf("models say %q; want that none matches", got)
	}
	if browsertest.Eval[string](p.Browser, `document.querySelector('#status-filters [data-filter="degraded"]').getAttribute('aria-pressed')`) != "true" {
		t.Error("the degraded filter is not shown as pressed")
	}
	p.Click(`#status-filters button[data-filter="problems"]`)
	p.waitRows("problems: unavailable and degraded providers", "provider", []string{"p005", "p117", "p010"})
	p.Click(`#status-filters button[data-filter="all"]`)

	// search as one types: id, name, upstream URL
	p.Click(`#filter`)
	p.Do(chromedp.SendKeys(`#filter`, "p11"))
	p.waitRows("typing p11 matches ids", "provider", []string{"p117", "p110", "p111", "p112", "p113", "p114", "p115", "p116", "p118", "p119"})
	p.Do(chromedp.SendKeys(`#filter`, "7"))
	p.waitRows("typing on narrows the list", "provider", []string{"p117"})
	p.search("exchange 4")
	p.waitRows("the name matches, any case", "provider", []string{"p042", "p045", "p048"})
	p.search("eu-west")
	var euWest []string
	for i := 0; i < 120; i += 7 {
		euWest = append(euWest, fmt.Sprintf("p%03d", i))
	}
	// p005 and p117 are unavailable, p010 degraded: not in eu-west
	p.waitRows("the upstream URL matches", "provider", euWest)
	p.search("crypto")
	p.waitRows("a model's name matches", "model", []string{"m_named"})
	p.search("exchange")

	// sort by name
	p.Do(chromedp.SetValue(`#sort`, "name"), chromedp.Evaluate[chromedp.Void](`document.querySelector('#sort').dispatchEvent(new Event('change'))`))
	var named []string
	for i := 0; i < 120; i += 3 {
		named = append(named, fmt.Sprintf("p%03d", i))
	}
	slices.SortFunc(named, func(a, b string) int {
		return strings.Compare(fmt.Sprintf("exchange %d", atoi(a[1:])), fmt.Sprintf("exchange %d", atoi(b[1:])))
	})
	p.waitRows("sorted by name", "provider", named)

	// the URL keeps the view; a reload shows the same
	search := browsertest.Eval[string](p.Browser, `location.search`)
	for _, want := range []string{"q=exchange", "sort=name"} {
		if !strings.Contains(search, want) {
			t.Errorf("URL %q lacks %s", search, want)
		}
	}
	p.Do(chromedp.Navigate(f.url + "/" + search))
	p.waitReady()
	p.waitRows("the reloaded URL shows the same rows", "provider", named)
	if v := browsertest.Eval[string](p.Browser, `document.querySelector('#filter').value + '|' + document.querySelector('#sort').value`); v != "exchange|name" {
		t.Errorf("after reload: search|sort = %q; want exchange|name", v)
	}

	// sort by last error: the failing ones first, newest first
	p.search("")
	p.Do(chromedp.SetValue(`#sort`, "error"), chromedp.Evaluate[chromedp.Void](`document.querySelector('#sort').dispatchEvent(new Event('change'))`))
	p.WaitJS("sorted by last error", `location.search.includes('sort=error')`, 5*time.Second)
	lastErr := map[string]string{}
	var failed []string
	for _, e := range f.health(t).Providers.Entries {
		if e.LastError != nil {
			lastErr[e.ProviderID] = *e.LastError
			failed = append(failed, e.ProviderID)
		}
	}
	js, _ := json.Marshal(failed)
	p.WaitJS("the server's order by last error", `[...document.querySelectorAll('[data-group="provider"] article[data-kind]')].slice(0, 3)
		.every(r => `+string(js)+`.includes(r.dataset.key))`, 5*time.Second)
	rows = p.rows("provider")
	for i, id := range rows[:3] {
		if lastErr[id] == "" {
			t.Errorf("row %d is %s, which has no error; want the three that failed first: %v", i, id, rows[:5])
		}
		if i > 0 && lastErr[id] > lastErr[rows[i-1]] {
			t.Errorf("%s (last error %s) after %s (%s): not newest first", id, lastErr[id], rows[i-1], lastErr[rows[i-1]])
		}
	}

	p.Do(chromedp.Navigate(f.url + "/?status=problems&page=7&mpage=x"))
	p.waitReady()
	p.waitRows("a page beyond the end shows the last page", "provider", []string{"p005", "p117", "p010"})
	p.badText("the fleet")
	p.NoProblems()
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestBrowserUIFleetKeyboard: everything with the keyboard only: "/"
// reaches the search box, Tab the filters and the pages, Enter and Space
// use them, and an entry opens its timeline.
func TestBrowserUIFleetKeyboard(t *testing.T) {
	browsertest.ChromiumPath(t)
	f := startTestFleet(t)
	p := openPage(t, f.url+"/")

	p.Do(chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	p.key("/")
	p.WaitJS("/ focuses the search box", `document.activeElement === document.querySelector('#filter')`, 5*time.Second)
	// A browser's own "/" keypress is cancelled with its keydown; the
	// devtools protocol sends the character on its own: take it back.
	if browsertest.Eval[string](p.Browser, `document.querySelector('#filter').value`) == "/" {
		p.key(kb.Backspace)
	}
	for _, k := range "eu-west" {
		p.key(string(k))
	}
	p.WaitJS("typed text filters", `location.search.includes('q=eu-west')`, 5*time.Second)
	p.key(kb.Escape) // a search box's Escape clears it
	p.WaitJS("Escape clears the search", `!location.search.includes('q=')`, 5*time.Second)

	p.tabTo(`#status-filters button[data-filter="unavailable"]`, 10)
	p.key(kb.Enter)
	p.waitRows("Enter on a filter applies it", "provider", []string{"p005", "p117"})
	p.Do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	p.Do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	p.WaitJS("Shift+Tab reaches All", `document.activeElement.matches('#status-filters [data-filter="all"]')`, 5*time.Second)
	p.key(" ")
	p.WaitJS("Space on All lists everything", `document.querySelectorAll('[data-group="provider"] article').length === 50`, 5*time.Second)

	p.tabTo(`[data-pager="provider"] button[data-page="next"]`, 600)
	p.key(kb.Enter)
	p.WaitJS("Enter on Next shows page 2", `location.search.includes('page=2')`, 5*time.Second)
	if !browsertest.Eval[bool](p.Browser, `document.activeElement.matches('[data-pager="provider"] [data-page="next"]')`) {
		t.Error("the focus left the Next button after it was used")
	}

	p.Do(chromedp.Navigate(f.url + "/?status=unavailable"))
	p.waitReady()
	p.tabTo(`article[data-key="p005"] details.explain > summary`, 40)
	p.key(kb.Enter)
	p.WaitJS("Enter opens the entry's timeline", `document.querySelector('article[data-key="p005"] .timeline svg.tl-band')`, 5*time.Second)
	p.tabTo(`article[data-key="p005"] .tl-marker`, 10)
	p.WaitJS("a focused marker tells its time and reason", `/\d\d:\d\d:\d\d · cooldown · cooldown until/.test(document.querySelector('article[data-key="p005"] .tl-hover').textContent)`, 5*time.Second)
	p.NoProblems()
}

// TestBrowserUIFleetTimeline: an opened entry shows its last hour: a band
// by status and markers for a trip, a cooldown, an operator action, a
// fault injection, a recovery and a reinit, each with its time and reason
// on hover; and its request/error/latency chart.
func TestBrowserUIFleetTimeline(t *testing.T) {
	browsertest.ChromiumPath(t)
	up := newUpstream(t)
	f := startFleet(t, fmt.Sprintf(`
health {
  error_threshold        = 2
  cooldown               = "1s"
  success_recovery_count = 1
  auto_reinit            = false
  reinit_cooldown        = "1s"
}
provider "alpha" {
  upstreams = ["%s/a"]
}
model "m1" {
  plugin = "sentiment"
}
`, up.URL))
	eventually(t, 30*time.Second, "m1 is loaded", func() bool { return f.health(t).Models.Entries[0].Loaded })
	f.send(t, "alpha")
	p := openPage(t, f.url+"/")
	alpha := `article[data-key="alpha"]`
	p.Click(alpha + ` details.explain > summary`)
	p.WaitJS("the timeline is open", `document.querySelector('`+alpha+` .timeline svg.tl-band rect.tl-seg[data-status="healthy"]')`, 5*time.Second)
	// alpha's first call, before the page was opened: the server's
	// record of the entry tells it
	p.WaitJS("the change before the page opened is a marker", `document.querySelector('`+alpha+` .tl-marker[data-markers~="change"]')`, 5*time.Second)
	if got := p.Text(alpha + ` .tl-events`); !strings.Contains(got, "unknown → healthy") || strings.Contains(got, "No trips") {
		t.Errorf("the hour before any trip lists %q; want alpha's first call only", got)
	}

	// a trip (live), its cooldown, then a recovery
	up.code.Store(http.StatusInternalServerError)
	f.send(t, "alpha")
	f.send(t, "alpha")
	p.WaitJS("a trip marker", `document.querySelector('`+alpha+` .tl-marker[data-markers~="trip"]')`, 10*time.Second)
	p.WaitJS("the band turns unavailable", `document.querySelector('`+alpha+` .tl-band rect.tl-seg[data-status="unavailable"]')`, 5*time.Second)
	p.WaitJS("the chart shows the errors", `document.querySelector('`+alpha+` .tl-chart svg.sparkline rect.spark-err')`, 10*time.Second)
	up.code.Store(http.StatusOK)
	eventually(t, 10*time.Second, "alpha recovers", func() bool {
		f.send(t, "alpha")
		return f.provider(t, "alpha").Status == "healthy"
	})
	p.WaitJS("a recovery marker", `document.querySelector('`+alpha+` .tl-marker[data-markers~="recovery"]')`, 10*time.Second)

	// an operator action and a fault injection, with their reasons
	reads := f.histories.Load()
	f.admin(t, "/api/admin/providers/alpha/drain", `{"reason":"maintenance window 42","ttl":"15m"}`)
	p.WaitJS("an operator marker", `document.querySelector('`+alpha+` .tl-marker[data-markers~="operator"]')`, 10*time.Second)
	// the drain's status event made the page read alpha's marks again:
	// let that read end, so that only the fault's own event can tell it
	eventually(t, 5*time.Second, "the page reads alpha's marks after the drain", func() bool { return f.histories.Load() > reads })
	p.WaitJS("alpha's marks are read", `document.querySelector('`+alpha+` .tl-events').textContent.includes('→ unavailable (')`, 5*time.Second)
	f.admin(t, "/api/admin/fault?provider=alpha", `{"kind":"error","status":503,"ttl":"5m","reason":"game day 7"}`)
	// a fault is no status change: its own event tells it, without a refresh
	p.WaitJS("a fault marker", `document.querySelector('`+alpha+` .tl-marker[data-markers~="fault"]')`, 5*time.Second)
	events := p.Text(alpha + ` .tl-events`)
	for _, want := range []string{"trip", "recovery", "operator action", "maintenance window 42", "fault injection", "game day 7"} {
		if !strings.Contains(events, want) {
			t.Errorf("the timeline's events lack %q: %s", want, events)
		}
	}

	// hover shows the exact time and the reason
	hover := func(sel string) string {
		t.Helper()
		type box struct{ X, Y float64 }
		b := browsertest.Eval[box](p.Browser, `(() => { const r = document.querySelector(`+browsertest.JS(sel)+`).getBoundingClientRect();
			return {X: r.left + r.width / 2, Y: r.top + r.height / 2}; })()`)
		p.Do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, b.X, b.Y))
		return p.Text(alpha + ` .tl-hover`)
	}
	p.Do(chromedp.ScrollIntoView(alpha + ` .tl-band`))
	got := hover(alpha + ` .tl-marker[data-markers~="operator"] .tl-hit`)
	if !regexp.MustCompile(`\d\d:\d\d:\d\d · operator action · drained.*maintenance window 42`).MatchString(got) {
		t.Errorf("hovering the operator marker shows %q; want its time and reason", got)
	}
	got = hover(alpha + ` .tl-marker[data-markers~="trip"] .tl-hit`)
	if !regexp.MustCompile(`\d\d:\d\d:\d\d · trip · .*unavailable`).MatchString(got) {
		t.Errorf("hovering the trip marker shows %q; want its time and what happened", got)
	}
	got = hover(alpha + ` .tl-band rect.tl-seg[data-status="none"]`)
	if !strings.Contains(got, "not recorded") {
		t.Errorf("hovering the hour before the page opened shows %q", got)
	}

	// a reinit of the model
	m1 := `article[data-key="m1"]`
	p.Click(m1 + ` details.explain > summary`)
	p.Click(`button[data-reinit="m1"]`)
	p.WaitJS("a reinit marker", `document.querySelector('`+m1+` .tl-marker[data-markers~="reinit"]')`, 20*time.Second)
	p.badText("timelines")
	p.NoProblems()
}

// TestBrowserUIFleetText: no "null", "undefined", "NaN" or "[object
// Object]" in what the page shows, for every shape of entry: named or not,
// never called, failing, a model whose plugin never loaded, every entry
// opened.
func TestBrowserUIFleetText(t *testing.T) {
	browsertest.ChromiumPath(t)
	f := startTestFleet(t)
	p := openPage(t, f.url+"/?status=problems")
	p.badText("problems")
	for _, c := range []struct{ kind, key, want string }{
		{"provider", "p005", "p005"}, {"model", "m_never", "m_never"},
	} {
		if got := p.Text(`article[data-kind="` + c.kind + `"][data-key="` + c.key + `"] .entry-title`); got != c.want {
			t.Errorf("%s %s title = %q; want %q", c.kind, c.key, got, c.want)
		}
	}
	p.Do(chromedp.Navigate(f.url + "/?q=p00"))
	p.waitReady()
	// open every entry on the page: timelines, explanations, failures
	p.Do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details.explain').forEach(d => d.open = true)`))
	p.WaitJS("every timeline is drawn", `[...document.querySelectorAll('details.explain')].every(d => d.querySelector('svg.tl-band'))`, 10*time.Second)
	if got := p.Text(`article[data-key="p003"] .entry-title`); got != "Exchange 3p003" {
		t.Errorf("p003 title = %q; want Exchange 3p003", got)
	}
	p.badText("providers opened")
	p.Do(chromedp.Navigate(f.url + "/?q=m_"))
	p.waitReady()
	p.Do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details.explain').forEach(d => d.open = true)`))
	p.WaitJS("every model timeline is drawn", `document.querySelectorAll('details.explain svg.tl-band').length === 3`, 10*time.Second)
	p.badText("models opened")
	p.NoProblems()
}

// TestBrowserUIFleetLargeHistory: beyond 200 entries the page reads no
// one's history until an entry is opened, and then asks for that entry's
// only (?kind=&key=, which the server honours), never a whole fleet's
// (each answer would be megabytes with a large fleet); and it reads the
// health document a page at a time, never whole.
func TestBrowserUIFleetLargeHistory(t *testing.T) {
	browsertest.ChromiumPath(t)
	up := newUpstream(t)
	var b strings.Builder
	for i := range 260 {
		fmt.Fprintf(&b, "provider \"q%03d\" {\n  upstreams = [\"%s/q%03d\"]\n}\n", i, up.URL, i)
	}
	f := startFleet(t, b.String())
	f.send(t, "q000")
	p := openPage(t, f.url+"/")
	p.Click("#refresh-health")
	p.WaitJS("the refresh is done", `document.querySelector('#notification').textContent.includes('Health refreshed')`, 10*time.Second)
	if n := f.histories.Load(); n != 0 {
		t.Errorf("the page read the history %d times before any entry was opened; want 0", n)
	}
	for _, key := range []string{"q000", "q001"} {
		p.Click(`article[data-key="` + key + `"] details.explain > summary`)
		p.WaitJS(key+"'s history is read and charted",
			`document.querySelector('article[data-key="`+key+`"] .tl-chart svg.sparkline') &&
			document.querySelector('article[data-key="`+key+`"] .tl-nohist').hidden`, 15*time.Second)
	}
	if n := f.histories.Load(); n < 2 {
		t.Errorf("the page read the history %d times for two opened entries; want at least 2", n)
	}
	if n := f.unscoped.Load(); n != 0 {
		t.Errorf("the page read a whole fleet's history %d times; want only one entry's at a time", n)
	}
	if n := f.wholes.Load(); n != 0 {
		t.Errorf("the page read the whole health document %d times; want one page at a time", n)
	}
	p.badText("a large fleet")
	p.NoProblems()
}
