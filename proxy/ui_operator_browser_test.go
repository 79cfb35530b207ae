package proxy

// Real-browser tests of the operator controls in the diagnostics UI
// drain, force open and resume an upstream
// through the page's form, the audit log disclosure, the report download
// links, and the admin token flow for these actions. Same setup as
// ui_browser_test.go, whose helpers these tests use.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/feed"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// upstreamURL is the display URL of provider id's i-th upstream, as the
// health document (and so the page) names it.
func (p *uiProxy) upstreamURL(t *testing.T, id string, i int) string {
	t.Helper()
	ups := p.provider(t, id).Upstreams
	if i >= len(ups) {
		t.Fatalf("provider %s has %d upstreams; want an %dth", id, len(ups), i+1)
	}
	return ups[i].URL
}

func upstreamJS(provider, upstream string) string {
	return `(` + rowJS("provider", provider) + ` || document).querySelector('li.upstream[data-upstream=' + ` + jsString(jsString(upstream)) + ` + ']')`
}

func controlSel(control, provider, upstream string) string {
	return fmt.Sprintf(`button[data-control=%q][data-provider=%q][data-upstream=%q]`, control, provider, upstream)
}

func (b *uiBrowser) upstreamAttr(provider, upstream, attr string) string {
	b.t.Helper()
	return uiEval[string](b, `(() => { const el = `+upstreamJS(provider, upstream)+`; return el ? el.getAttribute(`+jsString(attr)+`) ?? '(none)' : '(no upstream)'; })()`)
}

func (b *uiBrowser) waitOperator(provider, upstream, want string, d time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("upstream %s of %s shows data-operator=%q", upstream, provider, want),
		`(`+upstreamJS(provider, upstream)+` || {dataset: {}}).dataset.operator === `+jsString(want), d)
}

// openControl clicks a control button and waits for its form.
func (b *uiBrowser) openControl(control, provider, upstream string) {
	b.t.Helper()
	b.click(controlSel(control, provider, upstream))
	b.waitJS("the control form opens with the focus in the reason field",
		`document.querySelector('#operator-dialog').open && document.activeElement.id === 'operator-reason'`, 5*time.Second)
}

// submitControl fills the open control form and submits it; ttl "-"
// leaves the duration as it is.
func (b *uiBrowser) submitControl(reason, ttl string) {
	b.t.Helper()
	var steps []chromedp.Action[chromedp.Void]
	if reason != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS("#operator-reason"), reason))
	}
	if ttl != "-" {
		steps = append(steps, chromedp.SetValue(chromedp.CSS("#operator-ttl"), ttl))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS("#operator-submit")))
	b.do(steps...)
}

