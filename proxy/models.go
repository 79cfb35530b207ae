package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/healproxy/healproxy/alert"
	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/plugins"
)

// MaxPredictBody bounds a predict request body; larger ones get 413.
const MaxPredictBody = 1 << 20

// MaxPredictInputs bounds the inputs of one predict request.
const MaxPredictInputs = 256

// Model is one model backend: its plugin process, supervised, and its
// health entry. The Model, not a request, owns the process: it notices an
// exit, holds the entry unavailable, and respawns (reinit) on request or,
// with auto_reinit, by itself at most once per reinit_cooldown.
type Model struct {
	Key    string
	Health *breaker.Entry

	s    *Server
	spec plugins.Spec
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
	lastReinit time.Time      // start of the latest reinit attempt
	reinitting chan struct{}  // closed when the reinit in progress ends
	reinitRes  api.HealResult // result of the latest reinit
	autoTimer  *time.Timer    // pending automatic reinit
	nextAuto   time.Time      // when autoTimer fires
	closed     bool
	restored   bool // health came from the state store: the first start keeps it
}

func newModel(mc config.Model, cfg *config.Config, s *Server) *Model {
	m := &Model{Key: mc.Key, s: s}
	m.cfg.Store(&mc)
	cmd := mc.Command
	if mc.Plugin != "" {
		cmd = plugins.BuiltinCommand(mc.Plugin)
	}
	m.spec = plugins.Spec{Key: mc.Key, Command: cmd, Env: s.opts.PluginEnv}
	m.Health = breaker.New("model/"+mc.Key, settingsOf(mc.Health), breaker.Options{
		OnChange: func(e *breaker.Entry, from, to breaker.Status) {
			s.changed(Change{Kind: KindModel, Key: mc.Key, From: from, To: to, entry: e})
			if to == breaker.Unavailable {
				m.scheduleAutoReinit()
			}
		},
	})
	m.reinitting = make(chan struct{}) // the first start, see start
	return m
}

// start spawns the plugin for the first time, in the background. A first
// start is not a reinit: it does not start the reinit cooldown.
// Like a reinit, it holds m.reinitting, so nothing else spawns meanwhile.
func (m *Model) start() {
	go func() {
		res := m.spawn("start")
		m.mu.Lock()
		done := m.reinitting
		m.reinitRes, m.reinitting = res, nil
		m.mu.Unlock()
		close(done)
		if res.Status != "success" {
			m.scheduleAutoReinit()
		}
	}()
}

// spawn starts a fresh process and installs it. The caller has made sure
// that no other spawn of this model runs and that the old process is gone.
func (m *Model) spawn(why string) api.HealResult {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := plugins.Start(ctx, m.spec, m.s.log)
	if err != nil {
		msg := err.Error()
		m.Health.HoldFailed("plugin not running: "+msg, &breaker.Failure{Kind: breaker.KindCrash, Message: msg})
		m.s.log.Warn("model plugin failed to start", "model", m.Key, "why", why, "error", msg)
		return api.HealResult{ModelKey: m.Key, Status: "failed", Message: msg}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		p.Kill()
		return api.HealResult{ModelKey: m.Key, Status: "failed", Message: "healproxy is shutting down"}
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
	m.s.log.Info("model plugin running", "model", m.Key, "pid", pid, "why", why)
	return api.HealResult{ModelKey: m.Key, Status: "success", Pid: &pid,
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
		m.s.reinit(context.Background(), m, "auto-reinit")
	})
}

