package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/testplugins"
	"github.com/healproxy/healproxy/plugins"
)

// TestMain lets the test binary serve the built-in plugins, as the
// healproxy binary does: plugins.BuiltinCommand re-executes this very
// binary as {exe, "plugin", name}. An unknown name exits with status 1,
// which makes a plugin that never starts; serveTestPlugin serves the
// suite's own test plugins. Once the tests have run, no plugin process
// may be left.
func TestMain(m *testing.M) {
	testplugins.ServeIfAsked(serveTestPlugin)
	code := m.Run()
	if left := leftoverPlugins(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "plugin processes left behind after the tests: %s\n", left)
		code = 1
	}
	os.Exit(code)
}

const startWait = 20 * time.Second

var testSettings = breaker.Settings{ErrorThreshold: 5, Cooldown: time.Second, RecoveryCount: 1}

// recorder collects what the hooks report.
type recorder struct {
	mu      sync.Mutex
	changes []string // "key from→to"
	failed  []string // "key why: msg"
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Changed: func(key string, _ *breaker.Entry, from, to breaker.Status) {
			r.mu.Lock()
			r.changes = append(r.changes, key+" "+from.String()+"→"+to.String())
			r.mu.Unlock()
		},
		ReinitFailed: func(key, why, msg string) {
			r.mu.Lock()
			r.failed = append(r.failed, key+" "+why+": "+msg)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) snapshot() (changes, failed []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.changes...), append([]string(nil), r.failed...)
}

// model makes a Model of plugin (a built-in name, or one that does not
// exist) and closes it at the end of the test.
func model(t *testing.T, key, plugin string, h config.Health, rec *recorder) *Model {
	t.Helper()
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if rec != nil {
		opts.Hooks = rec.hooks()
	}
	mc := config.Model{Key: key, Name: key, Plugin: plugin, Timeout: 5 * time.Second, Health: h}
	m := New(mc, testSettings, opts)
	t.Cleanup(m.Close)
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(startWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running waits until m has a healthy process and returns it.
func running(t *testing.T, m *Model) *plugins.Process {
	t.Helper()
	waitFor(t, m.Key+" to run", func() bool { return m.Process() != nil && m.Health.Status() == breaker.Healthy })
	return m.Process()
}

func wantGone(t *testing.T, p *plugins.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(startWait):
		t.Fatalf("process %d still runs", p.Pid())
	}
}

// TestStartPredictClose: the first start runs the plugin without counting
// a restart or starting the reinit cooldown; Close kills it for good.
func TestStartPredictClose(t *testing.T) {
	m := model(t, "sent", "sentiment", config.Health{ReinitCooldown: time.Hour}, nil)
	m.Start()
	p := running(t, m)
	st := m.State()
	if !st.Loaded || st.Pid != p.Pid() || st.Restarts != 0 || !st.LastReinit.IsZero() || !st.NextReinit.IsZero() {
		t.Errorf("after the first start: %+v; want loaded with pid %d, no restart, no reinit", st, p.Pid())
	}
	out, err := p.Model().Predict(context.Background(), []string{"btc to the moon"})
	if err != nil || len(out) != 1 {
		t.Fatalf("Predict = %v, %v; want one answer", out, err)
	}
	if res := m.Reinit(context.Background(), "self-heal"); res.Status != StatusSuccess {
		t.Errorf("a reinit after the first start: %+v; want success (the first start starts no cooldown)", res)
	}
	p = m.Process()
	m.Close()
	wantGone(t, p)
	if m.Process() != nil || m.State().Loaded {
		t.Error("a closed model still has a process")
	}
	if res := m.Reinit(context.Background(), "self-heal"); res.Status != StatusFailed {
		t.Errorf("Reinit after Close: %+v; want failed", res)
	}
}

// TestReinitSingleFlightAndCooldown: concurrent reinits share one attempt
// (one new process, one restart); the next is refused until
// reinit_cooldown has passed.
func TestReinitSingleFlightAndCooldown(t *testing.T) {
	m := model(t, "sent", "sentiment", config.Health{ReinitCooldown: time.Hour}, nil)
	m.Start()
	old := running(t, m)

	const callers = 8
	results := make([]Result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { results[i] = m.Reinit(context.Background(), "self-heal") })
	}
	wg.Wait()
	wantGone(t, old)
	var pid int
	cooldowns := 0
	for _, r := range results {
		switch r.Status {
		case StatusSuccess:
			if pid != 0 && r.Pid != pid {
				t.Errorf("two reinits succeeded with pids %d and %d; want one process", pid, r.Pid)
			}
			pid = r.Pid
		case StatusCooldown: // came after the attempt ended
			cooldowns++
		default:
			t.Errorf("reinit: %+v", r)
		}
	}
	if pid == 0 || pid == old.Pid() || m.Process().Pid() != pid {
		t.Errorf("reinit pid %d, old %d, running %d; want a new, running one", pid, old.Pid(), m.Process().Pid())
	}
	st := m.State()
	if st.Restarts != 1 || st.LastReinit.IsZero() {
		t.Errorf("after %d concurrent reinits: %+v; want restarts 1, a last reinit", callers, st)
	}
	if m.Health.Status() != breaker.Healthy {
		t.Errorf("status %s after the reinit; want healthy", m.Health.Status())
	}

	r := m.Reinit(context.Background(), "self-heal")
	if r.Status != StatusCooldown || r.CooldownRemaining <= 59*time.Minute || r.CooldownRemaining > time.Hour || r.Key != "sent" {
		t.Errorf("a reinit within reinit_cooldown: %+v; want cooldown with about an hour left", r)
	}
	if m.State().Restarts != 1 {
		t.Error("a refused reinit counted a restart")
	}
}