// shotIfAsked writes a full-page screenshot to $HEALPROXY_UI_SHOTS/name
// when that variable is set (for a look at the page, as in
// TestBrowserUIScreenshot).
func (b *uiBrowser) shotIfAsked(name string) {
	b.t.Helper()
	dir := os.Getenv("HEALPROXY_UI_SHOTS")
	if dir == "" {
		return
	}
	b.settle()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// sendN makes n requests through the proxy to provider id; all must be 200.
func (p *uiProxy) sendN(t *testing.T, id string, n int) {
	t.Helper()
	for i := range n {
		if code := p.send(t, id); code != http.StatusOK {
			t.Fatalf("request %d to %s answered %d; want 200", i+1, id, code)
		}
	}
}

// TestBrowserUIOperatorDrainResume: draining an upstream through the form
// (reason, duration) marks it drained on the upstream and on the provider
// row, with reason, who and until; requests no longer reach it; Resume
// clears it. An empty reason is refused in the form and nothing is sent.
// The audit disclosure lists the actions in order; the report links
// download JSON and CSV; the page fits 375 px.
func TestBrowserUIOperatorDrainResume(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	upA, upB := newUIUpstream(t), newUIUpstream(t)
	cfg := uiConfig("", []config.Provider{
		uiProvider(t, "alpha", "Alpha API", uiHealth(), upA, upB),
	}, uiModel("sent", "Sentiment"))
	px := startUIProxy(t, cfg)
	px.sendN(t, "alpha", 4)
	urlA, urlB := px.upstreamURL(t, "alpha", 0), px.upstreamURL(t, "alpha", 1)
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "alpha", "healthy", 10*time.Second)

	for _, u := range []string{urlA, urlB} {
		for _, c := range []string{"drain", "force-open", "resume"} {
			if n := uiEval[int](b, `document.querySelectorAll(`+jsString(controlSel(c, "alpha", u))+`).length`); n != 1 {
				t.Errorf("%d %s buttons for upstream %s; want 1", n, c, u)
			}
		}
		if got := b.upstreamAttr("alpha", u, "data-operator"); got != "" {
			t.Errorf("upstream %s data-operator = %q before any action; want empty", u, got)
		}
	}

	// Reason required: by keyboard, an empty reason keeps the form open
	// with a message, and nothing is sent; Escape cancels and gives the
	// focus back to the button.
	b.do(chromedp.Focus(chromedp.CSS(controlSel("drain", "alpha", urlA))), chromedp.KeyEvent(kb.Enter))
	b.waitJS("the drain form opens from the keyboard",
		`document.querySelector('#operator-dialog').open && document.activeElement.id === 'operator-reason'`, 5*time.Second)
	if got := b.text("#operator-target"); got != urlA {
		t.Errorf("the form names upstream %q; want %q", got, urlA)
	}
	b.do(chromedp.KeyEvent(kb.Enter)) // submit, empty
	b.waitJS("the form says a reason is required", `document.querySelector('#operator-error').textContent.includes('reason is required')`, 5*time.Second)
	if !uiEval[bool](b, `document.querySelector('#operator-dialog').open`) {
		t.Fatal("the form closed on an empty reason")
	}
	if got := uiEval[string](b, `document.querySelector('#operator-reason').getAttribute('aria-invalid') + ' ' + document.activeElement.id`); got != "true operator-reason" {
		t.Errorf("reason field after the refusal: aria-invalid and focus = %q; want \"true operator-reason\"", got)
	}
	b.click("#operator-submit") // by pointer too
	time.Sleep(300 * time.Millisecond)
	if n := len(px.srv.audit.Last(feed.MaxAudit)); n != 0 {
		t.Fatalf("%d audit records after refused submissions; want none sent", n)
	}
	b.do(chromedp.KeyEvent(kb.Escape))
	b.waitJS("the form closes on Escape", `!document.querySelector('#operator-dialog').open`, 5*time.Second)
	b.waitJS("the focus is back on the Drain button",
		`document.activeElement === document.querySelector(`+jsString(controlSel("drain", "alpha", urlA))+`)`, 5*time.Second)
	if n := len(px.srv.audit.Last(feed.MaxAudit)); n != 0 {
		t.Fatalf("%d audit records after a cancel; want none", n)
	}

	// The form at phone width fits.
	b.viewport(375, 800)
	b.openControl("force-open", "alpha", urlB)
	b.noHorizontalOverflow("375 px, control form open")
	b.shotIfAsked("operator-form-phone.png")
	b.click("#operator-cancel")
	b.waitJS("the form closes on Cancel", `!document.querySelector('#operator-dialog').open`, 5*time.Second)
	b.viewport(1200, 900)

	// Drain A for 4 hours.
	const reason = "rotating TLS certs on node 1"
	b.openControl("drain", "alpha", urlA)
	if !uiEval[bool](b, `!document.querySelector('#operator-ttl-field').hidden`) {
		t.Error("the drain form has no duration")
	}
	b.submitControl(reason, "4h")
	b.waitOperator("alpha", urlA, "drain", 5*time.Second)
	note := b.waitNotification("the drain is reported", "Drained", 5*time.Second)
	if !strings.Contains(note, urlA) || !strings.Contains(note, reason) {
		t.Errorf("drain notification %q lacks the upstream or the reason", note)
	}
	state := uiEval[string](b, upstreamJS("alpha", urlA)+`.querySelector('.operator-state').textContent`)
	for _, want := range []string{"🚧 drained", reason, "by loopback", "left"} {
		if !strings.Contains(state, want) {
			t.Errorf("drained upstream shows %q; want it to include %q", state, want)
		}
	}
	if got := b.upstreamAttr("alpha", urlB, "data-operator"); got != "" {
		t.Errorf("upstream B data-operator = %q; want empty", got)
	}
	if got := uiEval[string](b, rowJS("provider", "alpha")+`.querySelector('.entry-operator').textContent`); !strings.Contains(got, "🚧 drained") || !strings.Contains(got, "1 of 2") {
		t.Errorf("provider row operator badge = %q; want 🚧 drained, 1 of 2 upstreams", got)
	}
	if got := uiEval[string](b, rowJS("provider", "alpha")+`.dataset.operator`); got != "drain" {
		t.Errorf("provider row data-operator = %q; want drain", got)
	}
	recs := px.srv.audit.Last(feed.MaxAudit)
	if len(recs) != 1 || recs[0].Action != "drain" || recs[0].Reason != reason || recs[0].TTL != "4h" ||
		!strings.HasSuffix(recs[0].Target, urlA) {
		t.Fatalf("audit after the drain: %+v; want one drain of %s for 4h with the reason", recs, urlA)
	}
	if d := px.provider(t, "alpha").Upstreams[0].Operator; d == nil || d.Action != "drain" || d.Until == nil {
		t.Fatalf("upstream A's operator state: %+v; want a drain with an end", d)
	}

	// Requests no longer reach A.
	hitsA, hitsB := upA.Hits.Load(), upB.Hits.Load()
	px.sendN(t, "alpha", 8)
	if got := upA.Hits.Load(); got != hitsA {
		t.Errorf("drained upstream A got %d requests; want none", got-hitsA)
	}
	if got := upB.Hits.Load(); got != hitsB+8 {
		t.Errorf("upstream B got %d of 8 requests", got-hitsB)
	}

	// Phone width with a drained upstream.
	b.shotIfAsked("operator-drained.png")
	b.viewport(375, 800)
	b.noHorizontalOverflow("375 px, one upstream drained")
	b.shotIfAsked("operator-drained-phone.png")
	b.viewport(1200, 900)

	// Resume A: no reason needed, no duration.
	b.clearNotification()
	b.openControl("resume", "alpha", urlA)
	if uiEval[bool](b, `!document.querySelector('#operator-ttl-field').hidden`) {
		t.Error("the resume form offers a duration")
	}
	b.submitControl("", "-")
	b.waitOperator("alpha", urlA, "", 5*time.Second)
	b.waitNotification("the resume is reported", "Resumed", 5*time.Second)
	b.waitJS("the provider row's operator badge is gone", rowJS("provider", "alpha")+`.dataset.operator === '' && `+
		rowJS("provider", "alpha")+`.querySelector('.entry-operator').hidden`, 5*time.Second)
	b.waitJS("the focus is back on the Resume button",
		`document.activeElement === document.querySelector(`+jsString(controlSel("resume", "alpha", urlA))+`)`, 5*time.Second)
	proxytest.Eventually(t, 10*time.Second, "requests reach A again", func() bool {
		px.sendN(t, "alpha", 1)
		return upA.Hits.Load() > hitsA
	})

	// The audit log lists both actions, newest first.
	b.click("#audit-log > summary")
	b.waitJS("the audit log is loaded", `document.querySelectorAll('#audit-result tbody tr').length === 2`, 5*time.Second)
	if got := uiEval[string](b, `[...document.querySelectorAll('#audit-result tbody tr')].map(r => r.dataset.action).join(',')`); got != "resume,drain" {
		t.Errorf("audit rows = %s; want resume,drain (newest first)", got)
	}
	drainRow := uiEval[string](b, `document.querySelector('#audit-result tbody tr[data-action="drain"]').textContent`)
	for _, want := range []string{"loopback", "drain", "provider alpha upstream " + urlA, reason, "4 hours"} {
		if !strings.Contains(drainRow, want) {
			t.Errorf("audit drain row %q lacks %q", drainRow, want)
		}
	}
	if got := uiEval[string](b, `document.querySelector('#audit-result tbody tr time').getAttribute('datetime')`); got == "" {
		t.Error("audit time has no datetime")
	}
	if got := b.text("#audit-status"); !strings.Contains(got, "2 actions") {
		t.Errorf("audit status = %q", got)
	}
	// an action while it is open updates it
	b.openControl("drain", "alpha", urlB)
	b.submitControl("load test on B", "15m")
	b.waitOperator("alpha", urlB, "drain", 5*time.Second)
	b.waitJS("the open audit log shows the new action first",
		`document.querySelectorAll('#audit-result tbody tr').length === 3 && document.querySelector('#audit-result tbody tr').dataset.action === 'drain'`, 5*time.Second)
	b.shotIfAsked("operator-audit.png")
	b.viewport(375, 800)
	b.noHorizontalOverflow("375 px, audit log open")
	b.shotIfAsked("operator-audit-phone.png")
	b.viewport(1200, 900)

	// Report links: JSON and CSV, downloads, served as such.
	for _, c := range []struct{ id, href, ctype string }{
		{"report-json", "/api/diagnostics/report?format=json", "application/json"},
		{"report-csv", "/api/diagnostics/report?format=csv", "text/csv"},
	} {
		sel := "a#" + c.id + "[href=" + jsString(c.href) + "][download]"
		if !uiEval[bool](b, `!!document.querySelector(`+jsString(sel)+`)`) {
			t.Errorf("no link %s", sel)
			continue
		}
		href := uiEval[string](b, `document.querySelector(`+jsString("#"+c.id)+`).href`)
		if href != px.url+c.href {
			t.Errorf("%s resolves to %s; want %s", c.id, href, px.url+c.href)
		}
		res, err := http.Get(href)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) ||
			!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
			t.Errorf("GET %s: %d, Content-Type %q, Content-Disposition %q", href, res.StatusCode,
				res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
		}
		if !strings.Contains(string(body), urlA) {
			t.Errorf("%s lacks upstream %s", c.id, urlA)
		}
	}
	b.noProblems()
}

