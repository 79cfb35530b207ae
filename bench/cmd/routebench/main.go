// Command routebench measures healproxy's routing when one of three
// upstreams is slow now and then (BENCHMARKS.md, "Routing under a slow
// upstream").
//
// It starts three loopback upstreams in-process: fast1 and fast2 answer
// after -fast-delay; slow answers every -slow-every-th request after
// -slow-delay (20 % after 300 ms by default) and the others after
// -fast-delay. For each scenario it writes a config of one provider,
// "route", starts the real healproxy binary (-bin) on it, sends -warmup of
// load, then -requests GET requests from -concurrency clients (bounded by
// -max-time too) through /providers/route/, and stops the process.
// Scenarios:
//
//	healthy        fast1 and fast2 alone: the healthy upstreams' latency
//	round_robin    all three, the default balancing
//	least_latency  balance = "least_latency"
//	hedge_p90      hedge { after = "p90" }
//	hedge_p95      hedge { after = "p95" }
//	hedge_50ms     hedge { after = "50ms" }
//	outlier        outlier_detection with latency_factor = 3, every 2s
//
// The load is closed by default (each client sends its next request when
// it has its answer); with -rate it is open: requests are due at a fixed
// rate, at most -concurrency in flight, and each one's latency counts
// from when it was due.
//
// The scenarios run in turn, round after round (-rounds), each with a
// fresh process. Per scenario and round it records the client's
// p50/p90/p99/p99.9, the requests each upstream received, the extra
// upstream requests (upstream requests − client requests: what hedges and
// retries cost, in % of the client's requests) and errors; the report
// gives the medians over the rounds.
//
// A scenario whose settings the binary does not know (healproxy refuses
// unknown settings) is reported as "not supported by this build" and the
// others go on.
//
//	routebench -bin ./healproxy -dir OUT [-requests 20000 -concurrency 32 -rounds 2]
//
// It writes OUT/routing-SCENARIO.hcl, OUT/routing-SCENARIO-rN.log (the
// proxy's log), OUT/routing-raw.tsv (one line per scenario and round),
// OUT/routing.tsv (the medians) and OUT/routing.md, which it also prints.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenario is one provider configuration under test.
type scenario struct {
	Name     string
	Settings string // HCL lines inside the provider block; "" for the defaults
	Healthy  bool   // only the two fast upstreams
}

// scenarios are the ones measured, in order. The settings follow the
// README's routing settings; a build without them refuses the config.
var scenarios = []scenario{
	{Name: "healthy", Healthy: true},
	{Name: "round_robin"},
	{Name: "least_latency", Settings: `balance = "least_latency"`},
	{Name: "hedge_p90", Settings: "hedge {\n    after     = \"p90\"\n    max_extra = 0.1\n  }"},
	{Name: "hedge_p95", Settings: "hedge {\n    after     = \"p95\"\n    max_extra = 0.1\n  }"},
	{Name: "hedge_50ms", Settings: "hedge {\n    after     = \"50ms\"\n    max_extra = 0.1\n  }"},
	{Name: "outlier", Settings: "outlier_detection {\n    interval             = \"2s\"\n    min_requests         = 20\n" +
		"    latency_factor       = 3\n    max_ejection_percent = 50\n  }"},
}

// options are the command's settings (its flags).
type options struct {
	Bin         string
	Dir         string
	Requests    int           // measured requests per scenario and round
	Concurrency int           // concurrent clients (at most, with Rate)
	Rate        float64       // requests per second, open loop; 0: closed loop
	Warmup      time.Duration // load before measuring, bounded by Requests too
	MaxTime     time.Duration // bound of a measured run
	Rounds      int
	FastDelay   time.Duration
	SlowDelay   time.Duration
	SlowEvery   int
	Scenarios   []scenario
}

