// Command scale measures a real healproxy process with many configured
// providers: start-up time (process start → the health document answers),
// resident memory, the time of GET /api/diagnostics/health and of a config
// reload (POST /api/admin/reload, until its answer).
//
//	scale -bin ./healproxy -dir OUT -listen 127.0.0.1:9207 -counts "1 1000 10000"
//
// Each provider has one upstream on a loopback port nothing listens on;
// no request is ever sent to it (no active checks, no traffic). It writes
// OUT/scale-N.hcl, OUT/scale-N.log and OUT/scale.tsv, and prints a markdown
// table with the verdicts on stdout.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "healproxy", "healproxy binary")
	dir := flag.String("dir", ".", "folder for configs, logs and scale.tsv")
	listen := flag.String("listen", "127.0.0.1:9207", "loopback address healproxy listens on")
	counts := flag.String("counts", "1 1000 10000", "provider counts")
	calls := flag.Int("calls", 20, "health-document requests per count")
	reloads := flag.Int("reloads", 3, "reloads of each kind per count")
	flag.Parse()
	var ns []int
	for _, f := range strings.Fields(strings.ReplaceAll(*counts, ",", " ")) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scale: bad count %q\n", f)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	var results []result
	for _, n := range ns {
		r, err := measure(*bin, *dir, *listen, n, max(*calls, 1), max(*reloads, 1))
		if err != nil {
			fmt.Fprintf(os.Stderr, "scale: %d providers: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "scale: %d providers: start-up %.0f ms, RSS %.1f MiB, health p50 %.1f ms, reload %.0f ms\n",
			n, r.StartupMs, r.RSSReadyKB/1024, r.HealthP50Ms, r.ReloadSameMs)
		results = append(results, r)
	}
	if err := os.WriteFile(filepath.Join(*dir, "scale.tsv"), []byte(tsv(results)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	fmt.Print(markdown(results))
}

// result is what one provider count measured.
type result struct {
	Providers      int
	StartupMs      float64 // process start → first 200 from the health document
	RSSReadyKB     float64 // VmRSS right then
	RSSAfterKB     float64 // VmRSS after the health requests and reloads
	HWMKB          float64 // VmHWM at the end
	HealthP50Ms    float64
	HealthMaxMs    float64
	HealthBytes    int
	ReloadSameMs   float64 // median, the file unchanged
	ReloadChangeMs float64 // median, every provider's timeout changed
	ReloadHUPMs    float64 // median, SIGHUP until the "config reloaded" log line, the file unchanged
}

// writeConfig writes a config of n providers, each with one upstream on a
// loopback port nothing listens on (9, discard), never contacted: there
// are no active checks and no traffic. variant changes every provider's
// timeout, so that a reload to another variant replaces them all.
func writeConfig(w io.Writer, listen string, n, variant int) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "listen = %q\n\n", listen)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(bw, "provider \"p%05d\" {\n  upstreams = [\"http://127.0.0.1:9/p%05d\"]\n  timeout   = \"%ds\"\n}\n", i, i, 10+variant)
	}
	return bw.Flush()
}

func writeConfigFile(path, listen string, n, variant int) error {
	var b bytes.Buffer
	if err := writeConfig(&b, listen, n, variant); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// percentile of sorted xs, nearest rank.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// procKB reads a "Vm…:" line of /proc/PID/status, in KiB.
func procKB(pid int, field string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				x, _ := strconv.ParseFloat(f[0], 64)
				return x
			}
		}
	}
	return math.NaN()
}

