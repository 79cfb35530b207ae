// Command uibench measures the diagnostics UI in headless Chromium against
// a real healproxy process with many providers:
//
//   - first row: navigation start → the first entry row is in the page
//     (the frame in which it appears);
//   - the main thread's longest task while the page refreshes (a click on
//     #refresh-health until its notification) and while the proxy sends
//     -rate status changes a second for -seconds (drain and resume through
//     the admin operator API, each a status event);
//   - the page's JavaScript heap and DOM size after all that.
//
// Long tasks are read two ways: the browser's longtask entries (only
// tasks of 50 ms or more exist there) and the largest gap between
// back-to-back message-channel probes, which also sees shorter tasks.
//
//	uibench -bin ./healproxy -counts "1000 10000" -label after
//
// Each provider has one upstream on a loopback port nothing listens on;
// no request is sent to it. It prints one markdown table row per count.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/healproxy/healproxy/internal/browsertest"
)

// probe runs in the page before its own scripts: it records the first
// row's time, long tasks, and the main thread's gaps between probes.
const probe = `(() => {
  window.__ui = { firstRow: 0, long: [], gaps: [] };
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__ui.long.push([e.startTime, e.duration]); })
      .observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  const look = () => {
    if (document.querySelector('#health-diagnostics-result article[data-kind]')) { window.__ui.firstRow = performance.now(); return; }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
  const ch = new MessageChannel();
  let last = performance.now();
  ch.port1.onmessage = () => {
    const now = performance.now();
    if (now - last > 16) window.__ui.gaps.push([last, now - last]);
    last = now;
    setTimeout(() => ch.port2.postMessage(0), 4);
  };
  ch.port2.postMessage(0);
})();`

type result struct {
	Providers  int
	FirstRowMs float64
	RefreshMs  float64 // click → notification
	RefreshMax [2]float64
	EventsSent int
	EventsMax  [2]float64
	HeapMB     float64
	Nodes      int
}

