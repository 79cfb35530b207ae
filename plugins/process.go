package plugins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
)

// DefaultStartTimeout bounds Start when Spec.StartTimeout is zero.
const DefaultStartTimeout = 10 * time.Second

// killGrace is how long Kill lets a plugin shut down gracefully (go-plugin's
// Controller.Shutdown) before it sends SIGKILL.
const killGrace = 500 * time.Millisecond

// Spec describes one model plugin process.
type Spec struct {
	// Key is the model key; every log record of the process carries it as
	// "model".
	Key string
	// Command is the argv of the plugin. A name without a slash is looked
	// up in PATH; a relative path is taken from the working directory, so
	// callers resolve config-relative paths first. For a built-in plugin use
	// BuiltinCommand.
	Command []string
	// Env holds healproxy's own KEY=VALUE pairs for the child (the
	// built-in and test plugins use it). They take precedence over
	// everything but the handshake variables.
	Env []string
	// StartTimeout bounds the handshake and, separately, the first health
	// check. Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// ModelEnv is the model block's env: variables set for the plugin, on
	// top of the minimal environment (see Environ).
	ModelEnv map[string]string
	// InheritEnv is the model block's inherit_env: names of healproxy's
	// own variables passed to the plugin when they are set.
	InheritEnv []string
}

// BuiltinCommand returns the argv that runs built-in plugin name from this
// very binary: {exe, "plugin", name}. On Linux exe is /proc/self/exe, which
// survives the binary being replaced on disk; elsewhere os.Executable.
func BuiltinCommand(name string) []string {
	return []string{selfExe(), "plugin", name}
}

// Process is one running plugin subprocess. Its methods are safe for
// concurrent use. The process ends when Kill is called or when it exits on
// its own; a Process is never restarted: Start a new one.
type Process struct {
	key     string
	log     *slog.Logger
	client  *plugin.Client
	cmd     *exec.Cmd
	pid     int
	model   *grpcClient
	sockDir string
	stderr  *stderrLogger

	quiet    *atomic.Bool // set once Kill has begun
	done     chan struct{}
	exitErr  error // written before done is closed
	killOnce sync.Once
}

// Start spawns the plugin described by spec, performs the go-plugin
// handshake (gRPC only, automatic mTLS), dispenses the Model and checks its
// health with a deadline. On any failure the child is killed and reaped
// before Start returns an error that says what failed: the command was not
// found or could not be run, the handshake failed (not a healproxy plugin,
// wrong protocol, stdout written before Serve, exited or timed out), or the
// health check failed.
//
// ctx bounds the whole start: its deadline shortens StartTimeout, and it is
// checked before spawning and during the health check. logger may be nil.
func Start(ctx context.Context, spec Spec, logger *slog.Logger) (*Process, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, fmt.Errorf("plugins: model %q: empty command", spec.Key)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plugins: model %q: start: %w", spec.Key, err)
	}
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	log := logger.With("model", spec.Key)

	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("plugins: model %q: command not found: %w", spec.Key, cmd.Err)
	}
	// The plugin puts its Unix socket here rather than in $TMPDIR, so
	// nothing is left behind when it is killed.
	sockDir, err := os.MkdirTemp("", "healproxy-plugin-")
	if err != nil {
		return nil, fmt.Errorf("plugins: model %q: %w", spec.Key, err)
	}
	// A minimal environment, not healproxy's (which holds provider keys):
	// see Environ. go-plugin appends the handshake variables after it.
	cmd.Env = append(Environ(spec, os.LookupEnv), plugin.EnvUnixSocketDir+"="+sockDir)
	cmd.SysProcAttr = sysProcAttr()

	quiet := new(atomic.Bool)
	// One logger for the raw stderr (before Serve, and the Go runtime's
	// panics) and the stderr that Serve streams over gRPC.
	stderr := &stderrLogger{l: log, stream: "stderr"}
	// NewClient and Start mutate the config: a fresh one per spawn.
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginMap,
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     timeout,
		Logger:           newHCLogAdapter(log, filepath.Base(cmd.Path), quiet),
		Stderr:           stderr.writer(),
		SyncStdout:       (&stderrLogger{l: log, stream: "stdout"}).writer(),
		SyncStderr:       stderr.writer(),
	})
	fail := func(err error) (*Process, error) {
		quiet.Store(true)
		client.Kill() // kills and waits for go-plugin's cmd.Wait: reaped
		_ = os.RemoveAll(sockDir)
		return nil, err
	}

	rpc, err := client.Client()
	if cmd.Process != nil {
		// go-plugin reaps the plugin only once its stderr is closed, and a
		// process the plugin started holds it open: kill the plugin's group
		// as soon as the plugin itself has exited (onExit).
		pid := cmd.Process.Pid
		onExit(pid, func() { killGroup(pid) })
	}
	if err != nil {
		if cmd.Process == nil { // never ran
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
				return fail(fmt.Errorf("plugins: model %q: command not found: %w", spec.Key, err))
			}
			return fail(fmt.Errorf("plugins: model %q: cannot run %q: %w", spec.Key, spec.Command[0], err))
		}
		// go-plugin appends multi-line advice to some errors; keep the
		// first line and add what the child wrote to stderr.
		msg, rest, _ := strings.Cut(err.Error(), "\n")
		if strings.Contains(rest, "Failed to read any lines") {
			msg = strings.TrimSpace(msg) + " (nothing on stdout: the command exited or closed stdout before the handshake)"
		}
		msg = fmt.Sprintf("plugins: model %q: handshake with %q failed (is it a healproxy model plugin that calls plugins.Serve, or healproxy_plugin.serve in Python, and writes nothing to stdout first?): %s", spec.Key, spec.Command[0], msg)
		// go-plugin reports the handshake failure as soon as stdout ends,
		// possibly before it has read the plugin's stderr (a Python
		// traceback); Kill returns once stderr is read to its end.
		quiet.Store(true)
		client.Kill()
		if tail := stderr.Tail(); tail != "" {
			msg += "; plugin stderr: " + tail
		}
		return fail(errors.New(msg))
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugins: model %q: dispense: %w", spec.Key, err))
	}
	model, ok := raw.(*grpcClient)
	if !ok {
		return fail(fmt.Errorf("plugins: model %q: dispense: unexpected %T", spec.Key, raw))
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	err = model.Health(hctx)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("plugins: model %q: health check failed: %w", spec.Key, err))
	}

	p := &Process{
		key:     spec.Key,
		log:     log,
		client:  client,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		model:   model,
		sockDir: sockDir,
		stderr:  stderr,
		quiet:   quiet,
		done:    make(chan struct{}),
	}
	go p.watch()
	log.Debug("model plugin started", "pid", p.pid)
	return p, nil
}