// TestExitThenAutoReinit: a process that dies makes its model unavailable
// at once; with auto_reinit a fresh one takes its place.
func TestExitThenAutoReinit(t *testing.T) {
	rec := &recorder{}
	m := model(t, "sent", "sentiment", config.Health{AutoReinit: true, ReinitCooldown: time.Hour}, rec)
	m.Start()
	old := running(t, m)
	if err := syscall.Kill(old.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a respawn", func() bool {
		p := m.Process()
		return p != nil && p.Pid() != old.Pid() && m.Health.Status() == breaker.Healthy
	})
	if st := m.State(); st.Restarts != 1 || st.LastReinit.IsZero() {
		t.Errorf("after the auto-reinit: %+v; want restarts 1", st)
	}
	changes, failed := rec.snapshot()
	sawDown := false
	for _, c := range changes {
		sawDown = sawDown || c == "sent healthy→unavailable"
	}
	if !sawDown || len(failed) != 0 {
		t.Errorf("hooks: changes %q, failed reinits %q; want healthy→unavailable and no failure", changes, failed)
	}
	// The automatic reinit started the reinit cooldown, as a manual one does.
	if r := m.Reinit(context.Background(), "self-heal"); r.Status != StatusCooldown {
		t.Errorf("a reinit right after the auto-reinit: %+v; want cooldown", r)
	}
}

// TestFailedStartAndReinit: a plugin that cannot start leaves its model
// unavailable and not loaded; a failed reinit calls ReinitFailed.
func TestFailedStartAndReinit(t *testing.T) {
	rec := &recorder{}
	m := model(t, "bad", "no-such-plugin", config.Health{}, rec)
	m.Start()
	waitFor(t, "the failed start", func() bool { return m.Health.Status() == breaker.Unavailable })
	if m.Process() != nil {
		t.Fatal("a failed start installed a process")
	}
	if _, failed := rec.snapshot(); len(failed) != 0 {
		t.Errorf("the first start reported a failed reinit: %q", failed)
	}
	r := m.Reinit(context.Background(), "self-heal")
	if r.Status != StatusFailed || r.Key != "bad" || r.Message == "" || r.Pid != 0 {
		t.Errorf("reinit of a plugin that cannot start: %+v; want failed with a message", r)
	}
	if _, failed := rec.snapshot(); len(failed) != 1 || failed[0] != "bad self-heal: "+r.Message {
		t.Errorf("ReinitFailed calls %q; want one for the self-heal", failed)
	}
	if st := m.State(); st.Loaded || st.Restarts != 1 {
		t.Errorf("after a failed reinit: %+v; want not loaded, restarts 1", st)
	}
}