func main() {
	o := options{}
	flag.StringVar(&o.Bin, "bin", "healproxy", "healproxy binary")
	flag.StringVar(&o.Dir, "dir", ".", "folder for configs, logs and results")
	flag.IntVar(&o.Requests, "requests", 20000, "measured requests per scenario and round")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "concurrent clients (with -rate: at most this many requests in flight)")
	flag.Float64Var(&o.Rate, "rate", 0, "requests per second, open loop (each request's latency counts from when it was due); 0: closed loop")
	flag.DurationVar(&o.Warmup, "warmup", 3*time.Second, "load before measuring, per scenario and round")
	flag.DurationVar(&o.MaxTime, "max-time", 60*time.Second, "bound of each measured run")
	flag.IntVar(&o.Rounds, "rounds", 2, "interleaved rounds")
	flag.DurationVar(&o.FastDelay, "fast-delay", time.Millisecond, "delay of every fast answer")
	flag.DurationVar(&o.SlowDelay, "slow-delay", 300*time.Millisecond, "delay of the slow upstream's slow answers")
	flag.IntVar(&o.SlowEvery, "slow-every", 5, "the slow upstream delays every Nth request it gets (5: 20 %)")
	names := flag.String("scenarios", "", "comma-separated subset of the scenarios (default all)")
	flag.Parse()
	var err error
	if o.Scenarios, err = pick(*names); err != nil {
		fmt.Fprintln(os.Stderr, "routebench:", err)
		os.Exit(2)
	}
	rep, err := run(o, os.Stderr)
	if rep != nil {
		fmt.Print(rep.Markdown)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "routebench:", err)
		os.Exit(1)
	}
}

