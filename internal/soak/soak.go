// Package soak runs the real healproxy binary under bounded steady load on
// loopback, with faults (an upstream that flaps, model plugins killed at
// random), and records what clients saw and how the proxy's resources
// evolved: resident memory, goroutines, open file descriptors and child
// processes, sampled every second into a CSV file and an SVG chart.
//
// The setup (Run):
//   - provider "pair": two equivalent upstreams, one steady and one that
//     flaps (fails for a while, then recovers, again and again; its
//     failing phases take turns: 500 answers, dropped connections, hangs
//     past the provider's timeout);
//   - provider "single": one steady upstream;
//   - model "sentiment" (the built-in plugin) with fallback model
//     "sentiment_fb" (the same plugin in its own process);
//   - Workers clients sharing a token bucket of Rate requests per second:
//     GETs to both providers and predicts to "sentiment";
//   - with Faults, a killer that SIGKILLs one plugin process at random
//     intervals, only while both are loaded and healthy, so that a
//     healthy upstream or fallback always exists: every client-visible
//     error (non-2xx answer or transport error) is a bug.
//
// Every loop is bounded in count and time, and all traffic stays on
// 127.0.0.1. The package is Linux only (/proc).
package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/healproxy/healproxy/api"
)

// Config of one soak run. Zero fields take the defaults documented on
// each.
type Config struct {
	// Binary is the healproxy executable to run. Required.
	Binary string
	// Env is added to healproxy's environment (e.g. GOGC=100).
	Env []string
	// Dir receives healproxy.hcl, healproxy.log, soak.csv and soak.svg.
	// Required.
	Dir string
	// Duration of the load. Default 30s.
	Duration time.Duration
	// Warmup is left out of the flatness check. Default: a fifth of
	// Duration, at least 5s and at most 60s.
	Warmup time.Duration
	// Workers is the number of concurrent clients. Default 16.
	Workers int
	// Rate caps requests per second across all workers (a token bucket).
	// Default 150.
	Rate float64
	// Faults turns on the flapping upstream and the plugin killer.
	Faults bool
	// KillMin and KillMax bound the random wait between plugin kills.
	// Default 2s and 6s.
	KillMin, KillMax time.Duration
	// FlapOK and FlapFail are the flapping upstream's good and failing
	// phases. Default 4s and 3s.
	FlapOK, FlapFail time.Duration
	// Tolerance of the flatness check; zero fields take DefaultTolerance.
	Tolerance Tolerance
	// Logf receives progress lines. nil: none.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() error {
	if c.Binary == "" || c.Dir == "" {
		return errors.New("soak: Binary and Dir are required")
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = min(max(c.Duration/5, 5*time.Second), time.Minute)
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Rate <= 0 {
		c.Rate = 150
	}
	if c.KillMin <= 0 {
		c.KillMin = 2 * time.Second
	}
	if c.KillMax < c.KillMin {
		c.KillMax = max(c.KillMin, 6*time.Second)
	}
	if c.FlapOK <= 0 {
		c.FlapOK = 4 * time.Second
	}
	if c.FlapFail <= 0 {
		c.FlapFail = 3 * time.Second
	}
	c.Tolerance = c.Tolerance.orDefault()
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Result of a soak run.
type Result struct {
	Duration time.Duration
	Requests int64 // answered or failed, all kinds
	OK       int64 // 2xx answers
	ByTarget map[string]int64
	// Errors counts client-visible errors by reason ("GET /providers/pair/…:
	// 502 {body}" or "transport: …"); Examples keeps the first time each
	// was seen.
	Errors   map[string]int64
	FirstErr map[string]time.Duration
	// Kills are the plugin processes SIGKILLed; KillsSkipped the turns
	// the killer passed because a model was not back yet.
	Kills, KillsSkipped int
	// Latency of every request (answer read in full), in order.
	Latency []time.Duration
	// FlapCycles counts the flapping upstream's failing phases.
	FlapCycles int
	Samples    []Sample
	Verdicts   []Verdict
	// ExitCode of healproxy after SIGTERM; Orphans are its children still
	// alive after it exited.
	ExitCode int
	Orphans  []int
	// CSV and SVG are the files written.
	CSV, SVG, Log string
}

// Percentile is the p-th percentile (0–100) of the request latencies.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	s := slices.Clone(r.Latency)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

// ErrorCount is the number of client-visible errors.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Sample is one second of the proxy's resources.
type Sample struct {
	T          time.Duration // since the load began
	RSSKiB     int64         // VmRSS of the healproxy process
	Goroutines int           // go_goroutines from /metrics
	FDs        int           // entries of /proc/PID/fd
	Children   int           // live child processes (the plugins)
	Zombies    int           // children exited but not reaped
	Requests   int64         // so far
	Errors     int64         // so far
	Kills      int           // so far
}

// Run runs one soak. It returns an error when the run could not be made
// (the binary did not start, a sample could not be read); client errors
// and resource growth are in the Result, for the caller to judge.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Errors: map[string]int64{}, FirstErr: map[string]time.Duration{}, ByTarget: map[string]int64{},
		CSV: filepath.Join(cfg.Dir, "soak.csv"), SVG: filepath.Join(cfg.Dir, "soak.svg"), Log: filepath.Join(cfg.Dir, "healproxy.log")}

	// Upstreams, in this process.
	steady := newUpstream("steady")
	defer steady.Close()
	flappy := newUpstream("flappy")
	defer flappy.Close()
	single := newUpstream("single")
	defer single.Close()

	conf := filepath.Join(cfg.Dir, "healproxy.hcl")
	if err := os.WriteFile(conf, []byte(configText(steady.URL, flappy.URL, single.URL)), 0o644); err != nil {
		return nil, err
	}
	proc, err := startProxy(cfg.Binary, cfg.Env, conf, res.Log)
	if err != nil {
		return nil, err
	}
	defer proc.kill()
	cfg.Logf("soak: healproxy pid %d on %s; %s of load, %d workers, %.0f req/s, faults %v; output in %s",
		proc.pid(), proc.base, cfg.Duration, cfg.Workers, cfg.Rate, cfg.Faults, cfg.Dir)

	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 4 * cfg.Workers, MaxIdleConnsPerHost: 4 * cfg.Workers, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer c.CloseIdleConnections()
	if err := waitReady(ctx, c, proc.base, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w\nhealproxy log:\n%s", err, tail(res.Log, 4<<10))
	}

	csvFile, err := os.Create(res.CSV)
	if err != nil {
		return nil, err
	}
	defer csvFile.Close()
	csv := bufio.NewWriter(csvFile)
	fmt.Fprintln(csv, "t_seconds,rss_kib,goroutines,fds,children,zombies,requests,errors,kills")

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	var requests, oks, errCount atomic.Int64
	var kills atomic.Int64
	var mu sync.Mutex // guards res.Errors, FirstErr, ByTarget
	record := func(target, reason string, took time.Duration) {
		requests.Add(1)
		mu.Lock()
		defer mu.Unlock()
		res.ByTarget[target]++
		res.Latency = append(res.Latency, took)
		if reason == "" {
			oks.Add(1)
			return
		}
		errCount.Add(1)
		if _, seen := res.Errors[reason]; !seen {
			res.FirstErr[reason] = time.Since(start)
			cfg.Logf("soak: client-visible error at %s: %s", time.Since(start).Round(time.Millisecond), reason)
		}
		res.Errors[reason]++
	}

	var wg sync.WaitGroup
	// The flapping upstream's schedule.
	if cfg.Faults {
		wg.Go(func() { res.FlapCycles = flappy.flap(runCtx, cfg.FlapOK, cfg.FlapFail) })
	}
	// The token bucket: one token per 1/Rate, at most Workers waiting.
	tokens := make(chan struct{}, cfg.Workers)
	wg.Go(func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				select {
				case tokens <- struct{}{}:
				default: // the workers are behind: the rate is a cap
				}
			}
		}
	})
	for w := range cfg.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tokens:
				}
				began := time.Now()
				target, reason := oneRequest(runCtx, c, proc.base, rng)
				if runCtx.Err() != nil && reason != "" {
					return // the run ended under it: not the proxy's error
				}
				record(target, reason, time.Since(began))
			}
		})
	}
	var killsSkipped atomic.Int64
	if cfg.Faults {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(7, uint64(start.UnixNano())))
			for {
				wait := cfg.KillMin + time.Duration(rng.Int64N(int64(cfg.KillMax-cfg.KillMin)+1))
				select {
				case <-runCtx.Done():
					return
				case <-time.After(wait):
				}
				pid, ok := pluginToKill(runCtx, c, proc.base, proc.pid(), rng)
				if !ok {
					killsSkipped.Add(1)
					continue
				}
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					kills.Add(1)
				}
			}
		})
	}

	// Sampling, every second, in this goroutine.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nextLog := start.Add(30 * time.Second)
	var sampleErr error
