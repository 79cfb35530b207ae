package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/healproxy/healproxy/plugins"
)

// defaultCheckInputs are predicted when plugin-check is given no -input.
var defaultCheckInputs = []string{
	"BTC breaks out to a new all-time high, very bullish",
	"exchange hacked, withdrawals halted",
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ", ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// cmdPluginCheck is `healproxy plugin-check [flags] -- COMMAND...`: it
// starts a model plugin the way the proxy does (minimal environment,
// go-plugin handshake with mTLS, health check), calls Info, Health and one
// Predict, and prints each step with its time or the step that failed and
// why. Exit 0 when every step passed, 1 when one failed, 2 on bad usage.
// The plugin is killed at the end.
func cmdPluginCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: healproxy plugin-check [flags] -- COMMAND [ARG...]

Starts COMMAND as a model plugin, the way healproxy runs a model block's
command (same environment rules, handshake, mutual TLS and health check),
then calls Info, Health and one Predict, printing each step and its time.
Exit status 0 when every step passed, 1 when a step failed.

flags:
`)
		fs.PrintDefaults()
	}
	var inputs, env, inherit repeated
	fs.Var(&inputs, "input", "a text to predict (repeatable; default: two sample texts)")
	fs.Var(&env, "env", "NAME=VALUE set for the plugin, as a model block's env (repeatable)")
	fs.Var(&inherit, "inherit-env", "NAME of a variable passed to the plugin, as inherit_env (repeatable)")
	startTimeout := fs.Duration("start-timeout", 30*time.Second, "bound on the start: handshake and first health check")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on each call (a model block's timeout)")
	verbose := fs.Bool("v", false, "print the plugin's own log lines (its stderr) too")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprintln(stderr, "plugin-check: no command; usage: healproxy plugin-check [flags] -- COMMAND [ARG...]")
		return 2
	}
	modelEnv := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "plugin-check: -env %q: want NAME=VALUE\n", kv)
			return 2
		}
		if slices.Contains(plugins.HandshakeEnv, k) {
			fmt.Fprintf(stderr, "plugin-check: -env %s: set by healproxy for the handshake\n", k)
			return 2
		}
		modelEnv[k] = v
	}
	if len(inputs) == 0 {
		inputs = defaultCheckInputs
	}

	// The plugin's log lines: shown when asked, and the last few kept for
	// a failed step's message in any case (plugins.Start quotes them).
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	c := &checker{out: stdout}
	fmt.Fprintf(stdout, "plugin-check: %s\n", strings.Join(command, " "))
	spawned := time.Now()
	ctx := context.Background()
	p, err := plugins.Start(ctx, plugins.Spec{
		Key:          "plugin-check",
		Command:      command,
		ModelEnv:     modelEnv,
		InheritEnv:   inherit,
		StartTimeout: *startTimeout,
	}, logger)
	if err != nil {
		return c.fail(startStep(err), time.Since(spawned), err)
	}
	defer p.Kill()
	c.ok("start", time.Since(spawned), fmt.Sprintf("spawned, handshake and health check passed (pid %d)", p.Pid()))
	m := p.Model()

	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, *timeout) }

	cctx, cancel := call()
	t0 := time.Now()
	info, err := m.Info(cctx)
	cancel()
	if err != nil {
		return c.fail("info", time.Since(t0), err)
	}
	c.ok("info", time.Since(t0), fmt.Sprintf("name %q, version %q, labels %q", info.Name, info.Version, info.Labels))

	cctx, cancel = call()
	t0 = time.Now()
	err = m.Health(cctx)
	cancel()
	if err != nil {
		return c.fail("health", time.Since(t0), err)
	}
	c.ok("health", time.Since(t0), "ok")

	cctx, cancel = call()
	t0 = time.Now()
	preds, err := m.Predict(cctx, inputs)
	cancel()
	first := time.Since(spawned)
	if err != nil {
		return c.fail("predict", time.Since(t0), err)
	}
	for i, scores := range preds {
		if len(scores) == 0 {
			return c.fail("predict", time.Since(t0), fmt.Errorf("no label scores for input %d (%q)", i, inputs[i]))
		}
	}
	c.ok("predict", time.Since(t0), fmt.Sprintf("%d inputs", len(inputs)))
	for i, scores := range preds {
		var b strings.Builder
		for j, s := range scores {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %.3f", s.Label, s.Score)
			if len(info.Labels) > 0 && !slices.Contains(info.Labels, s.Label) {
				b.WriteString(" (not among Info's labels)")
			}
		}
		fmt.Fprintf(stdout, "       %q → %s\n", inputs[i], b.String())
	}
	fmt.Fprintf(stdout, "plugin-check: ok (first prediction %s after spawn)\n", round(first))
	return 0
}

// checker prints the steps of a plugin check.
type checker struct{ out io.Writer }

func (c *checker) ok(step string, d time.Duration, detail string) {
	fmt.Fprintf(c.out, "ok     %-8s %8s  %s\n", step, round(d), detail)
}

func (c *checker) fail(step string, d time.Duration, err error) int {
	fmt.Fprintf(c.out, "FAIL   %-8s %8s  %v\n", step, round(d), err)
	fmt.Fprintf(c.out, "plugin-check: failed at step %q\n", step)
	return 1
}

// startStep names the part of plugins.Start that failed, from its error.
func startStep(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "command not found"), strings.Contains(msg, "cannot run"), strings.Contains(msg, "empty command"):
		return "spawn"
	case strings.Contains(msg, "health check failed"):
		return "health"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(msg, "handshake"):
		return "handshake"
	}
	return "start"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