// pick returns the named scenarios, in the order given; all for "".
func pick(names string) ([]scenario, error) {
	if strings.TrimSpace(names) == "" {
		return scenarios, nil
	}
	var out []scenario
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		i := -1
		for j, s := range scenarios {
			if s.Name == n {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q", n)
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}

func (o *options) check() error {
	switch {
	case o.Requests < 1 || o.Requests > 10_000_000:
		return fmt.Errorf("-requests %d: want 1 to 10,000,000", o.Requests)
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("-concurrency %d: want 1 to 4096", o.Concurrency)
	case o.Rounds < 1 || o.Rounds > 100:
		return fmt.Errorf("-rounds %d: want 1 to 100", o.Rounds)
	case o.Rate < 0 || o.Rate > 1e6:
		return fmt.Errorf("-rate %v: want 0 (closed loop) to 1,000,000", o.Rate)
	case o.Warmup < 0 || o.MaxTime <= 0:
		return errors.New("-warmup must be >= 0 and -max-time > 0")
	case o.SlowEvery < 0:
		return fmt.Errorf("-slow-every %d: want >= 0", o.SlowEvery)
	case len(o.Scenarios) == 0:
		return errors.New("no scenario")
	}
	return nil
}

// Statuses of a scenario's round.
const (
	statusOK          = "ok"
	statusUnsupported = "not supported by this build"
)

// roundResult is one scenario's round.
type roundResult struct {
	Scenario string
	Round    int
	Status   string // statusOK, statusUnsupported or "failed"
	Detail   string // why, when not ok

	Requests, Errors    int
	ElapsedS, RPS       float64
	P50, P90, P99, P999 float64 // client latency, ms
	TimedOut            bool    // -max-time stopped it before -requests
	Up                  [3]counts
	Extra               int64   // upstream requests − client requests
	ExtraPct            float64 // Extra in % of client requests
	SlowStatus, SlowWhy string  // the slow upstream's health entry at the end
	Load1               float64 // the machine's 1-minute load average at the end
}

// report is a whole run's outcome.
type report struct {
	Rounds   []roundResult
	Summary  []summaryRow
	Markdown string
}

// run measures every scenario of o, round after round, and writes the
// results into o.Dir; progress goes to logw. It returns an error when a
// scenario failed (other than for settings the binary does not know), or
// when the results cannot be written; the report is then as complete as
// it could be made.
func run(o options, logw io.Writer) (*report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(o.Bin)
	if err != nil {
		return nil, fmt.Errorf("healproxy binary: %w", err)
	}
	ups := []*upstream{
		{Name: "fast1", Delay: o.FastDelay},
		{Name: "fast2", Delay: o.FastDelay},
		{Name: "slow", Delay: o.FastDelay, SlowDelay: o.SlowDelay, SlowEvery: int64(o.SlowEvery)},
	}
	for _, u := range ups {
		if err := u.start(); err != nil {
			return nil, err
		}
		defer u.stop()
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(logw, "[routebench %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	env := environment(bin, o)
	logf("%s", strings.ReplaceAll(strings.TrimSpace(env), "\n", "; "))

	// Each scenario's config, checked once with `healproxy validate`.
	cfgs := map[string]string{}
	refused := map[string][2]string{} // scenario → status, detail
	for _, sc := range o.Scenarios {
		path := filepath.Join(o.Dir, "routing-"+sc.Name+".hcl")
		if err := os.WriteFile(path, []byte(configFor(sc, ups)), 0o644); err != nil {
			return nil, err
		}
		cfgs[sc.Name] = path
		if st, why := validate(bin, path); st != statusOK {
			refused[sc.Name] = [2]string{st, why}
			logf("%s: %s: %s", sc.Name, st, why)
		}
	}

	var rounds []roundResult
	var failed []string
	for r := 1; r <= o.Rounds; r++ {
		for _, sc := range o.Scenarios {
			res := roundResult{Scenario: sc.Name, Round: r}
			if st, ok := refused[sc.Name]; ok {
				res.Status, res.Detail = st[0], st[1]
			} else {
				logf("round %d: %s", r, sc.Name)
				res = measure(bin, o, sc, r, cfgs[sc.Name], ups)
				if res.Status == statusOK {
					logf("round %d: %s: %d requests in %.1fs, p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, upstreams %d/%d/%d, extra %.1f %%, errors %d",
						r, sc.Name, res.Requests, res.ElapsedS, res.P50, res.P99, res.P999,
						res.Up[0].Requests, res.Up[1].Requests, res.Up[2].Requests, res.ExtraPct, res.Errors)
				} else {
					logf("round %d: %s: %s: %s", r, sc.Name, res.Status, res.Detail)
					failed = append(failed, fmt.Sprintf("%s (round %d): %s", sc.Name, r, res.Detail))
				}
			}
			rounds = append(rounds, res)
		}
	}

	rep := &report{Rounds: rounds, Summary: summarize(o.Scenarios, rounds)}
	rep.Markdown = markdown(o, env, rep.Summary)
	for name, text := range map[string]string{
		"routing-raw.tsv": rawTSV(rounds),
		"routing.tsv":     summaryTSV(rep.Summary),
		"routing.md":      rep.Markdown,
	} {
		if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(text), 0o644); err != nil {
			return rep, err
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("%d run(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return rep, nil
}

// configFor is sc's healproxy config over ups (fast1, fast2, slow). The
// listen address is given on the command line.
func configFor(sc scenario, ups []*upstream) string {
	var b strings.Builder
	b.WriteString("# written by bench/cmd/routebench, scenario " + sc.Name + "\n")
	b.WriteString("listen = \"127.0.0.1:7860\" # replaced by run -listen\n\n")
	b.WriteString("provider \"route\" {\n  upstreams = [")
	n := len(ups)
	if sc.Healthy {
		n = 2
	}
	for i, u := range ups[:n] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", u.URL+"/"+u.Name)
	}
	b.WriteString("]\n  timeout   = \"5s\"\n")
	if sc.Settings != "" {
		b.WriteString("  " + sc.Settings + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// validate runs `healproxy validate` on path: statusOK, or
// statusUnsupported when the binary does not know a setting, or "failed"
// for any other refusal, with the diagnostics.
func validate(bin, path string) (status, detail string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "validate", "-config", path).CombinedOutput()
	if err == nil {
		return statusOK, ""
	}
	msg := strings.TrimSpace(strings.ReplaceAll(string(out), path+":", "line "))
	msg = strings.Join(strings.Fields(msg), " ")
	if strings.Contains(msg, "Unsupported argument") || strings.Contains(msg, "Unsupported block type") {
		return statusUnsupported, msg
	}
	return "failed", fmt.Sprintf("healproxy validate: %v: %s", err, msg)
}

// freeAddr returns a loopback address nothing listened on a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// measure runs one scenario's round: a fresh healproxy on cfg, warm-up,
// the measured load, the slow upstream's entry, then the process stopped.
func measure(bin string, o options, sc scenario, round int, cfg string, ups []*upstream) (res roundResult) {
	res = roundResult{Scenario: sc.Name, Round: round, Status: "failed"}
	addr, err := freeAddr()
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	logPath := filepath.Join(o.Dir, fmt.Sprintf("routing-%s-r%d.log", sc.Name, round))
	p, err := startProxy(bin, cfg, addr, logPath)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	defer p.stop()

	client := newClient(o.Concurrency)
	defer client.CloseIdleConnections()
	url := "http://" + addr + "/providers/route/ticker"
	if o.Warmup > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), o.Warmup)
		drive(ctx, client, url, o.Requests, o.Concurrency, o.Rate)
		cancel()
	}
	var before [3]counts
	for i, u := range ups {
		before[i] = u.counts()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.MaxTime)
	lr := drive(ctx, client, url, o.Requests, o.Concurrency, o.Rate)
	cancel()
	var total int64
	for i, u := range ups {
		res.Up[i] = u.counts().sub(before[i])
		total += res.Up[i].Requests
	}
	if p.exited() {
		res.Detail = "healproxy exited during the run; see " + logPath
		return res
	}
	res.Requests, res.Errors, res.TimedOut = len(lr.Latencies), lr.Errors, lr.TimedOut
	if res.Requests == 0 {
		res.Detail = "no request finished within -max-time"
		return res
	}
	res.ElapsedS = lr.Elapsed.Seconds()
	res.RPS = float64(res.Requests) / res.ElapsedS
	res.P50, res.P90 = percentileMs(lr.Latencies, 0.50), percentileMs(lr.Latencies, 0.90)
	res.P99, res.P999 = percentileMs(lr.Latencies, 0.99), percentileMs(lr.Latencies, 0.999)
	res.Extra = total - int64(res.Requests)
	res.ExtraPct = 100 * float64(res.Extra) / float64(res.Requests)
	if !sc.Healthy {
		res.SlowStatus, res.SlowWhy = upstreamEntry(client, addr, ups[2].URL)
	}
	res.Load1 = loadAvg1()
	res.Status = statusOK
	return res
}

// proxyProc is a running healproxy.
type proxyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// startProxy starts bin on cfg, listening on addr, and waits (at most
// 30s) until its health document answers.
func startProxy(bin, cfg, addr, logPath string) (*proxyProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", cfg, "-listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start healproxy: %w", err)
	}
	p := &proxyProc{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { cmd.Wait(); close(p.done) }()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			p.stop()
			return nil, fmt.Errorf("healproxy exited at start (%v); see %s", cmd.ProcessState, logPath)
		}
		resp, err := c.Get("http://" + addr + "/api/diagnostics/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("healproxy did not answer within 30s; see %s", logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proxyProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10s.
func (p *proxyProc) stop() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.log.Close()
}

// upstreamEntry reads the status and reason of the upstream at url
// (scheme://host:port) in the proxy's health document; "" when absent.
func upstreamEntry(c *http.Client, addr, url string) (status, reason string) {
	resp, err := c.Get("http://" + addr + "/api/diagnostics/health")
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	var doc struct {
		Providers struct {
			Entries []struct {
				Upstreams []struct {
					URL    string `json:"url"`
					Status string `json:"status"`
					Reason string `json:"reason"`
				} `json:"upstreams"`
			} `json:"entries"`
		} `json:"providers"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || json.Unmarshal(body, &doc) != nil {
		return "", ""
	}
	for _, e := range doc.Providers.Entries {
		for _, u := range e.Upstreams {
			if strings.HasPrefix(u.URL, url+"/") || u.URL == url {
				return u.Status, u.Reason
			}
		}
	}
	return "", ""
}

// loadAvg1 is the machine's 1-minute load average; NaN when unknown.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return x
}

// environment describes the machine and the binary, for the report.
func environment(bin string, o options) string {
	var b strings.Builder
	ver, _ := exec.Command(bin, "version").Output()
	fmt.Fprintf(&b, "healproxy: %s\n", strings.TrimSpace(string(ver)))
	if m, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(m), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				fmt.Fprintf(&b, "cpu: %s\n", strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")))
				break
			}
		}
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "load average at start: %s (%d CPUs)\n", strings.Join(strings.Fields(string(l))[:3], " "), runtime.NumCPU())
	}
	if o.Rate > 0 {
		fmt.Fprintf(&b, "load: %d requests at %g/s (open loop, at most %d in flight; latency from when each was due) per scenario and round, after %v of warm-up; %d rounds, interleaved\n",
			o.Requests, o.Rate, o.Concurrency, o.Warmup, o.Rounds)
	} else {
		fmt.Fprintf(&b, "load: %d requests at concurrency %d (closed loop) per scenario and round, after %v of warm-up; %d rounds, interleaved\n",
			o.Requests, o.Concurrency, o.Warmup, o.Rounds)
	}
	fmt.Fprintf(&b, "upstreams: fast1, fast2 answer after %v; slow answers every %s request after %v, the others after %v\n",
		o.FastDelay, ordinal(o.SlowEvery), o.SlowDelay, o.FastDelay)
	return b.String()
}

func ordinal(n int) string {
	switch n {
	case 0:
		return "no"
	case 1:
		return "single"
	}
	suf := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suf = "st"
	case n%10 == 2:
		suf = "nd"
	case n%10 == 3:
		suf = "rd"
	}
	return fmt.Sprintf("%d%s", n, suf)
}