sampling:
	for {
		select {
		case <-ctx.Done():
			sampleErr = ctx.Err()
			break sampling
		case <-runCtx.Done():
			break sampling
		case now := <-tick.C:
			s, err := sample(c, proc, now.Sub(start))
			if err != nil {
				sampleErr = err
				cancel()
				break sampling
			}
			s.Requests, s.Errors, s.Kills = requests.Load(), errCount.Load(), int(kills.Load())
			res.Samples = append(res.Samples, s)
			fmt.Fprintf(csv, "%.0f,%d,%d,%d,%d,%d,%d,%d,%d\n", s.T.Seconds(), s.RSSKiB, s.Goroutines, s.FDs,
				s.Children, s.Zombies, s.Requests, s.Errors, s.Kills)
			if now.After(nextLog) {
				nextLog = now.Add(30 * time.Second)
				cfg.Logf("soak: %3.0fs: %d requests, %d errors, %d kills; rss %d KiB, %d goroutines, %d fds, %d children",
					s.T.Seconds(), s.Requests, s.Errors, s.Kills, s.RSSKiB, s.Goroutines, s.FDs, s.Children)
			}
		}
	}
	cancel()
	wg.Wait()
	res.Duration = time.Since(start)
	res.Requests, res.OK, res.Kills, res.KillsSkipped = requests.Load(), oks.Load(), int(kills.Load()), int(killsSkipped.Load())
	if err := csv.Flush(); err != nil {
		return res, err
	}
	if sampleErr != nil {
		return res, fmt.Errorf("soak: sampling: %w", sampleErr)
	}

	res.Verdicts = Judge(res.Samples, cfg.Warmup, cfg.Tolerance)
	if err := os.WriteFile(res.SVG, []byte(Chart(res.Samples, cfg.Warmup, killTimes(res.Samples))), 0o644); err != nil {
		return res, err
	}

	// A clean stop: exit 0 and no plugin left behind.
	children := childrenOf(proc.pid())
	code, err := proc.stop(20 * time.Second)
	if err != nil {
		return res, err
	}
	res.ExitCode = code
	for _, pid := range children {
		if alive(pid) {
			res.Orphans = append(res.Orphans, pid)
		}
	}
	return res, nil
}