// TestBrowserUIOperatorForceOpen: forcing an upstream open through the
// form makes the row unavailable with the operator's reason; resume makes
// it degraded (recovery trials), and a request makes it healthy again.
func TestBrowserUIOperatorForceOpen(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	up := newUIUpstream(t)
	cfg := uiConfig("", []config.Provider{uiProvider(t, "beta", "Beta API", uiHealth(), up)})
	px := startUIProxy(t, cfg)
	px.sendN(t, "beta", 1)
	u := px.upstreamURL(t, "beta", 0)
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "beta", "healthy", 10*time.Second)

	const reason = "vendor incident INC-4711"
	b.openControl("force-open", "beta", u)
	b.submitControl(reason, "") // until resumed
	b.waitStatus("provider", "beta", "unavailable", 5*time.Second)
	b.waitOperator("beta", u, "force_open", 5*time.Second)
	b.waitNotification("the forced open is reported", "Forced open", 5*time.Second)
	state := uiEval[string](b, upstreamJS("beta", u)+`.querySelector('.operator-state').textContent`)
	for _, want := range []string{"⛔ forced open", reason, "until resumed"} {
		if !strings.Contains(state, want) {
			t.Errorf("forced-open upstream shows %q; want it to include %q", state, want)
		}
	}
	if got := uiEval[string](b, rowJS("provider", "beta")+`.querySelector('.entry-operator').textContent`); got != "⛔ forced open" {
		t.Errorf("provider row operator badge = %q; want ⛔ forced open", got)
	}
	b.shotIfAsked("operator-forced.png")
	why := uiEval[string](b, rowJS("provider", "beta")+`.querySelector('.explain-upstream [data-fact="reason"] dd').textContent`)
	if !strings.Contains(why, "forced open by an operator") || !strings.Contains(why, reason) {
		t.Errorf("the row explains %q; want the operator's reason", why)
	}
	hits := up.Hits.Load()
	if code := px.send(t, "beta"); code != http.StatusServiceUnavailable {
		t.Errorf("a forced-open provider answered %d; want 503", code)
	}
	if up.Hits.Load() != hits {
		t.Error("a request reached the forced-open upstream")
	}
	if recs := px.srv.audit.Last(feed.MaxAudit); len(recs) != 1 || recs[0].Action != "force-open" || recs[0].TTL != "" {
		t.Errorf("audit after the forced open: %+v; want one force-open until resumed", recs)
	}

	b.clearNotification()
	b.openControl("resume", "beta", u)
	b.submitControl("incident over", "-")
	b.waitOperator("beta", u, "", 5*time.Second)
	b.waitStatus("provider", "beta", "degraded", 5*time.Second)
	b.waitNotification("the resume is reported", "Resumed", 5*time.Second)
	px.sendN(t, "beta", 1)
	b.waitStatus("provider", "beta", "healthy", 5*time.Second)
	if got := uiEval[string](b, rowJS("provider", "beta")+`.dataset.operator`); got != "" {
		t.Errorf("provider row data-operator = %q after the resume; want empty", got)
	}
	b.noProblems()
}

