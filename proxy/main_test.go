package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/plugins"
)

// TestMain lets the test binary serve built-in plugins, as the healproxy
// binary does: model tests start real plugin subprocesses through
// plugins.BuiltinCommand, which re-executes this very binary. It also serves
// the test-only plugins of serveTestPlugin, run as
// {os.Args[0], "plugin", "test-…"}.
func TestMain(m *testing.M) {
	testplugins.ServeIfAsked(serveTestPlugin)
	os.Exit(m.Run())
}

// Environment of the test plugins (set through Options.PluginEnv).
const (
	// TestPluginDirEnv is a folder test-slowstart reports into.
	TestPluginDirEnv = "HEALPROXY_TEST_PLUGIN_DIR"
	// TestPluginDelayEnv is test-slowstart's start delay (a Go duration).
	TestPluginDelayEnv = "HEALPROXY_TEST_PLUGIN_DELAY"
)

// serveTestPlugin serves test plugin name and reports whether name is one:
//
//	test-hang        Predict blocks forever and ignores its context; with
//	                 TestPluginDirEnv set, it first creates DIR/hung-PID
//	test-hangctx     Predict blocks until its context is done
//	test-crash       Predict exits the process (status 3)
//	test-exit        exits (status 1) before serving: crashes on every start
//	test-crashsoon   serves sentiment, then exits (status 4) 200ms later
//	test-slowstart   see slowStart; then serves sentiment
func serveTestPlugin(name string) bool {
	sentiment := plugins.Builtins["sentiment"]()
	switch name {
	case "test-hang":
		plugins.Serve(testModel{Model: sentiment, predict: func(context.Context, []string) ([][]plugins.LabelScore, error) {
			if dir := os.Getenv(TestPluginDirEnv); dir != "" {
				// Tell the test that a call is in here.
				_ = os.WriteFile(filepath.Join(dir, "hung-"+strconv.Itoa(os.Getpid())), nil, 0o644)
			}
			select {} // ignores ctx: only the host's deadline can end the call
		}})
	case "test-hangctx":
		plugins.Serve(testModel{Model: sentiment, predict: func(ctx context.Context, _ []string) ([][]plugins.LabelScore, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	case "test-crash":
		plugins.Serve(testModel{Model: sentiment, predict: func(context.Context, []string) ([][]plugins.LabelScore, error) {
			os.Exit(3) // no output: Serve has swapped os.Stderr, a race to read
			return nil, nil
		}})
	case "test-exit":
		fmt.Fprintln(os.Stderr, "test-exit: refusing to start")
		os.Exit(1)
	case "test-crashsoon":
		time.AfterFunc(200*time.Millisecond, func() { os.Exit(4) }) // no output, as in test-crash
		plugins.Serve(sentiment)
	case "test-slowstart":
		if err := slowStart(); err != nil {
			fmt.Fprintln(os.Stderr, "test-slowstart:", err)
			os.Exit(1)
		}
		plugins.Serve(sentiment)
	default:
		return false
	}
	return true
}

// slowStart is the start of test-slowstart, which lets a test count how
// many plugins start at once without timing assertions. With DIR the value
// of TestPluginDirEnv:
//   - if DIR/broken exists, it fails (the plugin exits before serving);
//   - else it creates DIR/active/PID, counts the entries of DIR/active (the
//     plugins starting now, itself included) into DIR/peak-PID, waits
//     TestPluginDelayEnv, and removes DIR/active/PID.
//
// The last plugin to enter a set of overlapping starts sees all of them,
// so the largest peak-* value is the largest number of concurrent starts.
func slowStart() error {
	dir := os.Getenv(TestPluginDirEnv)
	if dir == "" {
		return errors.New(TestPluginDirEnv + " is not set")
	}
	if _, err := os.Stat(filepath.Join(dir, "broken")); err == nil {
		return errors.New("broken on purpose")
	}
	delay, err := time.ParseDuration(os.Getenv(TestPluginDelayEnv))
	if err != nil {
		return err
	}
	active := filepath.Join(dir, "active")
	if err := os.MkdirAll(active, 0o755); err != nil {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	mine := filepath.Join(active, pid)
	if err := os.WriteFile(mine, nil, 0o644); err != nil {
		return err
	}
	entries, err := os.ReadDir(active)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "peak-"+pid), []byte(strconv.Itoa(len(entries))), 0o644); err != nil {
		return err
	}
	time.Sleep(delay)
	return os.Remove(mine)
}

// testModel is a plugins.Model whose Predict is replaced.
type testModel struct {
	plugins.Model
	predict func(context.Context, []string) ([][]plugins.LabelScore, error)
}

func (m testModel) Predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	return m.predict(ctx, inputs)
}
