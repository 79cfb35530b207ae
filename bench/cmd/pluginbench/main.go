// Command pluginbench compares a Python model plugin with a Go one, in one
// run on one machine, and prints a markdown table:
//
//	go run ./bench/cmd/pluginbench -n 2000 -spawns 5 -kills 5
//
// It measures the predict hop over HTTP (POST /models/KEY/predict through
// an in-process healproxy, proxy.Server on a loopback listener) to the Go
// built-in "sentiment" plugin and to the Python test plugin
// (plugins/python/testdata/testmodel.py, a trivial model, so that the
// figure is the hop, not the model), interleaved, p50/p99; spawn → first
// prediction (plugins.Start plus one Predict) for the Go plugin, the Python
// test plugin and the scikit-learn example (examples/python-model), median
// of -spawns runs; and SIGKILL → healthy respawn under supervisor with
// auto_reinit, median of -kills.
//
// Needs /usr/bin/python3 with Debian's python3-grpcio, python3-protobuf,
// python3-cryptography and python3-sklearn.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/proxy"
	"github.com/healproxy/healproxy/supervisor"
)

func main() {
	// The Go plugin is this binary re-executed as `plugin sentiment`.
	testplugins.ServeIfAsked(nil)
	n := flag.Int("n", 2000, "predict calls per model (interleaved)")
	spawns := flag.Int("spawns", 5, "spawns per plugin for spawn → first prediction")
	kills := flag.Int("kills", 5, "SIGKILLs per plugin for kill → healthy")
	flag.Parse()
	if err := run(*n, *spawns, *kills); err != nil {
		fmt.Fprintln(os.Stderr, "pluginbench:", err)
		os.Exit(1)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func run(n, spawns, kills int) error {
	goCmd := plugins.BuiltinCommand("sentiment")
	pyCmd := testplugins.PythonTestModel("ok")
	skCmd := testplugins.PythonExample()

	fmt.Println("| measure | Go plugin | Python plugin | scikit-learn example |")
	fmt.Println("|---|---|---|---|")

	hop, err := hopHTTP(n, goCmd, pyCmd)
	if err != nil {
		return err
	}
	fmt.Printf("| predict over HTTP, p50 (n=%d each, interleaved) | %s | %s | |\n", n, hop[0].p(50), hop[1].p(50))
	fmt.Printf("| predict over HTTP, p99 | %s | %s | |\n", hop[0].p(99), hop[1].p(99))

	var first [3]durations
	for range spawns {
		for i, cmd := range [][]string{goCmd, pyCmd, skCmd} {
			d, err := spawnToPredict(cmd)
			if err != nil {
				return err
			}
			first[i] = append(first[i], d)
		}
	}
	fmt.Printf("| spawn → first prediction, median of %d | %s | %s | %s |\n", spawns, first[0].p(50), first[1].p(50), first[2].p(50))

	var heal [3]durations
	for i, cmd := range [][]string{goCmd, pyCmd, skCmd} {
		if heal[i], err = killToHealthy(cmd, kills); err != nil {
			return err
		}
	}
	fmt.Printf("| SIGKILL → healthy respawn (auto_reinit), median of %d | %s | %s | %s |\n", kills, heal[0].p(50), heal[1].p(50), heal[2].p(50))
	return nil
}

type durations []time.Duration

// p is the q-th percentile (nearest rank).
func (d durations) p(q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*q + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	v := s[i]
	if v >= time.Second {
		return v.Round(10 * time.Millisecond)
	}
	if v >= time.Millisecond {
		return v.Round(10 * time.Microsecond)
	}
	return v.Round(time.Microsecond)
}

// hopHTTP serves both models through one in-process healproxy and times
// POST /models/KEY/predict, alternating between them.
func hopHTTP(n int, goCmd, pyCmd []string) ([2]durations, error) {
	var res [2]durations
	q := func(argv []string) string {
		var b bytes.Buffer
		for i, a := range argv {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", a)
		}
		return b.String()
	}
	src := fmt.Sprintf("model \"go\" {\n  command = [%s]\n  timeout = \"5s\"\n}\nmodel \"py\" {\n  command = [%s]\n  timeout = \"5s\"\n}\n", q(goCmd), q(pyCmd))
	cfg, diags := config.Parse("pluginbench.hcl", []byte(src), config.LoadOptions{})
	if diags.HasErrors() {
		return res, diags
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: quiet})
	if err != nil {
		return res, err
	}
	defer srv.Close(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + ln.Addr().String() + "/models/"
	body := []byte(`{"inputs": ["ETH breaking out, a good day"]}`)
	call := func(key string) (time.Duration, error) {
		start := time.Now()
		resp, err := client.Post(base+key+"/predict", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: status %d", key, resp.StatusCode)
		}
		return time.Since(start), nil
	}
	for _, key := range []string{"go", "py"} { // wait for both to be up: at most 30s
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := call(key); err == nil {
				break
			} else if time.Now().After(deadline) {
				return res, fmt.Errorf("model %s never answered: %v", key, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for range 50 { // warm-up
		_, _ = call("go")
		_, _ = call("py")
	}
	for range n {
		for i, key := range []string{"go", "py"} {
			d, err := call(key)
			if err != nil {
				return res, err
			}
			res[i] = append(res[i], d)
		}
	}
	return res, nil
}

func spawnToPredict(cmd []string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	p, err := plugins.Start(ctx, plugins.Spec{Key: "bench", Command: cmd, StartTimeout: 30 * time.Second}, quiet)
	if err != nil {
		return 0, err
	}
	defer p.Kill()
	if _, err := p.Model().Predict(ctx, []string{"a good day"}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func killToHealthy(cmd []string, kills int) (durations, error) {
	mc := config.Model{Key: "bench", Name: "bench", Command: cmd, Timeout: 5 * time.Second,
		Health: config.Health{AutoReinit: true, ReinitCooldown: time.Millisecond}}
	m := supervisor.New(mc, breaker.Settings{ErrorThreshold: 5, Cooldown: time.Second, RecoveryCount: 1}, supervisor.Options{Logger: quiet})
	defer m.Close()
	m.Start()
	healthy := func(old int) (time.Duration, error) {
		start := time.Now()
		for {
			if p := m.Process(); p != nil && p.Pid() != old && m.Health.Status() == breaker.Healthy {
				return time.Since(start), nil
			}
			if time.Since(start) > 60*time.Second {
				return 0, fmt.Errorf("%v: not healthy 60s after the kill", cmd)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := healthy(0); err != nil {
		return nil, err
	}
	var out durations
	for range kills {
		old := m.Process().Pid()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return nil, err
		}
		d, err := healthy(old)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