func main() {
	bin := flag.String("bin", "healproxy", "healproxy binary")
	label := flag.String("label", "", "label of the build, for the table")
	listen := flag.String("listen", "127.0.0.1:9371", "loopback address healproxy listens on")
	counts := flag.String("counts", "1000 10000", "provider counts")
	rate := flag.Int("rate", 100, "status changes per second during the event burst")
	seconds := flag.Int("seconds", 3, "length of the event burst")
	dir := flag.String("dir", "", "folder for configs and logs (default: a temporary one)")
	flag.Parse()
	exe, err := browsertest.FindChromium()
	if err != nil {
		fmt.Fprintln(os.Stderr, "uibench:", err)
		os.Exit(1)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "uibench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "uibench:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	fmt.Println("| build | providers | first row (ms) | refresh (ms) | longest task, refresh (longtask / probe gap, ms) | events sent | longest task, events (longtask / probe gap, ms) | JS heap (MB) | DOM nodes |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, f := range strings.Fields(*counts) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100000 {
			fmt.Fprintf(os.Stderr, "uibench: bad count %q\n", f)
			os.Exit(2)
		}
		r, err := measure(exe, *bin, *dir, *listen, n, max(*rate, 1), min(max(*seconds, 1), 30))
		if err != nil {
			// what was measured before the failure, then the failure
			fmt.Printf("| %s | %d | %s | — | — | — | — | — | — |\n", *label, n, msText(r.FirstRowMs))
			fmt.Fprintf(os.Stderr, "uibench: %d providers: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Printf("| %s | %d | %.0f | %.0f | %s / %.0f | %d | %s / %.0f | %.1f | %d |\n", *label, r.Providers, r.FirstRowMs, r.RefreshMs,
			longText(r.RefreshMax[0]), r.RefreshMax[1], r.EventsSent, longText(r.EventsMax[0]), r.EventsMax[1], r.HeapMB, r.Nodes)
	}
}

func msText(ms float64) string {
	if ms == 0 {
		return "—"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

func longText(ms float64) string {
	if ms == 0 {
		return "none"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

func writeConfig(path, listen string, n int) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "listen = %q\n\n", listen)
	for i := 1; i <= n; i++ {
		name := ""
		if i%2 == 0 { // half with a name, half without
			name = fmt.Sprintf("  name = \"Exchange %d\"\n", i)
		}
		fmt.Fprintf(&b, "provider \"p%05d\" {\n%s  upstreams = [\"http://127.0.0.1:9/p%05d\"]\n}\n", i, name, i)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func measure(exe, bin, dir, listen string, n, rate, seconds int) (r result, err error) {
	r.Providers = n
	cfg := filepath.Join(dir, fmt.Sprintf("ui-%d.hcl", n))
	if err := writeConfig(cfg, listen, n); err != nil {
		return r, err
	}
	// another process on the address would be measured instead
	if ln, err := net.Listen("tcp", listen); err != nil {
		return r, fmt.Errorf("%s is not free: %w", listen, err)
	} else {
		ln.Close()
	}
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("ui-%d.log", n)))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	base := "http://" + listen
	if err := waitUp(base+"/healthz", 60*time.Second); err != nil {
		return r, err
	}

	ctx, closeBrowser, err := browsertest.Launch(exe, browsertest.Options{Width: 1200, Height: 900},
		func(p string) { fmt.Fprintln(os.Stderr, "uibench: page:", p) })
	if err != nil {
		return r, err
	}
	defer closeBrowser()
	run := func(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return chromedp.Do(c, steps...)
	}
	eval := func(expr string, out *float64) error {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[float64](expr, chromedp.EvalAwaitPromise))
		*out = v
		return err
	}
	if err := run(10*time.Second, chromedp.Func(func(c context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(c, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: probe})
		return err
	})); err != nil {
		return r, err
	}
	if err := run(30*time.Second, chromedp.Navigate(base+"/")); err != nil {
		return r, err
	}
	if err := wait(ctx, `window.__ui.firstRow > 0`, 180*time.Second); err != nil {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, _ := chromedp.Run(c, chromedp.Evaluate[string](`document.querySelector('#health-diagnostics-result').innerText.slice(0, 300)`))
		cancel()
		return r, fmt.Errorf("first row: %w; the page shows %q", err, s)
	}
	if err := eval(`window.__ui.firstRow`, &r.FirstRowMs); err != nil {
		return r, err
	}
	if os.Getenv("UIBENCH_DEBUG") != "" {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, _ := chromedp.Run(c, chromedp.Evaluate[string](`JSON.stringify(performance.getEntriesByType('resource').map(e => [e.name.replace(location.origin, ''), Math.round(e.startTime), Math.round(e.responseEnd)]).concat([['dcl', Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd)]]).concat(performance.getEntriesByType('mark').map(m => [m.name, Math.round(m.startTime)])))`))
		cancel()
		fmt.Fprintln(os.Stderr, "uibench: resources:", s)
	}
	// let the first load (and, for the old page, its history) settle
	if err := wait(ctx, `document.querySelector('#connection').dataset.state === 'live'`, 60*time.Second); err != nil {
		return r, err
	}
	if err := quiet(eval); err != nil {
		return r, err
	}

	// a refresh
	var t0, t1 float64
	if err := eval(`(document.querySelector('#notification').replaceChildren(), document.querySelector('#refresh-health').click(), performance.now())`, &t0); err != nil {
		return r, err
	}
	if err := wait(ctx, `document.querySelector('#notification').textContent.includes('Health refreshed')`, 90*time.Second); err != nil {
		return r, fmt.Errorf("refresh: %w", err)
	}
	if err := eval(`performance.now()`, &t1); err != nil {
		return r, err
	}
	r.RefreshMs = t1 - t0
	if err := quiet(eval); err != nil {
		return r, err
	}
	if r.RefreshMax, err = longest(eval, t0, t1+1000); err != nil {
		return r, err
	}

	// an event burst: drain and resume providers through the admin API
	if err := eval(`performance.now()`, &t0); err != nil {
		return r, err
	}
	r.EventsSent, err = burst(base, n, rate, seconds)
	if err != nil {
		return r, err
	}
	if err := quiet(eval); err != nil {
		return r, err
	}
	if err := eval(`performance.now()`, &t1); err != nil {
		return r, err
	}
	if r.EventsMax, err = longest(eval, t0, t1); err != nil {
		return r, err
	}
	var heap, nodes float64
	if err := eval(`performance.memory ? performance.memory.usedJSHeapSize : 0`, &heap); err != nil {
		return r, err
	}
	if err := eval(`document.getElementsByTagName('*').length`, &nodes); err != nil {
		return r, err
	}
	r.HeapMB, r.Nodes = heap/(1<<20), int(nodes)
	return r, nil
}

// quiet waits until the page's main thread has had no gap over 50 ms for
// one second (at most 60 s), so that one phase does not spill into the next.
func quiet(eval func(string, *float64) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var since float64
		if err := eval(`(() => { const g = window.__ui.gaps, l = window.__ui.long; let t = 0;
			for (const [s, d] of g) if (d > 50) t = Math.max(t, s + d);
			for (const [s, d] of l) t = Math.max(t, s + d);
			return performance.now() - t; })()`, &since); err != nil {
			return err
		}
		if since > 1000 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the page never went quiet for 1 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// longest is the longest longtask and probe gap that started in [from, to].
func longest(eval func(string, *float64) error, from, to float64) ([2]float64, error) {
	var out [2]float64
	for i, list := range []string{"long", "gaps"} {
		expr := fmt.Sprintf(`window.__ui.%s.filter(([s]) => s >= %f && s <= %f).reduce((m, [, d]) => Math.max(m, d), 0)`, list, from, to)
		if err := eval(expr, &out[i]); err != nil {
			return out, err
		}
	}
	return out, nil
}

// burst sends rate status changes a second for seconds: drains providers
// one after the other, then resumes them.
func burst(base string, n, rate, seconds int) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	total := rate * seconds
	half := max(total/2, 1)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sent := 0
	for i := range total {
		<-tick.C
		action, id := "drain", i%n+1
		if i >= half {
			action, id = "resume", (i-half)%n+1
		}
		body := `{"reason":"uibench"}`
		if action == "resume" {
			body = `{}`
		}
		res, err := client.Post(fmt.Sprintf("%s/api/admin/providers/p%05d/%s", base, id, action), "application/json", strings.NewReader(body))
		if err != nil {
			return sent, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return sent, fmt.Errorf("%s p%05d: HTTP %d", action, id, res.StatusCode)
		}
		sent++
	}
	return sent, nil
}

func wait(ctx context.Context, expr string, d time.Duration) error {
	c, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(c, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(d)))
	return err
}

func waitUp(u string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		res, err := http.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %v", u, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
