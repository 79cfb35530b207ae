// Package supervisor runs the plugin process of each model and keeps its
// health entry in step with it: it spawns the process, notices its exit,
// replaces it (reinit) on request, by itself with auto_reinit, or when it
// passes one of its resource limits (a recycle), at most once per
// reinit_cooldown, and kills it on shutdown or when a reload removes the
// model (docs/behaviour.md, "Models").
//
// A reinit of a process that still answers is warm: the new process is
// started, passes its health check and its warm-up predict, then takes new
// calls while the calls in flight on the old one finish (at most the
// model's timeout), and only then is the old one stopped, so that no call
// is lost. A process that has exited or does not answer its health check
// is replaced cold: stopped first, then started again, and calls fail in
// between. Calls go through Predict or Pin, which count them per process;
// that count is what lets a warm switch wait for them.
//
// It knows nothing of HTTP: the proxy calls the process it hands out, and
// learns of status changes and reinits through Hooks.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/plugins"
)

// Hooks are how a Model reports to its owner. Any may be nil.
type Hooks struct {
	// Changed is called on every status change of a model's health entry,
	// from inside the entry's call (breaker.Options.OnChange).
	Changed func(key string, e *breaker.Entry, from, to breaker.Status)
	// ReinitFailed is called when a reinit (why: WhySelfHeal,
	// WhyAutoReinit, WhyRecycle) could not start a working process; msg
	// says why.
	ReinitFailed func(key, why, msg string)
	// Reinitialised is called after every reinit attempt, successful or
	// not (not for one refused by reinit_cooldown): r says why it ran,
	// whether it was warm or cold and how long the switch and the drain
	// took. It is called before the Reinit that ran it returns.
	Reinitialised func(key string, r Result)
}

// Options are what every Model of one owner shares.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	Env    []string     // extra KEY=VALUE pairs for the plugin processes
	Hooks  Hooks
	// Limiter bounds the plugin processes that reinits of all the models
	// sharing it start or drain at once (max_concurrent_reinit): a warm
	// reinit takes two slots (the new process and the old one), a cold one
	// one. nil: a Model's own reinits are not limited; HealAll still
	// applies its limit.
	Limiter *Limiter
	// ColdOnly makes every reinit cold, as before warm replacement: the
	// old process is stopped before the new one starts. For comparisons
	// (bench/cmd/healbench); false in production.
	ColdOnly bool
	// LimitInterval is how often the resource limits (max_memory,
	// max_requests, latency_recycle) are checked. Zero: DefaultLimitInterval.
	LimitInterval time.Duration
	// ReadRSS returns the resident memory in bytes of a process and all
	// its descendants. nil: TreeRSS, which reads /proc.
	ReadRSS func(pid int) (int64, error)
	// Now is the clock of the latency figures behind latency_recycle.
	// nil: time.Now.
	Now func() time.Time
}

// DefaultLimitInterval is how often resource limits are checked when
// Options.LimitInterval is zero.
const DefaultLimitInterval = 5 * time.Second

// Result statuses of a reinit.
const (
	StatusSuccess  = "success"
	StatusFailed   = "failed"
	StatusCooldown = "cooldown"
)

// Reinit modes (Result.Mode).
const (
	// ModeWarm: the new process was started while the old one served, and
	// took over without a gap.
	ModeWarm = "warm"
	// ModeCold: the old process was gone, hung or stopped first; calls
	// failed until the new one ran.
	ModeCold = "cold"
)

// What asks for a reinit (the why of Reinit, Result.Why).
const (
	WhySelfHeal   = "self-heal"
	WhyAutoReinit = "auto-reinit"
	WhyRecycle    = "recycle" // a resource limit was passed; Result.Reason names it
)

// ErrNotLoaded is returned by Pin and Predict while the model has no
// running process (it exited, failed to start, or is being replaced
// cold). The call did not reach a plugin.
var ErrNotLoaded = errors.New("supervisor: model plugin not loaded")

// Result is the outcome of a start or a reinit.
type Result struct {
	Key     string
	Status  string // StatusSuccess, StatusFailed or StatusCooldown
	Message string
	// CooldownRemaining is how long until a reinit is allowed again, with
	// StatusCooldown.
	CooldownRemaining time.Duration
	Pid               int // the new process's, with StatusSuccess

	// Why is what asked for the reinit: WhySelfHeal, WhyAutoReinit or
	// WhyRecycle (or what the caller of Reinit passed).
	Why string
	// Reason says which limit a recycle passed and by how much, e.g.
	// "max_requests: 100000 calls served (limit 100000)"; "" otherwise.
	Reason string
	// Mode is ModeWarm or ModeCold for an attempted reinit; "" with
	// StatusCooldown.
	Mode string
	// OldPid is the replaced process's pid; 0 when none was running.
	OldPid int
	// Switch is how long the attempt took until new calls went to the new
	// process. Warm, the old process served meanwhile; cold, calls failed
	// meanwhile.
	Switch time.Duration
	// Drain is how long a warm reinit waited for the calls in flight on
	// the old process before stopping it (at most the model's timeout).
	Drain time.Duration
}