// watch waits for the process to end (go-plugin cancels the GRPCClient
// context right after its cmd.Wait returns), records why, and releases the
// client.
func (p *Process) watch() {
	<-p.model.processCtx.Done()
	// cmd.Wait has returned before the context was cancelled, so
	// ProcessState is set and safe to read.
	reason := "exited"
	if st := p.cmd.ProcessState; st != nil {
		reason = st.String()
	}
	killed := p.quiet.Load()
	if killed {
		p.exitErr = fmt.Errorf("%w: plugin %q (pid %d) was stopped by the host (%s)", ErrPluginUnavailable, p.key, p.pid, reason)
	} else {
		last := p.stderr.LastWords()
		if len(last) > 200 {
			last = last[:200] + "…"
		}
		if last != "" {
			p.exitErr = fmt.Errorf("%w: plugin %q (pid %d) exited: %s (last output: %s)", ErrPluginUnavailable, p.key, p.pid, reason, last)
		} else {
			p.exitErr = fmt.Errorf("%w: plugin %q (pid %d) exited: %s", ErrPluginUnavailable, p.key, p.pid, reason)
		}
	}
	_ = os.RemoveAll(p.sockDir)
	close(p.done)
	if killed {
		p.log.Debug("model plugin stopped", "pid", p.pid, "reason", reason)
		return
	}
	p.log.Warn("model plugin exited", "pid", p.pid, "reason", reason)
	p.Kill() // release the connection and go-plugin's goroutines
}

// Model returns the plugin's Model. Its calls fail with ErrPluginUnavailable
// once the process is gone.
func (p *Process) Model() Model { return p.model }

// Pid returns the process id of the plugin.
func (p *Process) Pid() int { return p.pid }

// Done returns a channel that is closed once the process has exited, for
// whatever reason, and has been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr says why the process ended: nil until Done is closed, then an
// error wrapping ErrPluginUnavailable with the exit status (and, for a crash,
// the last line the plugin wrote to stderr).
func (p *Process) ExitErr() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// Kill stops the process and reaps it: a graceful go-plugin shutdown, then
// SIGKILL after killGrace (SIGKILL also ends a SIGSTOPped process). It
// returns once the process has been reaped, so no zombie is left. Kill is
// idempotent and safe to call from several goroutines; all return when the
// process is gone.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		p.quiet.Store(true)
		clientDone := make(chan struct{})
		go func() {
			defer close(clientDone)
			p.client.Kill()
		}()
		t := time.NewTimer(killGrace)
		defer t.Stop()
		select {
		case <-clientDone:
		case <-t.C:
			// os.Process uses a pidfd on Linux: this cannot hit a reused pid.
			// onExit then kills what the plugin started.
			_ = p.cmd.Process.Kill()
			<-clientDone
		}
		<-p.done
	})
}