// reinit kills the model's process and starts a fresh one
// (docs/behaviour.md, "Models"). At most one runs per model: a concurrent caller waits for the
// one in progress and gets its result, so two processes never exist for
// one model. Every attempt starts the reinit cooldown.
func (s *Server) reinit(ctx context.Context, m *Model, why string) api.HealResult {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return api.HealResult{ModelKey: m.Key, Status: "failed", Message: "healproxy is shutting down"}
	}
	if wait := m.reinitting; wait != nil {
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return api.HealResult{ModelKey: m.Key, Status: "failed", Message: "gave up waiting for the reinit in progress"}
		}
		m.mu.Lock()
		res := m.reinitRes
		m.mu.Unlock()
		return res
	}
	if h := m.cfg.Load().Health; !m.lastReinit.IsZero() {
		if left := time.Until(m.lastReinit.Add(h.ReinitCooldown)); left > 0 {
			m.mu.Unlock()
			rem := seconds(left)
			return api.HealResult{ModelKey: m.Key, Status: "cooldown", CooldownRemaining: &rem,
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
	s.log.Info("model reinit", "model", m.Key, "why", why, "result", res.Status, "message", res.Message)
	if res.Status == "failed" {
		s.alerts.Load().Notify(alert.Event{Type: alert.ReinitFailed, Kind: KindModel, Key: m.Key,
			Reason: "reinit (" + why + ") failed", Message: res.Message})
	}

	m.mu.Lock()
	m.reinitRes = res
	m.reinitting = nil
	m.mu.Unlock()
	close(done)
	if res.Status != "success" {
		m.scheduleAutoReinit()
	}
	return res
}

// healAll reinitialises every model that is unavailable or not loaded, at
// most max_concurrent_reinit at once.
func (s *Server) healAll(ctx context.Context, st *state) []api.HealResult {
	limit := max(1, st.cfg.Health.MaxConcurrentReinit)
	sem := make(chan struct{}, limit)
	var todo []*Model
	for _, m := range st.modelList {
		if m.proc.Load() == nil || m.Health.Status() == breaker.Unavailable {
			todo = append(todo, m)
		}
	}
	results := make([]api.HealResult, len(todo))
	var wg sync.WaitGroup
	for i, m := range todo {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = s.reinit(ctx, m, "self-heal")
		})
	}
	wg.Wait()
	return results
}

// close stops the model for good: no more reinits, process killed.
func (m *Model) close() {
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

// retryAfter is when a refused call may succeed: the next automatic
// reinit for a dead plugin (its cooldown when auto_reinit is off), else
// the breaker's cooldown.
func (m *Model) retryAfter() time.Duration {
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

func (m *Model) document() api.Model {
	snap := m.Health.Snapshot()
	mc := m.cfg.Load()
	d := api.Model{ModelKey: m.Key, Name: mc.Name, Entry: entryOf(snap), Explain: explainOf(snap),
		Fallback: strOrNil(mc.Fallback)}
	if p := m.proc.Load(); p != nil {
		pid := p.Pid()
		d.Loaded, d.Pid = true, &pid
	}
	m.mu.Lock()
	d.Restarts = m.restarts
	d.LastReinit = stamp(m.lastReinit)
	if !m.nextAuto.IsZero() && m.autoTimer != nil {
		d.NextTrialAt = stamp(m.nextAuto)
	}
	m.mu.Unlock()
	return d
}

type predictRequest struct {
	Inputs json.RawMessage `json:"inputs"`
}

// decodeInputs reads {"inputs": "text"} or {"inputs": ["text", ...]}.
func decodeInputs(w http.ResponseWriter, r *http.Request) ([]string, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPredictBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxPredictBody)
		}
		return nil, http.StatusBadRequest, "cannot read body: " + err.Error()
	}
	var req predictRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, http.StatusBadRequest, "body is not a JSON object: " + err.Error()
	}
	if len(req.Inputs) == 0 || string(req.Inputs) == "null" {
		return nil, http.StatusBadRequest, `missing "inputs": send {"inputs": "text"} or {"inputs": ["text", ...]}`
	}
	var one string
	if err := json.Unmarshal(req.Inputs, &one); err == nil {
		return []string{one}, 0, ""
	}
	var many []string
	if err := json.Unmarshal(req.Inputs, &many); err != nil {
		return nil, http.StatusBadRequest, `"inputs" must be a string or a list of strings`
	}
	if len(many) == 0 {
		return nil, http.StatusBadRequest, `"inputs" is an empty list`
	}
	if len(many) > MaxPredictInputs {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d inputs", MaxPredictInputs)
	}
	return many, 0, ""
}

