// Package chaos rehearses failures against a running healproxy, on the
// user's own config, and measures how the proxy copes: for each target it
// injects one fault, waits until diagnostics show the target unavailable
// or degraded (time to detect), removes the fault, waits until the target
// is healthy again (time to recover), and counts the errors its own probe
// traffic through the proxy saw meanwhile.
//
// Faults:
//   - a provider upstream: an admin fault (POST /api/admin/fault), by
//     default every attempt answered 503, kept for Options.Hold, then
//     cleared (DELETE); its TTL outlives the hold by a margin only, so a
//     rehearsal that dies leaves nothing behind for long;
//   - a model: SIGKILL of its plugin process (the pid diagnostics show),
//     only when the proxy runs on this machine and the pid is a healproxy
//     plugin; recovery is the respawn by auto_reinit, or a self-heal.
//
// Times are measured by polling GET /api/diagnostics/health every
// Options.Poll, so they are accurate to about that.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/healproxy/healproxy/api"
)

// Options of a rehearsal. Zero fields take the defaults documented on
// each.
type Options struct {
	// URL of the proxy, like http://127.0.0.1:7860. Required.
	URL string
	// Token is the admin token, when the proxy has one.
	Token string
	// Hold is how long each provider fault stays in place. Default 10s.
	Hold time.Duration
	// Recover bounds the wait for a target to be healthy again after the
	// fault. Default 2m.
	Recover time.Duration
	// Only limits the targets: "provider/ID", "provider/ID/INDEX" (0-based,
	// as in diagnostics) or "model/KEY". Empty: every provider upstream and
	// every model.
	Only []string
	// Rate is the probe requests per second sent through the proxy to the
	// target during its rehearsal. Default 10.
	Rate float64
	// Path is what provider probes ask for after /providers/ID. Default "/".
	Path string
	// Fault is the provider fault: {"kind": "error"} (503) unless set.
	Fault FaultSpec
	// Heal says how a target gets healthy again: "auto" (default: the
	// proxy's own recovery — trials after the cooldown, auto_reinit — and
	// a self-heal when that would not come within Recover), "always"
	// (self-heal as soon as the fault is removed) or "never".
	Heal string
	// Poll is the interval of diagnostics polls. Default 50ms.
	Poll time.Duration
	// Client sends every request. nil: a client with a 10s timeout.
	Client *http.Client
	// Progress receives a line per step. nil: none.
	Progress io.Writer
}

