// Package deploy_test checks the files under deploy/ and the client
// examples against real programs: a healproxy binary built from this
// tree, Debian's Prometheus and promtool, systemd-analyze, Python with
// httpx. Each program a test needs and cannot find makes it skip with a
// loud message, or fail when CI=true. No test sleeps for an effect: each
// waits for a condition, with a deadline.
package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/proctest"
)

// binDir holds the binaries built for this run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "healproxy-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need returns the path of program, or skips the test (fails it with
// CI=true) when it is missing; why says what the test checks with it.
func need(t *testing.T, program, pkg, why string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (%v): %s is NOT checked; install Debian's %s (scripts/install-test-deps.sh)", program, err, why, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

var builds sync.Map // package path -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// build builds the main package pkg (relative to the repository root)
// once per test run and returns the binary's path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(binDir, strings.ReplaceAll(pkg, "/", "-"))
		cmd := exec.Command(goBin, "build", "-o", b.path, "./"+pkg)
		cmd.Dir = ".." // the repository root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./%s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healproxy is a running healproxy process.
type healproxy struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *proctest.Buffer
	base string // http://127.0.0.1:PORT
	done chan struct{}
	err  error
}

var listeningRE = regexp.MustCompile(`msg="healproxy listening" addr=(\S+)`)

// startHealproxy writes config to a file and runs the built binary on it,
// on a free loopback port, until the test ends.
func startHealproxy(t *testing.T, config string) *healproxy {
	t.Helper()
	exe := build(t, "cmd/healproxy")
	cfgPath := filepath.Join(t.TempDir(), "proxy.hcl")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &healproxy{t: t, logs: &proctest.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "run", "-config", cfgPath, "-listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), "GOGC=100") // no heap floor: several processes share the machine
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting healproxy: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("healproxy output:\n%s", p.logs)
		}
	})
	waitFor(t, 30*time.Second, "healproxy to listen", func() bool {
		select {
		case <-p.done:
			t.Fatalf("healproxy exited before listening: %v\n%s", p.err, p.logs)
		default:
		}
		m := listeningRE.FindStringSubmatch(p.logs.String())
		if m == nil {
			return false
		}
		p.base = "http://" + m[1]
		return true
	})
	return p
}

// health reads the health document.
func (p *healproxy) health() api.Health {
	p.t.Helper()
	var doc api.Health
	resp, err := http.Get(p.base + "/api/diagnostics/health")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		p.t.Fatal(err)
	}
	return doc
}

// model returns a model's entry in the health document.
func (p *healproxy) model(key string) api.Model {
	p.t.Helper()
	for _, m := range p.health().Models.Entries {
		if m.ModelKey == key {
			return m
		}
	}
	p.t.Fatalf("model %q not in the health document", key)
	return api.Model{}
}

// killPlugin SIGKILLs model key's plugin process (a crash) and waits
// until healproxy shows the model unavailable.
func (p *healproxy) killPlugin(key string) {
	p.t.Helper()
	var m api.Model
	waitFor(p.t, 20*time.Second, "model "+key+"'s plugin to run", func() bool {
		m = p.model(key)
		return m.Loaded && m.Pid != nil
	})
	if err := syscall.Kill(*m.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.t.Fatal(err)
	}
	waitFor(p.t, 10*time.Second, "model "+key+" unavailable after its plugin was killed", func() bool {
		m := p.model(key)
		return !m.Loaded || m.Status == "unavailable"
	})
}

// get sends a GET and returns the status, discarding the body.
func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// post sends a JSON POST and returns the status.
func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// upstreams are real loopback HTTP servers: good answers 200 with a
// small JSON body, bad always 500.
func upstreams(t *testing.T) (good, bad *httptest.Server) {
	t.Helper()
	good = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"price":3415.07}`, r.URL.Path)
	}))
	bad = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream broken", http.StatusInternalServerError)
	}))
	t.Cleanup(good.Close)
	t.Cleanup(bad.Close)
	return good, bad
}