// servePredict is POST /models/{key}/predict (docs/behaviour.md,
// "Models"). Client
// errors stop before the model's breaker, so they never touch its health.
func (s *Server) servePredict(w http.ResponseWriter, r *http.Request) {
	key := chi.URLParam(r, "key")
	st, m := s.acquireModel(key)
	if m == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Status: "error", ModelKey: key, Error: "unknown model " + strconv.Quote(key)})
		return
	}
	defer m.inflight.Add(-1)
	inputs, code, msg := decodeInputs(w, r)
	if code != 0 {
		writeJSON(w, code, errorBody{Status: "error", ModelKey: key, Error: msg})
		return
	}
	data, err := m.predict(r.Context(), inputs)
	if err == nil {
		writeJSON(w, http.StatusOK, predictDoc{Status: "success", ModelKey: key, Data: data})
		return
	}
	if r.Context().Err() != nil {
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	// The model failed or refused: its fallback answers when it can.
	if fb := st.models[m.cfg.Load().Fallback]; fb != nil {
		fb.inflight.Add(1)
		data, fbErr := fb.predict(r.Context(), inputs)
		fb.inflight.Add(-1)
		if fbErr == nil {
			writeJSON(w, http.StatusOK, predictDoc{Status: "success", ModelKey: fb.Key, FallbackFrom: key, Data: data})
			return
		}
	}
	var f *breaker.Failure
	switch {
	case errors.As(err, &f) && f.Kind == breaker.KindTimeout:
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Status: "error", ModelKey: key, Error: f.Message})
	case errors.As(err, &f) && f.Kind == breaker.KindError:
		writeJSON(w, http.StatusBadGateway, errorBody{Status: "error", ModelKey: key, Error: f.Message})
	default:
		setRetryAfter(w, m.retryAfter())
		msg := "model " + strconv.Quote(key) + " is unavailable: " + m.Health.Snapshot().Reason
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Status: "unavailable", ModelKey: key, Error: msg})
	}
}

// acquireModel finds the model and counts the caller in its calls in
// flight, so that a reload removing it waits for the call (closeWhenIdle)
// instead of killing its process first. The caller must decrement
// m.inflight when done.
func (s *Server) acquireModel(key string) (*state, *Model) {
	for {
		st := s.state.Load()
		m := st.models[key]
		if m == nil {
			return st, nil
		}
		m.inflight.Add(1)
		if s.state.Load() == st { // no reload in between: m is current
			return st, m
		}
		m.inflight.Add(-1)
	}
}

type predictDoc struct {
	Status       string                 `json:"status"`
	ModelKey     string                 `json:"model_key"`
	FallbackFrom string                 `json:"fallback_from,omitempty"`
	Data         [][]plugins.LabelScore `json:"data"`
}

// predict calls the model's plugin through its breaker with the model's
// deadline. A refused call returns the breaker's sentinel error; a failed
// one a *breaker.Failure.
func (m *Model) predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	var out [][]plugins.LabelScore
	timeout := m.cfg.Load().Timeout
	err := m.Health.Call(func() (time.Duration, error) {
		p := m.proc.Load()
		if p == nil {
			return 0, breaker.Excluded() // raced with an exit; the watcher records it
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		data, err := p.Model().Predict(cctx, inputs)
		latency := time.Since(start)
		switch {
		case err == nil:
			out = data
			return latency, nil
		case ctx.Err() != nil:
			return latency, breaker.Excluded()
		case errors.Is(err, context.DeadlineExceeded):
			return latency, &breaker.Failure{Kind: breaker.KindTimeout, Latency: latency,
				Message: fmt.Sprintf("model did not answer within its timeout of %s", timeout)}
		case errors.Is(err, plugins.ErrPluginUnavailable):
			return latency, &breaker.Failure{Kind: breaker.KindCrash, Latency: latency, Message: err.Error()}
		default:
			return latency, &breaker.Failure{Kind: breaker.KindError, Latency: latency, Message: err.Error()}
		}
	})
	if err == nil && out == nil {
		return nil, breaker.ErrHeld
	}
	return out, err
}