// FaultSpec is the body of POST /api/admin/fault.
type FaultSpec struct {
	Kind    string `json:"kind"`
	Status  int    `json:"status,omitempty"`
	DelayMS int64  `json:"delay_ms,omitempty"`
	Percent int    `json:"percent,omitempty"`
	TTL     string `json:"ttl,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (f FaultSpec) String() string {
	s := f.Kind
	switch f.Kind {
	case "error":
		st := f.Status
		if st == 0 {
			st = 503
		}
		s += " " + strconv.Itoa(st)
	case "delay":
		s += " " + (time.Duration(f.DelayMS) * time.Millisecond).String()
	}
	if f.Percent > 0 && f.Percent < 100 {
		s += fmt.Sprintf(" on %d%%", f.Percent)
	}
	return s
}

// Report is the outcome of a rehearsal, one entry per target.
type Report struct {
	Targets []Result
	Poll    time.Duration
}

// Result is one target's rehearsal.
type Result struct {
	Target string // "provider/ID/INDEX" or "model/KEY"
	What   string // the upstream's URL, the model's name
	Fault  string // what was done
	// Skipped says why the target was not rehearsed; nothing else is set.
	Skipped string
	// Detected is the time from the fault to diagnostics showing the
	// target degraded or unavailable (DetectedAs); Unavailable to
	// unavailable. Negative: not seen.
	Detected, Unavailable time.Duration
	DetectedAs            string
	// Recovered is the time from the fault's removal (a kill: from the
	// kill) to healthy again; negative: not within Options.Recover.
	Recovered time.Duration
	// RecoveredBy says how: "recovery trials", "auto_reinit", "self-heal".
	RecoveredBy string
	Note        string
	// Probes were sent through the proxy during the rehearsal; Errors
	// counts the client-visible ones (5xx, 429, transport errors) by
	// reason.
	Probes int
	Errors map[string]int
}

// ErrorCount is the number of client-visible errors of the probes.
func (r Result) ErrorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// OK: the fault was detected and the target recovered (or it was skipped).
func (r Result) OK() bool { return r.Skipped != "" || (r.Detected >= 0 && r.Recovered >= 0) }

func (o *Options) defaults() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("chaos: -url %q: want the proxy's base URL, like http://127.0.0.1:7860", o.URL)
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Hold <= 0 {
		o.Hold = 10 * time.Second
	}
	if o.Hold > 9*time.Minute {
		return fmt.Errorf("chaos: hold %v: at most 9m (a fault's TTL is at most 10m)", o.Hold)
	}
	if o.Recover <= 0 {
		o.Recover = 2 * time.Minute
	}
	if o.Rate <= 0 {
		o.Rate = 10
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if !strings.HasPrefix(o.Path, "/") {
		o.Path = "/" + o.Path
	}
	if o.Fault.Kind == "" {
		o.Fault.Kind = "error"
	}
	switch o.Heal {
	case "":
		o.Heal = "auto"
	case "auto", "always", "never":
	default:
		return fmt.Errorf("chaos: -heal %q: want auto, always or never", o.Heal)
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// Run rehearses every selected target in turn. It fails only when the
// proxy cannot be reached or a fault cannot be set; each target's outcome
// is in the report. Cancelling ctx stops the rehearsal and clears the
// fault in place.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &runner{o: o}
	h, err := r.health(ctx)
	if err != nil {
		return nil, fmt.Errorf("chaos: reading diagnostics from %s: %w", o.URL, err)
	}
	targets := selectTargets(h, o.Only)
	if len(targets) == 0 {
		return nil, fmt.Errorf("chaos: no target matches %v (targets are provider/ID, provider/ID/INDEX, model/KEY)", o.Only)
	}
	fmt.Fprintf(o.Progress, "chaos: %d target(s) on %s; each provider fault held %v, recovery awaited up to %v\n",
		len(targets), o.URL, o.Hold, o.Recover)
	rep := &Report{Poll: o.Poll}
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		var res Result
		if t.model != "" {
			res = r.model(ctx, t)
		} else {
			res, err = r.provider(ctx, t)
			if err != nil {
				return rep, err
			}
		}
		rep.Targets = append(rep.Targets, res)
	}
	return rep, ctx.Err()
}

// ---- targets ----

type target struct {
	provider string
	index    int
	url      string
	model    string
	name     string
}

func (t target) String() string {
	if t.model != "" {
		return "model/" + t.model
	}
	return fmt.Sprintf("provider/%s/%d", t.provider, t.index)
}

func selectTargets(h *api.Health, only []string) []target {
	var all []target
	for _, p := range h.Providers.Entries {
		for i, u := range p.Upstreams {
			all = append(all, target{provider: p.ProviderID, index: i, url: u.URL, name: p.Name})
		}
	}
	for _, m := range h.Models.Entries {
		all = append(all, target{model: m.ModelKey, name: m.Name})
	}
	if len(only) == 0 {
		return all
	}
	var out []target
	for _, t := range all {
		for _, o := range only {
			o = strings.TrimRight(strings.TrimSpace(o), "/")
			if o == t.String() || (t.model == "" && o == "provider/"+t.provider) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// ---- diagnostics ----

type runner struct{ o Options }

func (r *runner) health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	code, body, err := r.call(ctx, http.MethodGet, "/api/diagnostics/health", nil, false)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/diagnostics/health: %d %s", code, body)
	}
	return &h, json.Unmarshal(body, &h)
}

// upstreamOf is t's upstream in h, or nil.
func upstreamOf(h *api.Health, t target) *api.Upstream {
	for _, p := range h.Providers.Entries {
		if p.ProviderID == t.provider && t.index < len(p.Upstreams) {
			return &p.Upstreams[t.index]
		}
	}
	return nil
}

// modelOf is the model key in h, or nil.
func modelOf(h *api.Health, key string) *api.Model {
	for i, m := range h.Models.Entries {
		if m.ModelKey == key {
			return &h.Models.Entries[i]
		}
	}
	return nil
}

// call sends one request to the proxy; admin ones carry the token.
func (r *runner) call(ctx context.Context, method, path string, body []byte, admin bool) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.o.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin && r.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.Token)
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, b, err
}

// poll calls cond with fresh diagnostics every Poll until it holds or d
// passes; it returns the time it held at (since from), or -1.
func (r *runner) poll(ctx context.Context, from time.Time, d time.Duration, cond func(*api.Health) bool) time.Duration {
	deadline := time.Now().Add(d)
	for {
		if h, err := r.health(ctx); err == nil && cond(h) {
			return time.Since(from)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return -1
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(r.o.Poll): // poll interval
		}
	}
}

// ---- probes ----

// prober sends probe requests through the proxy at Rate until stopped.
type prober struct {
	mu     sync.Mutex
	sent   int
	errors map[string]int
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func (r *runner) startProbes(ctx context.Context, method, path string, body []byte) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{errors: map[string]int{}, stop: cancel}
	slots := make(chan struct{}, 4) // at most 4 probes in flight
	p.wg.Go(func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / r.o.Rate))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // the proxy is slower than the rate: skip a beat
			}
			p.wg.Go(func() {
				defer func() { <-slots }()
				reason := r.probe(ctx, method, path, body)
				if ctx.Err() != nil {
					return // stopped under it
				}
				p.mu.Lock()
				p.sent++
				if reason != "" {
					p.errors[reason]++
				}
				p.mu.Unlock()
			})
		}
	})
	return p
}

// finish stops the probes and returns what they saw.
func (p *prober) finish() (int, map[string]int) {
	p.stop()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.errors
}

// probe sends one request; a client-visible error is a transport error, a
// 5xx or a 429 (what healproxy itself counts as failures), by reason.
func (r *runner) probe(ctx context.Context, method, path string, body []byte) string {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.o.URL+path, rd)
	if err != nil {
		return err.Error()
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "transport error: " + err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	return ""
}

// ---- a provider upstream ----

func (r *runner) provider(ctx context.Context, t target) (Result, error) {
	res := Result{Target: t.String(), What: t.url, Fault: r.o.Fault.String(), Detected: -1, Unavailable: -1, Recovered: -1}
	h, err := r.health(ctx)
	if err != nil {
		return res, err
	}
	if u := upstreamOf(h, t); u == nil {
		res.Skipped = "gone from diagnostics (a reload?)"
		return res, nil
	} else if u.Status == "unavailable" {
		res.Skipped = "already unavailable before the fault"
		return res, nil
	}
	fmt.Fprintf(r.o.Progress, "chaos: %s (%s): injecting %s for %v\n", res.Target, t.url, res.Fault, r.o.Hold)
	probes := r.startProbes(ctx, http.MethodGet, "/providers/"+url.PathEscape(t.provider)+r.o.Path, nil)
	// Let the probes call an upstream never called yet, so "healthy" means something.
	r.poll(ctx, time.Now(), 5*time.Second, func(h *api.Health) bool {
		u := upstreamOf(h, t)
		return u != nil && u.Status != "unknown"
	})

	spec := r.o.Fault
	spec.TTL = (r.o.Hold + 30*time.Second).String() // outlives the hold by a margin only
	if spec.Reason == "" {
		spec.Reason = "healproxy chaos rehearsal"
	}
	body, _ := json.Marshal(spec)
	q := "?provider=" + url.QueryEscape(t.provider) + "&upstream=" + strconv.Itoa(t.index)
	injected := time.Now()
	code, raw, err := r.call(ctx, http.MethodPost, "/api/admin/fault"+q, body, true)
	if err != nil || code != http.StatusOK {
		probes.finish()
		if err == nil {
			err = fmt.Errorf("%d %s", code, bytes.TrimSpace(raw))
		}
		return res, fmt.Errorf("chaos: injecting a fault on %s: %w", res.Target, err)
	}
	cleared := false
	clearFault := func() {
		if cleared {
			return
		}
		cleared = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if code, raw, err := r.call(cctx, http.MethodDelete, "/api/admin/fault"+q, nil, true); err != nil || code != http.StatusOK {
			fmt.Fprintf(r.o.Progress, "chaos: clearing the fault on %s failed (%v %d %s); its TTL ends it\n", res.Target, err, code, raw)
		}
	}
	defer clearFault()

	res.Detected = r.poll(ctx, injected, r.o.Hold, func(h *api.Health) bool {
		u := upstreamOf(h, t)
		if u != nil && u.Status == "unavailable" && res.Unavailable < 0 {
			res.Unavailable = time.Since(injected)
		}
		if u != nil && (u.Status == "degraded" || u.Status == "unavailable") {
			res.DetectedAs = u.Status
			return true
		}
		return false
	})
	if res.Detected >= 0 && res.Unavailable < 0 {
		// Keep watching for unavailable until the hold ends.
		res.Unavailable = r.poll(ctx, injected, time.Until(injected.Add(r.o.Hold)), func(h *api.Health) bool {
			u := upstreamOf(h, t)
			return u != nil && u.Status == "unavailable"
		})
	}
	if rest := time.Until(injected.Add(r.o.Hold)); rest > 0 {
		select { // the hold is the point: the fault stays this long
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
	clearFault()
	removed := time.Now()
	fmt.Fprintf(r.o.Progress, "chaos: %s: fault removed; waiting for healthy\n", res.Target)

	healed := false
	selfHeal := func() {
		healed = true
		r.call(ctx, http.MethodPost, "/api/diagnostics/self-heal?provider_id="+url.QueryEscape(t.provider), []byte{}, true)
	}
	switch r.o.Heal {
	case "always":
		selfHeal()
	case "auto":
		if h, err := r.health(ctx); err == nil {
			if u := upstreamOf(h, t); u != nil && u.CooldownUntil != nil {
				if until, err := time.Parse(time.RFC3339Nano, *u.CooldownUntil); err == nil && time.Until(until) > r.o.Recover {
					res.Note = "cooldown until " + until.Format(time.RFC3339) + " ends after -recover; "
					selfHeal()
				}
			}
		}
	}
	res.Recovered = r.poll(ctx, removed, r.o.Recover, func(h *api.Health) bool {
		u := upstreamOf(h, t)
		return u != nil && u.Status == "healthy"
	})
	res.RecoveredBy = "recovery trials after the cooldown"
	if healed {
		res.RecoveredBy = "self-heal"
	}
	res.Probes, res.Errors = probes.finish()
	return res, nil
}

// ---- a model ----

// pluginCookie is the go-plugin handshake variable healproxy sets in every
// model plugin's environment (plugins.Handshake).
const pluginCookie = "HEALPROXY_MODEL_PLUGIN="

// localPlugin says why pid cannot be killed from here, or "".
func localPlugin(proxyURL string, pid int) string {
	u, _ := url.Parse(proxyURL)
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "the proxy at " + u.Host + " is not on this machine (its plugin pid cannot be signalled from here); run chaos on the proxy's host"
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("pid %d does not exist here: is the proxy in another container or namespace?", pid)
		}
		return fmt.Sprintf("cannot inspect pid %d: %v (run chaos as the proxy's user)", pid, err)
	}
	if !bytes.Contains(env, []byte(pluginCookie)) {
		return fmt.Sprintf("pid %d here is not a healproxy model plugin: is the proxy in another container or namespace?", pid)
	}
	return ""
}

func (r *runner) model(ctx context.Context, t target) Result {
	res := Result{Target: t.String(), Detected: -1, Unavailable: -1, Recovered: -1}
	if t.name != t.model {
		res.What = t.name
	}
	h, err := r.health(ctx)
	if err != nil {
		res.Skipped = "diagnostics: " + err.Error()
		return res
	}
	m := modelOf(h, t.model)
	switch {
	case m == nil:
		res.Skipped = "gone from diagnostics (a reload?)"
		return res
	case !m.Loaded || m.Pid == nil || m.Status != "healthy":
		res.Skipped = "not loaded and healthy before the fault (" + m.Status + ")"
		return res
	}
	pid := *m.Pid
	res.Fault = "SIGKILL pid " + strconv.Itoa(pid)
	if why := localPlugin(r.o.URL, pid); why != "" {
		res.Skipped = why
		return res
	}
	if m.Fallback != nil {
		res.Note = "fallback " + *m.Fallback + " answers meanwhile; "
	}
	fmt.Fprintf(r.o.Progress, "chaos: %s: SIGKILL of plugin pid %d\n", res.Target, pid)
	probes := r.startProbes(ctx, http.MethodPost, "/models/"+url.PathEscape(t.model)+"/predict", []byte(`{"inputs": "chaos rehearsal: bitcoin steady"}`))
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		probes.finish()
		res.Skipped = fmt.Sprintf("kill %d: %v", pid, err)
		return res
	}
	res.Detected = r.poll(ctx, killed, max(r.o.Hold, 10*time.Second), func(h *api.Health) bool {
		m := modelOf(h, t.model)
		if m == nil {
			return false
		}
		if m.Status == "unavailable" || !m.Loaded || m.Pid == nil || *m.Pid != pid {
			res.DetectedAs = m.Status
			if m.Status == "unavailable" || !m.Loaded {
				res.Unavailable = time.Since(killed)
			}
			return true
		}
		return false
	})
	recovered := func(h *api.Health) bool {
		m := modelOf(h, t.model)
		return m != nil && m.Loaded && m.Pid != nil && *m.Pid != pid && m.Status == "healthy"
	}
	res.RecoveredBy = "auto_reinit"
	healed := false
	if r.o.Heal == "always" {
		healed = true
	} else if r.o.Heal == "auto" {
		// Wait a little for auto_reinit to act or be scheduled; without it,
		// or when it is scheduled past -recover, self-heal.
		if r.poll(ctx, killed, 2*time.Second, func(h *api.Health) bool {
			m := modelOf(h, t.model)
			return recovered(h) || (m != nil && m.NextTrialAt != nil)
		}) < 0 {
			healed = true
			res.Note += "no automatic reinit came (auto_reinit off?); "
		} else if h, err := r.health(ctx); err == nil && !recovered(h) {
			if m := modelOf(h, t.model); m != nil && m.NextTrialAt != nil {
				if at, err := time.Parse(time.RFC3339Nano, *m.NextTrialAt); err == nil && time.Until(at) > r.o.Recover {
					healed = true
					res.Note += "automatic reinit due only at " + at.Format(time.RFC3339) + " (reinit_cooldown); "
				}
			}
		}
	}
	if healed {
		res.RecoveredBy = "self-heal"
		r.call(ctx, http.MethodPost, "/api/diagnostics/self-heal?model_key="+url.QueryEscape(t.model), []byte{}, true)
	}
	res.Recovered = r.poll(ctx, killed, r.o.Recover, recovered)
	if h, err := r.health(ctx); err == nil && res.Recovered >= 0 {
		if m := modelOf(h, t.model); m != nil && m.Pid != nil {
			res.RecoveredBy += fmt.Sprintf(", new pid %d", *m.Pid)
		}
	}
	res.Probes, res.Errors = probes.finish()
	return res
}

// ---- the report ----

func ms(d time.Duration) string {
	if d < 0 {
		return "not seen"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// Write prints the report: a paragraph per target, then a table.
func (rep *Report) Write(w io.Writer) {
	for _, r := range rep.Targets {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(r.Target+"  "+r.What))
		if r.Skipped != "" {
			fmt.Fprintf(w, "  skipped: %s\n", r.Skipped)
			continue
		}
		fmt.Fprintf(w, "  fault:     %s\n", r.Fault)
		if r.Detected < 0 {
			fmt.Fprintf(w, "  detected:  NOT DETECTED: diagnostics never showed it degraded or unavailable\n")
		} else {
			fmt.Fprintf(w, "  detected:  %s after %s", r.DetectedAs, ms(r.Detected))
			if r.Unavailable >= 0 && r.DetectedAs != "unavailable" {
				fmt.Fprintf(w, ", unavailable after %s", ms(r.Unavailable))
			}
			fmt.Fprintln(w)
		}
		if r.Recovered < 0 {
			fmt.Fprintf(w, "  recovered: NOT RECOVERED within the wait (%s)\n", strings.TrimSuffix(r.Note, "; "))
		} else {
			from := "after the fault was removed"
			if strings.HasPrefix(r.Fault, "SIGKILL") {
				from = "after the kill"
			}
			fmt.Fprintf(w, "  recovered: healthy %s %s, by %s\n", ms(r.Recovered), from, r.RecoveredBy)
			if r.Note != "" {
				fmt.Fprintf(w, "  note:      %s\n", strings.TrimSuffix(r.Note, "; "))
			}
		}
		fmt.Fprintf(w, "  clients:   %d probe request(s) through the proxy, %d client-visible error(s)\n", r.Probes, r.ErrorCount())
		reasons := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			reasons = append(reasons, k)
		}
		slices.Sort(reasons)
		for _, k := range reasons {
			fmt.Fprintf(w, "    %d × %s\n", r.Errors[k], k)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tFAULT\tDETECTED\tUNAVAILABLE\tRECOVERED\tPROBES\tERRORS")
	for _, r := range rep.Targets {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t-\t-\t-\t-\t-\n", r.Target)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Target, r.Fault, ms(r.Detected), ms(r.Unavailable), ms(r.Recovered), r.Probes, r.ErrorCount())
	}
	tw.Flush()
	fmt.Fprintf(w, "(times from polling diagnostics every %v: accurate to about that)\n", rep.Poll)
}

// OK: every rehearsed target was detected and recovered.
func (rep *Report) OK() bool {
	for _, r := range rep.Targets {
		if !r.OK() {
			return false
		}
	}
	return true
}