// State is what a Model shows of its supervision.
type State struct {
	Loaded     bool // a process is running
	Pid        int  // its pid, when Loaded
	Restarts   int
	LastReinit time.Time // start of the latest reinit attempt; zero if none
	NextReinit time.Time // when the pending automatic reinit fires; zero if none

	// Calls is the number of calls the running process has served
	// (max_requests counts them).
	Calls int64
	// Last is the result of the latest reinit attempt (its Mode, Switch,
	// Why and Reason); zero if none.
	Last Result
}

// Model is one model backend: its plugin process, supervised, and its
// health entry. The Model, not a request, owns the process: it notices an
// exit, holds the entry unavailable, and replaces the process (reinit) on
// request, by itself with auto_reinit, or past a resource limit, at most
// once per reinit_cooldown. At most two processes of a model exist at
// once: the serving one and, during a warm reinit, its successor (or,
// while it drains, its predecessor).
type Model struct {
	Key    string
	Health *breaker.Entry

	log      *slog.Logger
	hooks    Hooks
	spec     plugins.Spec
	limiter  *Limiter
	coldOnly bool
	every    time.Duration
	hung     time.Duration // bound of the health check before a warm reinit: hungBound
	readRSS  func(pid int) (int64, error)
	now      func() time.Time
	// cfg is the model's configuration; a reload that keeps the process
	// swaps it (name, timeout, fallback, health settings, limits).
	cfg      atomic.Pointer[config.Model]
	inflight atomic.Int64 // calls counted by Acquire, for a reload that removes the model

	cur atomic.Pointer[instance] // the process new calls go to; nil while not loaded
	// lifeMu makes installing or removing the process and the matching
	// health change one step, so that a watcher seeing an old process die
	// cannot mark a freshly spawned one unavailable. Never held with mu
	// taken inside a health call: OnChange takes mu.
	lifeMu sync.Mutex

	stop     chan struct{} // closed by Close: drains and the limit loop end
	stopOnce sync.Once

	mu         sync.Mutex // guards the fields below
	restarts   int
	lastReinit time.Time     // start of the latest reinit attempt
	reinitting chan struct{} // closed when the reinit in progress ends
	reinitRes  Result        // result of the latest reinit
	lastRes    Result        // result of the latest reinit attempt (not a cooldown)
	autoTimer  *time.Timer   // pending automatic reinit
	nextAuto   time.Time     // when autoTimer fires
	closed     bool
	started    bool
	restored   bool // health came from the state store: the first start keeps it
}