// killTimes are the moments the kill count went up.
func killTimes(samples []Sample) []time.Duration {
	var out []time.Duration
	prev := 0
	for _, s := range samples {
		if s.Kills > prev {
			out = append(out, s.T)
			prev = s.Kills
		}
	}
	return out
}

// configText is the soak's healproxy config. Short cooldowns, so the
// flapping upstream is tried again (and recovers) within each phase, and
// a short reinit cooldown, so killed plugins are respawned at once.
func configText(steady, flappy, single string) string {
	return fmt.Sprintf(`# written by the soak test (internal/soak)
listen = "127.0.0.1:0"

health {
  error_threshold        = 3
  cooldown               = "1s"
  success_recovery_count = 2
  auto_reinit            = true
  reinit_cooldown        = "1s"
}

provider "pair" {
  name      = "steady + flapping"
  upstreams = [%q, %q]
  timeout   = "2s"
}

provider "single" {
  name      = "one steady upstream"
  upstreams = [%q]
  timeout   = "2s"
}

model "sentiment" {
  plugin   = "sentiment"
  timeout  = "2s"
  fallback = "sentiment_fb"
}

model "sentiment_fb" {
  plugin  = "sentiment"
  timeout = "2s"
}
`, steady, flappy, single)
}

// ---- upstreams ----

