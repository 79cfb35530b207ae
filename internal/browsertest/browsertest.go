// Package browsertest drives a real headless Chromium for the UI's tests
// and benchmarks, through chromedp.
//
// New starts one browser per test (its own profile folder, closed at the
// end of the test) and records every uncaught exception and console error
// of the pages it opens; NoProblems fails the test on any. Without
// Chromium, New skips the test loudly, naming scripts/install-test-deps.sh
// (with CI=true it fails instead). Launch starts one outside a test.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ErrNoChromium is returned by FindChromium when no Chromium is installed.
var ErrNoChromium = errors.New("no Chromium found (looked for /usr/bin/chromium); install it with scripts/install-test-deps.sh")

// FindChromium returns the path of Chromium (or Chrome).
func FindChromium() (string, error) {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// ChromiumPath returns Chromium's path, or skips t (fails it with
// CI=true). Call it first in a browser test, before starting servers.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	p, err := FindChromium()
	if err == nil {
		return p
	}
	msg := "\n" + strings.Repeat("!", 72) + "\n!! BROWSER TESTS SKIPPED: " + err.Error() + "\n" + strings.Repeat("!", 72)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "\nCI=true: failing instead of skipping")
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

// Options are a browser's settings; the zero value is a 1200×900 window.
type Options struct {
	Width, Height int    // window size; 0: 1200×900
	ProfileDir    string // user data folder; "" for Launch: a temporary one is made and removed
	Flags         map[string]any
}

// Launch starts headless Chromium at exe and returns its context (the
// first tab) and a function that closes it. It records console problems
// into problems when that is not nil.
func Launch(exe string, o Options, problems func(string)) (context.Context, func(), error) {
	w, h := o.Width, o.Height
	if w == 0 || h == 0 {
		w, h = 1200, 900
	}
	dir, cleanDir := o.ProfileDir, func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "browsertest-")
		if err != nil {
			return nil, nil, err
		}
		dir, cleanDir = d, func() { os.RemoveAll(d) }
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
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(w, h),
	)
	for k, v := range o.Flags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	closeAll := func() {
		cancel()
		cancelAlloc()
		cleanDir()
	}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		closeAll()
		return nil, nil, fmt.Errorf("start Chromium (%s): %w", exe, err)
	}
	if problems != nil {
		messages := chromedp.Console(ctx)
		go func() {
			for m, err := range messages {
				if err != nil {
					return
				}
				// Network errors (a 401 the page handles, the event
				// stream while the proxy restarts) are expected; any
				// other error is a bug of the page: an uncaught
				// exception, console.error, a CSP violation.
				if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
					problems(m.String())
				}
			}
		}()
	}
	return ctx, closeAll, nil
}

// Browser is a headless Chromium for one test.
type Browser struct {
	t   testing.TB
	ctx context.Context

	// Debug, when set, returns the page's state to add to failures.
	Debug func() string

	mu       sync.Mutex
	problems []string
}

// New starts a browser for t (skipping t without Chromium); it is closed
// when t ends.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	exe := ChromiumPath(t)
	if o.ProfileDir == "" {
		o.ProfileDir = t.TempDir()
	}
	b := &Browser{t: t}
	ctx, closeAll, err := Launch(exe, o, func(p string) {
		b.mu.Lock()
		b.problems = append(b.problems, p)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	b.ctx = ctx
	return b
}

// Context is the browser tab's context, for chromedp calls of one's own.
func (b *Browser) Context() context.Context { return b.ctx }

func (b *Browser) debug() string {
	if b.Debug == nil {
		return ""
	}
	return "\n" + b.Debug()
}

// Do runs steps, failing the test on an error (within 30 s).
func (b *Browser) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v%s", err, b.debug())
	}
}

// Open navigates to u.
func (b *Browser) Open(u string) {
	b.t.Helper()
	b.Do(chromedp.Navigate(u))
}

// Eval evaluates expr in the page and decodes its value.
func Eval[T any](b *Browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v%s", expr, err, b.debug())
	}
	return v
}

// WaitJS waits until expr is truthy in the page, polling every 25 ms for
// at most d.
func (b *Browser) WaitJS(what, expr string, d time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		b.t.Fatalf("waiting until %s (%s): %v%s", what, expr, err, b.debug())
	}
}

// Text is the textContent of the first element matching sel, or "".
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return Eval[string](b, `(document.querySelector(`+JS(sel)+`) || {}).textContent || ''`)
}

// Click clicks the first element matching sel with the mouse.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Do(chromedp.Click(chromedp.CSS(sel)))
}

// Viewport sets the page's size and waits for layout.
func (b *Browser) Viewport(w, h int64) {
	b.t.Helper()
	b.Do(chromedp.EmulateViewport(w, h))
	b.Settle()
}

// Settle waits two animation frames, so that layout and paint are done.
func (b *Browser) Settle() {
	b.t.Helper()
	Eval[bool](b, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)
}

// Screenshot is a PNG of the whole page.
func (b *Browser) Screenshot() []byte {
	b.t.Helper()
	b.Settle()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// Problems are the uncaught exceptions and console errors so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// NoProblems fails the test on any uncaught exception or console error
// so far.
func (b *Browser) NoProblems() {
	b.t.Helper()
	if p := b.Problems(); len(p) > 0 {
		b.t.Errorf("the page reported %d problem(s):\n%s", len(p), strings.Join(p, "\n"))
	}
}

// JS quotes s as a JavaScript string literal.
func JS(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