// New makes the Model of mc, with a health entry of settings; nothing
// runs until Start.
func New(mc config.Model, settings breaker.Settings, opts Options) *Model {
	m := &Model{Key: mc.Key, log: opts.Logger, hooks: opts.Hooks, limiter: opts.Limiter,
		coldOnly: opts.ColdOnly, every: opts.LimitInterval, hung: hungBound, readRSS: opts.ReadRSS, now: opts.Now,
		stop: make(chan struct{})}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.every <= 0 {
		m.every = DefaultLimitInterval
	}
	if m.readRSS == nil {
		m.readRSS = TreeRSS
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.cfg.Store(&mc)
	cmd := mc.Command
	if mc.Plugin != "" {
		cmd = plugins.BuiltinCommand(mc.Plugin)
	}
	m.spec = plugins.Spec{Key: mc.Key, Command: cmd, Env: opts.Env, ModelEnv: mc.Env, InheritEnv: mc.InheritEnv}
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
// keeps; the caller updates the health entry's settings. New limits and
// warm-up samples apply from the next check and the next start.
func (m *Model) SetConfig(mc config.Model) { m.cfg.Store(&mc) }

// Process is the running plugin process, or nil while not loaded. It is
// for showing the model (pid) and for tests: a call must not use it, as a
// warm reinit may stop it under the call; calls go through Predict or Pin.
func (m *Model) Process() *plugins.Process {
	if in := m.cur.Load(); in != nil {
		return in.p
	}
	return nil
}

// Acquire counts a request to this model in flight, which CloseWhenIdle
// waits for; Release ends it. It covers the whole request (decoding,
// fallback), not one process: Pin does that.
func (m *Model) Acquire() { m.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (m *Model) Release() { m.inflight.Add(-1) }

// InFlight is the number of requests counted by Acquire.
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
	if in := m.cur.Load(); in != nil {
		st.Loaded, st.Pid, st.Calls = true, in.p.Pid(), in.served.Load()
	}
	m.mu.Lock()
	st.Restarts = m.restarts
	st.LastReinit = m.lastReinit
	st.Last = m.lastRes
	if !m.nextAuto.IsZero() && m.autoTimer != nil {
		st.NextReinit = m.nextAuto
	}
	m.mu.Unlock()
	return st
}

// Start spawns the plugin for the first time, in the background, and
// starts checking the model's resource limits. A first start is not a
// reinit: it does not start the reinit cooldown. Like a reinit, it holds
// m.reinitting, so nothing else spawns meanwhile. Start is called once.
func (m *Model) Start() {
	m.mu.Lock()
	first := !m.started
	m.started = true
	m.mu.Unlock()
	if !first {
		return
	}
	go m.limitLoop()
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

// spawn starts a fresh process and installs it, cold. The caller has made
// sure that no other spawn of this model runs and that the old process is
// gone.
func (m *Model) spawn(why string) Result {
	p, err := m.startProcess()
	if err != nil {
		msg := err.Error()
		m.Health.HoldFailed("plugin not running: "+msg, &breaker.Failure{Kind: breaker.KindCrash, Message: msg})
		m.log.Warn("model plugin failed to start", "model", m.Key, "why", why, "error", msg)
		return Result{Key: m.Key, Status: StatusFailed, Message: msg}
	}
	if _, ok := m.install(p, why); !ok {
		return Result{Key: m.Key, Status: StatusFailed, Message: "healproxy is shutting down"}
	}
	pid := p.Pid()
	m.log.Info("model plugin running", "model", m.Key, "pid", pid, "why", why)
	return Result{Key: m.Key, Status: StatusSuccess, Pid: pid,
		Message: fmt.Sprintf("plugin started (pid %d) and passed its health check", pid)}
}

// timeoutOf is the model's per-call timeout; a Config that skipped
// Normalize gets the default rather than no time at all.
func timeoutOf(mc *config.Model) time.Duration {
	if mc.Timeout <= 0 {
		return config.DefaultModelTimeout
	}
	return mc.Timeout
}

// startTimeout bounds one plugin start: handshake plus health check.
const startTimeout = 10 * time.Second

// startProcess starts a plugin process, waits for its health check and,
// when the model has warm-up samples, sends them in one Predict within the
// model's timeout: a process that fails its warm-up is stopped and the
// start fails.
func (m *Model) startProcess() (*plugins.Process, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := plugins.Start(ctx, m.spec, m.log)
	if err != nil {
		return nil, err
	}
	mc := m.cfg.Load()
	if len(mc.Warmup) == 0 {
		return p, nil
	}
	wctx, wcancel := context.WithTimeout(context.Background(), timeoutOf(mc))
	defer wcancel()
	if _, err := p.Model().Predict(wctx, mc.Warmup); err != nil {
		p.Kill()
		return nil, fmt.Errorf("plugin %q (pid %d) failed its warm-up predict of %d sample(s): %w", m.Key, p.Pid(), len(mc.Warmup), err)
	}
	return p, nil
}

// install makes p the process new calls go to and resets the health entry
// (keeps it, for the first start of a restored model). It returns the
// process that served before, if any; ok is false (and p killed) once the
// model is closed.
func (m *Model) install(p *plugins.Process, why string) (prev *instance, ok bool) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		p.Kill()
		return nil, false
	}
	keep := why == "start" && m.restored
	m.mu.Unlock()
	in := newInstance(p, m.now())
	m.lifeMu.Lock()
	prev = m.cur.Swap(in)
	if keep {
		m.Health.Release() // counters and any cooldown as they were before the restart
	} else {
		m.Health.Reset() // healthy, counters cleared (docs/behaviour.md)
	}
	m.lifeMu.Unlock()
	go m.watch(in)
	return prev, true
}

// watch notices the process's end. An exit that the host did not ask for
// makes the model unavailable at once.
func (m *Model) watch(in *instance) {
	<-in.p.Done()
	m.lifeMu.Lock()
	if !m.cur.CompareAndSwap(in, nil) {
		m.lifeMu.Unlock()
		return // replaced or stopped by us
	}
	m.Health.HoldFailed("plugin process exited; waiting for a reinit",
		&breaker.Failure{Kind: breaker.KindCrash, Message: in.p.ExitErr().Error()})
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
		if m.Health.Status() != breaker.Unavailable && m.cur.Load() != nil {
			return // recovered meanwhile (a manual self-heal)
		}
		m.Reinit(context.Background(), WhyAutoReinit)
	})
}