// upstream is a loopback API that answers 200 with a small JSON body, or
// fails while failing is set: with 500, by dropping the connection, or
// by never answering.
type upstream struct {
	*httptest.Server
	failing atomic.Int32 // 0 ok, 1 answer 500, 2 drop the connection, 3 hang
}

func newUpstream(name string) *upstream {
	u := &upstream{}
	body := []byte(`{"upstream":"` + name + `","price":97000.5}`)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch u.failing.Load() {
		case 1:
			http.Error(w, `{"error":"scheduled failure"}`, http.StatusInternalServerError)
			return
		case 3: // hang until the proxy gives up (its timeout)
			<-r.Context().Done()
			return
		case 2:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "drop unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return u
}

// flap alternates good and failing phases until ctx ends, and returns the
// number of failing phases.
func (u *upstream) flap(ctx context.Context, ok, fail time.Duration) int {
	defer u.failing.Store(0)
	cycles := 0
	for {
		select {
		case <-ctx.Done():
			return cycles
		case <-time.After(ok):
		}
		cycles++
		u.failing.Store(int32(1 + cycles%3)) // 500s, drops and hangs in turn
		select {
		case <-ctx.Done():
			return cycles
		case <-time.After(fail):
		}
		u.failing.Store(0)
	}
}

// ---- load ----

var predictBodies = []string{
	`{"inputs": "bitcoin breaks out to a new all-time high"}`,
	`{"inputs": ["ether sinks as exchange outflows dry up", "solana steady"]}`,
	`{"inputs": "regulators sue a large exchange; tokens crash"}`,
}

// oneRequest sends one request of the mix and returns its target and, for
// a client-visible error, its reason ("" for a 2xx).
func oneRequest(ctx context.Context, c *http.Client, base string, rng *rand.Rand) (target, reason string) {
	var req *http.Request
	var err error
	switch n := rng.IntN(10); {
	case n < 4:
		target = "GET /providers/pair"
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/providers/pair/v1/price?symbol=BTC", nil)
	case n < 7:
		target = "GET /providers/single"
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/providers/single/v1/price?symbol=ETH", nil)
	default:
		target = "POST /models/sentiment/predict"
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/models/sentiment/predict",
			strings.NewReader(predictBodies[rng.IntN(len(predictBodies))]))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return target, "building the request: " + err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return target, target + ": transport: " + trimAddr(err.Error())
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return target, fmt.Sprintf("%s: %d %s", target, resp.StatusCode, oneLine(body, 160))
	}
	return target, ""
}

var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// trimAddr drops port numbers, so the same error from two connections is
// one reason.
func trimAddr(s string) string { return addrRE.ReplaceAllString(s, "127.0.0.1:PORT") }

// stampRE finds the timestamps of an error body, which would make each
// occurrence of one error a reason of its own.
var stampRE = regexp.MustCompile(`"(timestamp|last_[a-z_]+|cooldown_until)":"[^"]*"`)

func oneLine(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	s = stampRE.ReplaceAllString(s, `"$1":"…"`)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// ---- the healproxy process ----

type proxyProc struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
	err  error
	logf *os.File
}

var listeningRE = regexp.MustCompile(`msg="healproxy listening" addr=(\S+)`)

// addrWriter copies a process's output to a file and catches the
// listening address in it.
type addrWriter struct {
	w     io.Writer
	mu    sync.Mutex
	head  bytes.Buffer // the first 64 KiB, until the address is found
	addr  string
	found chan struct{}
}

