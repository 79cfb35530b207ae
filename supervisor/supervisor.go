// Package supervisor runs the plugin process of each model and keeps its
// health entry in step with it: it spawns the process, notices its exit,
// respawns it (reinit) on request or by itself with auto_reinit, at most
// once per reinit_cooldown, and kills it on shutdown or when a reload
// removes the model (docs/behaviour.md, "Models"). It knows nothing of
// HTTP: the proxy calls the process it hands out, and learns of status
// changes and failed reinits through Hooks.
package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/plugins"
)

// Hooks are how a Model reports to its owner. Either may be nil.
type Hooks struct {
	// Changed is called on every status change of a model's health entry,
	// from inside the entry's call (breaker.Options.OnChange).
	Changed func(key string, e *breaker.Entry, from, to breaker.Status)
	// ReinitFailed is called when a reinit (why: "self-heal",
	// "auto-reinit") could not start a working process; msg says why.
	ReinitFailed func(key, why, msg string)
}

// Options are what every Model of one owner shares.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	Env    []string     // extra KEY=VALUE pairs for the plugin processes
	Hooks  Hooks
}

// Result statuses of a reinit.
const (
	StatusSuccess  = "success"
	StatusFailed   = "failed"
	StatusCooldown = "cooldown"
)

// Result is the outcome of a start or a reinit.
type Result struct {
	Key     string
	Status  string // StatusSuccess, StatusFailed or StatusCooldown
	Message string
	// CooldownRemaining is how long until a reinit is allowed again, with
	// StatusCooldown.
	CooldownRemaining time.Duration
	Pid               int // the new process's, with StatusSuccess
}

// State is what a Model shows of its supervision.
type State struct {
	Loaded     bool // a process is running
	Pid        int  // its pid, when Loaded
	Restarts   int
	LastReinit time.Time // start of the latest reinit attempt; zero if none
	NextReinit time.Time // when the pending automatic reinit fires; zero if none
}

// Model is one model backend: its plugin process, supervised, and its
// health entry. The Model, not a request, owns the process: it notices an
// exit, holds the entry unavailable, and respawns (reinit) on request or,
// with auto_reinit, by itself at most once per reinit_cooldown.
type Model struct {
	Key    string
	Health *breaker.Entry

	log   *slog.Logger
	hooks Hooks
	spec  plugins.Spec
	// cfg is the model's configuration; a reload that keeps the process
	// swaps it (name, timeout, fallback, health settings).
	cfg      atomic.Pointer[config.Model]
	inflight atomic.Int64 // predict calls in progress, for a reload that removes the model

	proc atomic.Pointer[plugins.Process] // nil while not loaded
	// lifeMu makes installing or removing the process and the matching
	// health change one step, so that a watcher seeing an old process die
	// cannot mark a freshly spawned one unavailable. Never held with mu
	// taken inside a health call: OnChange takes mu.
	lifeMu sync.Mutex

	mu         sync.Mutex // guards the fields below
	restarts   int
	lastReinit time.Time     // start of the latest reinit attempt
	reinitting chan struct{} // closed when the reinit in progress ends
	reinitRes  Result        // result of the latest reinit
	autoTimer  *time.Timer   // pending automatic reinit
	nextAuto   time.Time     // when autoTimer fires
	closed     bool
	restored   bool // health came from the state store: the first start keeps it
}

// New makes the Model of mc, with a health entry of settings; nothing
// runs until Start.
func New(mc config.Model, settings breaker.Settings, opts Options) *Model {
	m := &Model{Key: mc.Key, log: opts.Logger, hooks: opts.Hooks}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.cfg.Store(&mc)
	cmd := mc.Command
	if mc.Plugin != "" {
		cmd = plugins.BuiltinCommand(mc.Plugin)
	}
	m.spec = plugins.Spec{Key: mc.Key, Command: cmd, Env: opts.Env}
	m.Health = breaker.New("model/"+mc.Key, settings, breaker.Options{
		OnChange: func(e *breaker.Entry, from, to breaker.Status) {
			if m.hooks.Changed != nil {
				m.hooks.Changed(m.Key, e, from, to)
			}
			if to == breaker.Unavailable {
				m.scheduleAutoReinit()
			}
		},
	})
	m.reinitting = make(chan struct{}) // the first start, see Start
	return m
}

// Config is the model's current configuration.
func (m *Model) Config() *config.Model { return m.cfg.Load() }

// SetConfig swaps the configuration of a model whose process a reload
// keeps; the caller updates the health entry's settings.
func (m *Model) SetConfig(mc config.Model) { m.cfg.Store(&mc) }