// Reinit replaces the model's process (docs/behaviour.md, "Models"): warm
// when the process still answers its health check, cold otherwise (see the
// package documentation). why says what asked (WhySelfHeal,
// WhyAutoReinit). At most one runs per model: a concurrent caller waits
// for the one in progress and gets its result. Every attempt starts the
// reinit cooldown; within it Reinit returns StatusCooldown and does
// nothing. A warm reinit returns once the old process has drained and
// stopped. With Options.Limiter, it first waits for its slots; ctx bounds
// that wait and the wait for a reinit in progress.
func (m *Model) Reinit(ctx context.Context, why string) Result {
	return m.reinit(ctx, why, "", m.limiter, nil)
}

// reinit is Reinit with a reason (recycles) and a limiter. With only set,
// it replaces only that process: when another has taken its place
// meanwhile, it does nothing and returns a Result without Status.
func (m *Model) reinit(ctx context.Context, why, reason string, lim *Limiter, only *instance) Result {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Result{Key: m.Key, Status: StatusFailed, Why: why, Message: "healproxy is shutting down"}
	}
	if wait := m.reinitting; wait != nil {
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return Result{Key: m.Key, Status: StatusFailed, Why: why, Message: "gave up waiting for the reinit in progress"}
		}
		m.mu.Lock()
		res := m.reinitRes
		m.mu.Unlock()
		return res
	}
	if only != nil && m.cur.Load() != only {
		m.mu.Unlock()
		return Result{Key: m.Key}
	}
	if h := m.cfg.Load().Health; !m.lastReinit.IsZero() {
		if left := time.Until(m.lastReinit.Add(h.ReinitCooldown)); left > 0 {
			m.mu.Unlock()
			return Result{Key: m.Key, Status: StatusCooldown, Why: why, Reason: reason, CooldownRemaining: left,
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

	res := m.replace(ctx, why, lim)
	res.Why, res.Reason = why, reason
	if reason != "" {
		res.Message = "recycled (" + reason + "): " + res.Message
	}
	m.log.Info("model reinit", "model", m.Key, "why", why, "reason", reason, "mode", res.Mode, "result", res.Status,
		"switch", res.Switch, "drain", res.Drain, "message", res.Message)
	if res.Status == StatusFailed && m.hooks.ReinitFailed != nil {
		m.hooks.ReinitFailed(m.Key, why, res.Message)
	}
	if m.hooks.Reinitialised != nil {
		m.hooks.Reinitialised(m.Key, res)
	}

	m.mu.Lock()
	m.reinitRes = res
	m.lastRes = res
	m.reinitting = nil
	m.mu.Unlock()
	close(done)
	if res.Status != StatusSuccess {
		m.scheduleAutoReinit()
	}
	return res
}

// hungBound bounds the health check that decides whether a running
// process is alive enough for a warm reinit; one that does not answer
// within it is hung and replaced cold.
const hungBound = 2 * time.Second

// replace is one reinit attempt, warm or cold; the caller holds
// m.reinitting.
func (m *Model) replace(ctx context.Context, why string, lim *Limiter) Result {
	began := time.Now()
	old := m.cur.Load()
	cold := ""
	switch {
	case m.coldOnly:
		cold = "warm replacement is off"
	case old == nil:
		cold = "no process was running"
	case old.exited():
		cold = "the process had exited"
	case lim != nil && lim.Limit() < 2:
		cold = "max_concurrent_reinit is 1: no room for a second process"
	default:
		hctx, cancel := context.WithTimeout(context.Background(), m.hung)
		err := old.p.Model().Health(hctx)
		cancel()
		if err != nil {
			cold = fmt.Sprintf("the process (pid %d) failed its health check within %s: %v", old.p.Pid(), m.hung, err)
		}
	}
	weight := 2
	if cold != "" {
		weight = 1
	}
	if lim != nil {
		got, err := lim.acquire(ctx, weight)
		if err != nil {
			return Result{Key: m.Key, Status: StatusFailed,
				Message: "gave up waiting for a free reinit slot (max_concurrent_reinit): " + err.Error()}
		}
		defer lim.release(got)
	}
	if cold != "" {
		return m.replaceCold(why, cold, began)
	}
	return m.replaceWarm(why, old, began)
}

// replaceCold stops the old process, if any, then starts a new one.
func (m *Model) replaceCold(why, because string, began time.Time) Result {
	m.lifeMu.Lock()
	old := m.cur.Swap(nil)
	if old != nil {
		m.Health.Hold("reinitialising")
	}
	m.lifeMu.Unlock()
	oldPid := 0
	if old != nil {
		oldPid = old.p.Pid()
		old.p.Kill() // reaped before the new one starts
	}
	res := m.spawn(why)
	res.Mode, res.OldPid, res.Switch = ModeCold, oldPid, time.Since(began)
	res.Message += " (cold: " + because + ")"
	return res
}

// replaceWarm starts the new process while old serves, switches new calls
// to it, waits for old's calls in flight (at most the model's timeout) and
// stops old.
func (m *Model) replaceWarm(why string, old *instance, began time.Time) Result {
	oldPid := old.p.Pid()
	p, err := m.startProcess()
	if err != nil {
		msg := fmt.Sprintf("%v; the running process (pid %d) keeps serving", err, oldPid)
		m.log.Warn("model plugin failed to start", "model", m.Key, "why", why, "error", err)
		return Result{Key: m.Key, Status: StatusFailed, Mode: ModeWarm, OldPid: oldPid, Switch: time.Since(began), Message: msg}
	}
	prev, ok := m.install(p, why)
	if !ok {
		return Result{Key: m.Key, Status: StatusFailed, Mode: ModeWarm, OldPid: oldPid, Message: "healproxy is shutting down"}
	}
	switched := time.Since(began)
	pid := p.Pid()
	res := Result{Key: m.Key, Status: StatusSuccess, Mode: ModeWarm, Pid: pid, OldPid: oldPid, Switch: switched}
	if prev == nil { // old exited on its own meanwhile; its watcher held the entry
		res.Message = fmt.Sprintf("plugin started (pid %d) and passed its health check; the old one (pid %d) had exited meanwhile", pid, oldPid)
		return res
	}
	drainStart := time.Now()
	left := m.drain(prev, timeoutOf(m.cfg.Load()))
	res.Drain = time.Since(drainStart)
	prev.p.Kill()
	res.Message = fmt.Sprintf("plugin started (pid %d), passed its health check and took over in %s (warm); the old one (pid %d) drained in %s",
		pid, switched.Round(time.Millisecond), prev.p.Pid(), res.Drain.Round(time.Millisecond))
	if left > 0 {
		res.Message += fmt.Sprintf(" and was stopped with %d call(s) still in flight after the model's timeout", left)
	}
	m.log.Info("model plugin running", "model", m.Key, "pid", pid, "why", why)
	return res
}

// HealAll reinitialises every model of models that is unavailable or not
// loaded and returns their results in the order of models. A model with an
// Options.Limiter takes its slots there; the others share a limiter of
// limit (max_concurrent_reinit; at least 1) for this call.
func HealAll(ctx context.Context, models []*Model, limit int) []Result {
	local := NewLimiter(limit)
	var todo []*Model
	for _, m := range models {
		if m.cur.Load() == nil || m.Health.Status() == breaker.Unavailable {
			todo = append(todo, m)
		}
	}
	results := make([]Result, len(todo))
	var wg sync.WaitGroup
	for i, m := range todo {
		lim := m.limiter
		if lim == nil {
			lim = local
		}
		wg.Go(func() { results[i] = m.reinit(ctx, WhySelfHeal, "", lim, nil) })
	}
	wg.Wait()
	return results
}

// Close stops the model for good: no more reinits, a drain in progress cut
// short, every process killed and reaped.
func (m *Model) Close() {
	m.mu.Lock()
	m.closed = true
	if m.autoTimer != nil {
		m.autoTimer.Stop()
		m.autoTimer = nil
	}
	wait := m.reinitting
	started := m.started
	m.mu.Unlock()
	m.stopOnce.Do(func() { close(m.stop) })
	if wait != nil && started {
		<-wait // a start or reinit in progress installs nothing once closed
	}
	if in := m.cur.Swap(nil); in != nil {
		in.p.Kill()
	}
}

// CloseWhenIdle stops a model a reload removed or replaced, once its
// requests in flight (Acquire) are done (at most its timeout and a second
// later).
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
	if until, ok := m.Health.CooldownUntil(); ok && m.cur.Load() != nil {
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