func (a *addrWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.addr == "" && a.head.Len() < 64<<10 {
		a.head.Write(p)
		if m := listeningRE.FindSubmatch(a.head.Bytes()); m != nil {
			a.addr = string(m[1])
			close(a.found)
		}
	}
	a.mu.Unlock()
	return a.w.Write(p)
}

func startProxy(bin string, env []string, conf, logPath string) (*proxyProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	aw := &addrWriter{w: f, found: make(chan struct{})}
	p := &proxyProc{done: make(chan struct{}), logf: f}
	p.cmd = exec.Command(bin, "run", "-config", conf, "-listen", "127.0.0.1:0")
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = aw, aw
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case <-aw.found:
		aw.mu.Lock()
		p.base = "http://" + aw.addr
		aw.mu.Unlock()
		return p, nil
	case <-p.done:
		f.Close()
		return nil, fmt.Errorf("healproxy exited before listening: %v\n%s", p.err, tail(logPath, 4<<10))
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, fmt.Errorf("healproxy did not listen within 60s\n%s", tail(logPath, 4<<10))
	}
}

func (p *proxyProc) pid() int { return p.cmd.Process.Pid }

// kill ends the process if it still runs; for deferred cleanup.
func (p *proxyProc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
	p.logf.Close()
}

// stop sends SIGTERM and waits up to d for the exit code.
func (p *proxyProc) stop(d time.Duration) (int, error) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	select {
	case <-p.done:
	case <-time.After(d):
		return -1, fmt.Errorf("healproxy did not exit within %v of SIGTERM", d)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// ---- readiness and diagnostics ----

// waitReady waits until both model plugins are loaded and healthy.
func waitReady(ctx context.Context, c *http.Client, base string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if h, err := fetchHealth(ctx, c, base); err == nil {
			ready := len(h.Models.Entries) == 2
			for _, m := range h.Models.Entries {
				ready = ready && m.Loaded && m.Status == "healthy"
			}
			if ready {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("soak: the model plugins were not healthy within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

func fetchHealth(ctx context.Context, c *http.Client, base string) (*api.Health, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/diagnostics/health", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/diagnostics/health: %s", resp.Status)
	}
	var h api.Health
	return &h, json.NewDecoder(resp.Body).Decode(&h)
}

// pluginToKill picks a plugin pid to SIGKILL, only when every model is
// loaded and healthy (so the other one covers for it) and the pid is a
// child of the proxy.
func pluginToKill(ctx context.Context, c *http.Client, base string, proxyPid int, rng *rand.Rand) (int, bool) {
	h, err := fetchHealth(ctx, c, base)
	if err != nil || len(h.Models.Entries) == 0 {
		return 0, false
	}
	for _, m := range h.Models.Entries {
		if !m.Loaded || m.Pid == nil || m.Status != "healthy" {
			return 0, false
		}
	}
	m := h.Models.Entries[rng.IntN(len(h.Models.Entries))]
	if parentOf(*m.Pid) != proxyPid {
		return 0, false
	}
	return *m.Pid, true
}

// ---- resources ----

func sample(c *http.Client, p *proxyProc, t time.Duration) (Sample, error) {
	s := Sample{T: t}
	pid := p.pid()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("healproxy is gone: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.RSSKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	s.Goroutines, err = goroutines(c, p.base)
	if err != nil {
		return s, err
	}
	for _, child := range childrenOf(pid) {
		if alive(child) {
			s.Children++
		} else {
			s.Zombies++
		}
	}
	return s, nil
}

// goroutines reads go_goroutines from the proxy's /metrics.
func goroutines(c *http.Client, base string) (int, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, errors.New("no go_goroutines in /metrics")
}

// procStat is the fields of /proc/PID/stat after the command name.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func parentOf(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return -1
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] != "Z"
}

// childrenOf lists the pids whose parent is pid, zombies included.
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, s := range stats {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		if err == nil && parentOf(n) == pid {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// tail is the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