// Process is the running plugin process, or nil while not loaded. A caller
// of its model counts itself in with Acquire first.
func (m *Model) Process() *plugins.Process { return m.proc.Load() }

// Acquire counts a call in flight, which CloseWhenIdle waits for; Release
// ends it.
func (m *Model) Acquire() { m.inflight.Add(1) }

// Release ends a call counted by Acquire.
func (m *Model) Release() { m.inflight.Add(-1) }

// InFlight is the number of calls in flight.
func (m *Model) InFlight() int64 { return m.inflight.Load() }

// Restore takes the restarts and last reinit kept in the state file,
// before Start; the first start then keeps the health entry as restored
// instead of resetting it.
func (m *Model) Restore(restarts int, lastReinit time.Time) {
	m.mu.Lock()
	m.restarts, m.lastReinit, m.restored = restarts, lastReinit, true
	m.mu.Unlock()
}

// State is the model's supervision state now.
func (m *Model) State() State {
	var st State
	if p := m.proc.Load(); p != nil {
		st.Loaded, st.Pid = true, p.Pid()
	}
	m.mu.Lock()
	st.Restarts = m.restarts
	st.LastReinit = m.lastReinit
	if !m.nextAuto.IsZero() && m.autoTimer != nil {
		st.NextReinit = m.nextAuto
	}
	m.mu.Unlock()
	return st
}

// Start spawns the plugin for the first time, in the background. A first
// start is not a reinit: it does not start the reinit cooldown.
// Like a reinit, it holds m.reinitting, so nothing else spawns meanwhile.
func (m *Model) Start() {
	go func() {
		res := m.spawn("start")
		m.mu.Lock()
		done := m.reinitting
		m.reinitRes, m.reinitting = res, nil
		m.mu.Unlock()
		close(done)
		if res.Status != StatusSuccess {
			m.scheduleAutoReinit()
		}
	}()
}

// spawn starts a fresh process and installs it. The caller has made sure
// that no other spawn of this model runs and that the old process is gone.
func (m *Model) spawn(why string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := plugins.Start(ctx, m.spec, m.log)
	if err != nil {
		msg := err.Error()
		m.Health.HoldFailed("plugin not running: "+msg, &breaker.Failure{Kind: breaker.KindCrash, Message: msg})
		m.log.Warn("model plugin failed to start", "model", m.Key, "why", why, "error", msg)
		return Result{Key: m.Key, Status: StatusFailed, Message: msg}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		p.Kill()
		return Result{Key: m.Key, Status: StatusFailed, Message: "healproxy is shutting down"}
	}
	keep := why == "start" && m.restored
	m.mu.Unlock()
	m.lifeMu.Lock()
	m.proc.Store(p)
	if keep {
		m.Health.Release() // counters and any cooldown as they were before the restart
	} else {
		m.Health.Reset() // healthy, counters cleared (docs/behaviour.md)
	}
	m.lifeMu.Unlock()
	go m.watch(p)
	pid := p.Pid()
	m.log.Info("model plugin running", "model", m.Key, "pid", pid, "why", why)
	return Result{Key: m.Key, Status: StatusSuccess, Pid: pid,
		Message: fmt.Sprintf("plugin started (pid %d) and passed its health check", pid)}
}

// startTimeout bounds one plugin start: handshake plus health check.
const startTimeout = 10 * time.Second

// watch notices the process's end. An exit that the host did not ask for
// makes the model unavailable at once.
func (m *Model) watch(p *plugins.Process) {
	<-p.Done()
	m.lifeMu.Lock()
	if !m.proc.CompareAndSwap(p, nil) {
		m.lifeMu.Unlock()
		return // replaced or stopped by us
	}
	m.Health.HoldFailed("plugin process exited; waiting for a reinit",
		&breaker.Failure{Kind: breaker.KindCrash, Message: p.ExitErr().Error()})
	m.lifeMu.Unlock()
	m.scheduleAutoReinit()
}