// TestHealAll reinitialises only the models that are down or not loaded.
func TestHealAll(t *testing.T) {
	good := model(t, "good", "sentiment", config.Health{}, nil)
	bad1 := model(t, "bad1", "no-such-plugin", config.Health{}, nil)
	bad2 := model(t, "bad2", "no-such-plugin", config.Health{}, nil)
	for _, m := range []*Model{good, bad1, bad2} {
		m.Start()
	}
	pid := running(t, good).Pid()
	waitFor(t, "the failed starts", func() bool {
		return bad1.Health.Status() == breaker.Unavailable && bad2.Health.Status() == breaker.Unavailable
	})
	res := HealAll(context.Background(), []*Model{bad1, good, bad2}, 0)
	if len(res) != 2 || res[0].Key != "bad1" || res[1].Key != "bad2" || res[0].Status != StatusFailed || res[1].Status != StatusFailed {
		t.Errorf("HealAll = %+v; want bad1 and bad2 failed, in order", res)
	}
	if good.Process().Pid() != pid || good.State().Restarts != 0 {
		t.Error("HealAll restarted a healthy model")
	}
}

// TestCloseWhenIdle waits for the calls in flight before killing the
// process.
func TestCloseWhenIdle(t *testing.T) {
	m := model(t, "sent", "sentiment", config.Health{}, nil)
	m.Start()
	p := running(t, m)
	m.Acquire()
	if m.InFlight() != 1 {
		t.Fatalf("InFlight = %d; want 1", m.InFlight())
	}
	closed := make(chan struct{})
	go func() {
		m.CloseWhenIdle()
		close(closed)
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("CloseWhenIdle returned with a call in flight")
	case <-p.Done():
		t.Fatal("the process was killed with a call in flight")
	default:
	}
	m.Release()
	select {
	case <-closed:
	case <-time.After(startWait):
		t.Fatal("CloseWhenIdle did not return once idle")
	}
	wantGone(t, p)
}

// TestRestoreKeepsHealth: a model restored from the state file keeps its
// counters through the first start; a reinit resets them.
func TestRestoreKeepsHealth(t *testing.T) {
	last := time.Now().Add(-time.Hour).Truncate(time.Second)
	fail := &breaker.Failure{Kind: breaker.KindError, Message: "before the restart"}
	restored := model(t, "restored", "sentiment", config.Health{ReinitCooldown: time.Minute}, nil)
	restored.Health.Fail(fail)
	restored.Restore(4, last)
	fresh := model(t, "fresh", "sentiment", config.Health{}, nil)
	fresh.Health.Fail(fail)
	restored.Start()
	fresh.Start()
	running(t, restored)
	running(t, fresh)
	if n := restored.Health.Snapshot().ErrorCount; n != 1 {
		t.Errorf("restored model: error_count %d after the first start; want 1 (kept)", n)
	}
	if n := fresh.Health.Snapshot().ErrorCount; n != 0 {
		t.Errorf("fresh model: error_count %d after the first start; want 0 (reset)", n)
	}
	if st := restored.State(); st.Restarts != 4 || !st.LastReinit.Equal(last) {
		t.Errorf("restored model: %+v; want restarts 4, last reinit %s", st, last)
	}
	if r := restored.Reinit(context.Background(), "self-heal"); r.Status != StatusSuccess {
		t.Fatalf("reinit: %+v", r)
	}
	if n := restored.Health.Snapshot().ErrorCount; n != 0 || restored.State().Restarts != 5 {
		t.Errorf("after a reinit: error_count %d, restarts %d; want 0 and 5", n, restored.State().Restarts)
	}
}

// TestRetryAfter: with auto_reinit a dead plugin's callers are told when
// the next automatic reinit comes; without it, the breaker's cooldown.
func TestRetryAfter(t *testing.T) {
	m := model(t, "bad", "no-such-plugin", config.Health{Cooldown: 7 * time.Second}, nil)
	m.Start()
	waitFor(t, "the failed start", func() bool { return m.Health.Status() == breaker.Unavailable })
	if d := m.RetryAfter(); d <= 0 || d > 7*time.Second {
		t.Errorf("RetryAfter without auto_reinit = %s; want at most the cooldown", d)
	}

	auto := model(t, "auto", "no-such-plugin", config.Health{AutoReinit: true, ReinitCooldown: time.Hour}, nil)
	auto.Start()
	waitFor(t, "the first automatic reinit", func() bool { return auto.State().Restarts == 1 })
	waitFor(t, "the next automatic reinit to be armed", func() bool { return !auto.State().NextReinit.IsZero() })
	if d := auto.RetryAfter(); d < 59*time.Minute || d > time.Hour {
		t.Errorf("RetryAfter with auto_reinit = %s; want about reinit_cooldown", d)
	}
}