func measure(bin, dir, listen string, n, calls, reloads int) (result, error) {
	r := result{Providers: n}
	cfg := filepath.Join(dir, fmt.Sprintf("scale-%d.hcl", n))
	if err := writeConfigFile(cfg, listen, n, 0); err != nil {
		return r, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("scale-%d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	base := "http://" + listen
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	// Start-up: poll until the health document answers 200.
	deadline := start.Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			return r, fmt.Errorf("healproxy exited during start-up (%v); see its log", err)
		default:
		}
		resp, err := client.Get(base + "/api/diagnostics/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.StartupMs = ms(time.Since(start))
				var doc struct {
					Providers struct{ Summary struct{ Total int } } `json:"providers"`
				}
				if err := json.Unmarshal(body, &doc); err != nil || doc.Providers.Summary.Total != n {
					return r, fmt.Errorf("health document: %d providers, %v; want %d", doc.Providers.Summary.Total, err, n)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			return r, errors.New("the health document did not answer within 2 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	r.RSSReadyKB = procKB(pid, "VmRSS")

	var lat []float64
	for range calls {
		t0 := time.Now()
		resp, err := client.Get(base + "/api/diagnostics/health")
		if err != nil {
			return r, err
		}
		nb, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return r, fmt.Errorf("health: %d, %v", resp.StatusCode, err)
		}
		lat = append(lat, ms(time.Since(t0)))
		r.HealthBytes = int(nb)
	}
	slices.Sort(lat)
	r.HealthP50Ms, r.HealthMaxMs = percentile(lat, 0.5), lat[len(lat)-1]

	reload := func() (float64, error) {
		t0 := time.Now()
		resp, err := client.Post(base+"/api/admin/reload", "", nil)
		if err != nil {
			return 0, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("reload: %d %s", resp.StatusCode, body)
		}
		return ms(time.Since(t0)), nil
	}
	var same, changed []float64
	for range reloads {
		d, err := reload()
		if err != nil {
			return r, err
		}
		same = append(same, d)
	}
	for i := range reloads {
		if err := writeConfigFile(cfg, listen, n, i%2+1); err != nil {
			return r, err
		}
		d, err := reload()
		if err != nil {
			return r, err
		}
		changed = append(changed, d)
	}
	// SIGHUP answers nothing: wait for the log line Reload writes when done.
	if err := writeConfigFile(cfg, listen, n, 0); err != nil {
		return r, err
	}
	if _, err := reload(); err != nil { // back to variant 0, so the SIGHUPs change nothing
		return r, err
	}
	var hup []float64
	for range reloads {
		fi, err := os.Stat(logPath)
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return r, err
		}
		for {
			done, err := reloadedSince(logPath, fi.Size())
			if err != nil {
				return r, err
			}
			if done {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				return r, errors.New("no reload logged within 2 minutes of SIGHUP")
			}
			time.Sleep(time.Millisecond)
		}
		hup = append(hup, ms(time.Since(t0)))
	}
	slices.Sort(same)
	slices.Sort(changed)
	slices.Sort(hup)
	r.ReloadSameMs, r.ReloadChangeMs, r.ReloadHUPMs = percentile(same, 0.5), percentile(changed, 0.5), percentile(hup, 0.5)
	r.RSSAfterKB, r.HWMKB = procKB(pid, "VmRSS"), procKB(pid, "VmHWM")
	return r, nil
}

// reloadedSince reports whether a healproxy log has a "config reloaded"
// line after its first off bytes.
func reloadedSince(path string, off int64) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte(`msg="config reloaded"`)), nil
}

func tsv(rs []result) string {
	var b strings.Builder
	b.WriteString("providers\tstartup_ms\trss_ready_kb\trss_after_kb\thwm_kb\thealth_p50_ms\thealth_max_ms\thealth_bytes\treload_same_ms\treload_changed_ms\treload_sighup_ms\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "%d\t%.1f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%d\t%.1f\t%.1f\t%.1f\n", r.Providers, r.StartupMs, r.RSSReadyKB,
			r.RSSAfterKB, r.HWMKB, r.HealthP50Ms, r.HealthMaxMs, r.HealthBytes, r.ReloadSameMs, r.ReloadChangeMs, r.ReloadHUPMs)
	}
	return b.String()
}

// wantHealthMs is the target for the health document of 1,000
// providers.
const wantHealthMs = 50.0

func markdown(rs []result) string {
	var b strings.Builder
	b.WriteString("| providers | start-up ms | RSS at start MiB | RSS after MiB | peak RSS MiB | RSS KiB/provider | health p50 ms | health max ms | health doc KiB | reload, unchanged ms | reload, all changed ms | SIGHUP reload ms |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var base *result
	for i := range rs {
		if rs[i].Providers == 1 {
			base = &rs[i]
		}
	}
	for _, r := range rs {
		per := "—"
		if base != nil && r.Providers > base.Providers {
			per = fmt.Sprintf("%.1f", (r.RSSReadyKB-base.RSSReadyKB)/float64(r.Providers-base.Providers))
		}
		fmt.Fprintf(&b, "| %d | %.0f | %.1f | %.1f | %.1f | %s | %.2f | %.2f | %.0f | %.1f | %.1f | %.1f |\n", r.Providers, r.StartupMs,
			r.RSSReadyKB/1024, r.RSSAfterKB/1024, r.HWMKB/1024, per, r.HealthP50Ms, r.HealthMaxMs, float64(r.HealthBytes)/1024,
			r.ReloadSameMs, r.ReloadChangeMs, r.ReloadHUPMs)
	}
	b.WriteString("\nStart-up: process start until `GET /api/diagnostics/health` first answers 200 (config load, `proxy.New`, listen). " +
		"RSS KiB/provider: (RSS at start − RSS at start with 1 provider) / (providers − 1). " +
		"Reload (medians): `POST /api/admin/reload` until its answer; \"all changed\" rewrites every provider's timeout first; " +
		"SIGHUP: the signal until healproxy logs `config reloaded` (file unchanged).\n")
	for _, r := range rs {
		if r.Providers == 1000 {
			fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---|---|\n| `GET /api/diagnostics/health` < %.0f ms with 1,000 providers (p50) | p50 %.2f ms, max %.2f ms | **%s** |\n",
				wantHealthMs, r.HealthP50Ms, r.HealthMaxMs, map[bool]string{true: "met", false: "missed"}[r.HealthP50Ms < wantHealthMs])
		}
	}
	return b.String()
}