// scheduleAutoReinit arms one automatic reinit, no earlier than
// reinit_cooldown after the previous attempt, when auto_reinit is on.
func (m *Model) scheduleAutoReinit() {
	h := m.cfg.Load().Health
	if !h.AutoReinit {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.autoTimer != nil || m.reinitting != nil {
		return
	}
	wait := time.Duration(0)
	if !m.lastReinit.IsZero() {
		wait = max(0, time.Until(m.lastReinit.Add(h.ReinitCooldown)))
	}
	m.nextAuto = time.Now().Add(wait)
	m.autoTimer = time.AfterFunc(wait, func() {
		m.mu.Lock()
		m.autoTimer = nil
		m.mu.Unlock()
		if m.Health.Status() != breaker.Unavailable && m.proc.Load() != nil {
			return // recovered meanwhile (a manual self-heal)
		}
		m.Reinit(context.Background(), "auto-reinit")
	})
}

// Reinit kills the model's process and starts a fresh one
// (docs/behaviour.md, "Models"). At most one runs per model: a concurrent caller waits for the
// one in progress and gets its result, so two processes never exist for
// one model. Every attempt starts the reinit cooldown.
func (m *Model) Reinit(ctx context.Context, why string) Result {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Result{Key: m.Key, Status: StatusFailed, Message: "healproxy is shutting down"}
	}
	if wait := m.reinitting; wait != nil {
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return Result{Key: m.Key, Status: StatusFailed, Message: "gave up waiting for the reinit in progress"}
		}
		m.mu.Lock()
		res := m.reinitRes
		m.mu.Unlock()
		return res
	}
	if h := m.cfg.Load().Health; !m.lastReinit.IsZero() {
		if left := time.Until(m.lastReinit.Add(h.ReinitCooldown)); left > 0 {
			m.mu.Unlock()
			return Result{Key: m.Key, Status: StatusCooldown, CooldownRemaining: left,
				Message: fmt.Sprintf("reinitialised %s ago; reinit_cooldown is %s", time.Since(m.lastReinit).Round(time.Second), h.ReinitCooldown)}
		}
	}
	done := make(chan struct{})
	m.reinitting = done
	m.lastReinit = time.Now()
	m.restarts++
	if m.autoTimer != nil {
		m.autoTimer.Stop()
		m.autoTimer = nil
	}
	m.mu.Unlock()

	m.lifeMu.Lock()
	old := m.proc.Swap(nil)
	if old != nil {
		m.Health.Hold("reinitialising")
	}
	m.lifeMu.Unlock()
	if old != nil {
		old.Kill() // reaped before the new one starts
	}
	res := m.spawn(why)
	m.log.Info("model reinit", "model", m.Key, "why", why, "result", res.Status, "message", res.Message)
	if res.Status == StatusFailed && m.hooks.ReinitFailed != nil {
		m.hooks.ReinitFailed(m.Key, why, res.Message)
	}

	m.mu.Lock()
	m.reinitRes = res
	m.reinitting = nil
	m.mu.Unlock()
	close(done)
	if res.Status != StatusSuccess {
		m.scheduleAutoReinit()
	}
	return res
}

// HealAll reinitialises every model of models that is unavailable or not
// loaded, at most limit (max_concurrent_reinit; at least 1) at once, and
// returns their results in the order of models.
func HealAll(ctx context.Context, models []*Model, limit int) []Result {
	sem := make(chan struct{}, max(1, limit))
	var todo []*Model
	for _, m := range models {
		if m.proc.Load() == nil || m.Health.Status() == breaker.Unavailable {
			todo = append(todo, m)
		}
	}
	results := make([]Result, len(todo))
	var wg sync.WaitGroup
	for i, m := range todo {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = m.Reinit(ctx, "self-heal")
		})
	}
	wg.Wait()
	return results
}

// Close stops the model for good: no more reinits, process killed.
func (m *Model) Close() {
	m.mu.Lock()
	m.closed = true
	if m.autoTimer != nil {
		m.autoTimer.Stop()
		m.autoTimer = nil
	}
	wait := m.reinitting
	m.mu.Unlock()
	if wait != nil {
		<-wait // a start in progress installs nothing once closed
	}
	if p := m.proc.Swap(nil); p != nil {
		p.Kill()
	}
}

// CloseWhenIdle stops a model a reload removed or replaced, once its calls
// in flight are done (at most its timeout and a second later).
func (m *Model) CloseWhenIdle() {
	deadline := time.Now().Add(m.cfg.Load().Timeout + time.Second)
	for m.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m.Close()
}

// RetryAfter is when a refused call may succeed: the next automatic
// reinit for a dead plugin (its cooldown when auto_reinit is off), else
// the breaker's cooldown.
func (m *Model) RetryAfter() time.Duration {
	if until, ok := m.Health.CooldownUntil(); ok && m.proc.Load() != nil {
		return time.Until(until)
	}
	h := m.cfg.Load().Health
	if h.AutoReinit {
		m.mu.Lock()
		next := m.nextAuto
		m.mu.Unlock()
		if d := time.Until(next); d > 0 {
			return d
		}
		return time.Second
	}
	if until, ok := m.Health.CooldownUntil(); ok {
		return time.Until(until)
	}
	return h.Cooldown
}