// TestBrowserUIOperatorAdminToken: with an admin token, the audit log and
// the first control action ask for it (a cancel is reported and nothing is
// shown); given, the action succeeds and the token is kept for the next.
func TestBrowserUIOperatorAdminToken(t *testing.T) {
	uiChromePath(t) // skip before starting anything
	const token = "ui-operator-admin-token"
	up := newUIUpstream(t)
	cfg := uiConfig(token, []config.Provider{uiProvider(t, "alpha", "Alpha API", uiHealth(), up)})
	px := startUIProxy(t, cfg)
	u := px.upstreamURL(t, "alpha", 0)
	b := newUIBrowser(t)
	b.open(px.url + "/")
	b.waitStatus("provider", "alpha", "unknown", 10*time.Second)

	// The audit log needs the token: cancelled, it says so.
	b.click("#audit-log > summary")
	b.waitJS("the token form opens for the audit log", `document.querySelector('#token-dialog').open && document.activeElement.id === 'admin-token'`, 5*time.Second)
	b.click("#token-cancel")
	b.waitNotification("the cancel is reported", "401", 5*time.Second)
	if got := b.text("#audit-status"); !strings.Contains(got, "Not loaded") || !strings.Contains(got, "401") {
		t.Errorf("audit status after a cancelled token = %q", got)
	}
	if n := uiEval[int](b, `document.querySelectorAll('#audit-result tr').length`); n != 0 {
		t.Errorf("%d audit rows without a token", n)
	}

	// The first control action asks for the token, then succeeds.
	b.clearNotification()
	b.openControl("drain", "alpha", u)
	b.submitControl("maintenance window", "1h")
	b.waitJS("the token form opens", `document.querySelector('#token-dialog').open && document.activeElement.id === 'admin-token'`, 5*time.Second)
	if uiEval[bool](b, `document.querySelector('#operator-dialog').open`) {
		t.Error("the control form is still open under the token form")
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#admin-token"), token), chromedp.Click(chromedp.CSS("#token-submit")))
	b.waitOperator("alpha", u, "drain", 10*time.Second)
	b.waitNotification("the drain is reported", "Drained", 5*time.Second)
	if got := uiEval[string](b, `sessionStorage.getItem('healproxy.admin-token') || ''`); got != token {
		t.Errorf("session token = %q; want the accepted one", got)
	}
	recs := px.srv.audit.Last(feed.MaxAudit)
	if len(recs) != 1 || !strings.HasPrefix(recs[0].Who, "token from ") || recs[0].TTL != "1h" {
		t.Fatalf("audit after the drain: %+v; want one drain by token for 1h", recs)
	}
	if !strings.Contains(uiEval[string](b, upstreamJS("alpha", u)+`.querySelector('.operator-state').textContent`), "by token from") {
		t.Error("the drained upstream does not say who drained it")
	}
	b.waitJS("the focus is back on the Drain button",
		`document.activeElement === document.querySelector(`+jsString(controlSel("drain", "alpha", u))+`)`, 5*time.Second)

	// Next: no prompt; the audit log loads with the kept token.
	b.clearNotification()
	b.click("#audit-reload")
	b.waitJS("the audit log is loaded", `document.querySelectorAll('#audit-result tbody tr').length === 1`, 5*time.Second)
	b.openControl("resume", "alpha", u)
	b.submitControl("", "-")
	b.waitOperator("alpha", u, "", 5*time.Second)
	if uiEval[bool](b, `document.querySelector('#token-dialog').open`) {
		t.Error("the token form opened although a token is stored")
	}
	b.waitJS("the open audit log shows the resume", `document.querySelectorAll('#audit-result tbody tr').length === 2`, 5*time.Second)
	b.noProblems()
}
