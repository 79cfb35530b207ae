package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/healproxy/healproxy/alert"
	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/tracing"
	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/supervisor"
)

// MaxPredictBody bounds a predict request body; larger ones get 413.
const MaxPredictBody = 1 << 20

// MaxPredictInputs bounds the inputs of one predict request.
const MaxPredictInputs = 256

// Model is one model endpoint: its supervised plugin process and health
// entry (package supervisor), and the predict calls made through them.
type Model struct {
	*supervisor.Model
}

func newModel(mc config.Model, s *Server) *Model {
	return &Model{supervisor.New(mc, breaker.SettingsOf(mc.Health), s.supervisorOptions())}
}

// supervisorOptions are the Options of every model of s: its logger, the
// plugin environment, and hooks into its status changes and alerts.
func (s *Server) supervisorOptions() supervisor.Options {
	return supervisor.Options{Logger: s.log, Env: s.opts.PluginEnv, Limiter: s.reinits, Hooks: supervisor.Hooks{
		Changed: func(key string, e *breaker.Entry, from, to breaker.Status) {
			s.changed(Change{Kind: KindModel, Key: key, From: from, To: to, entry: e})
		},
		Reinitialised: s.reinitialised,
		ReinitFailed: func(key, why, msg string) {
			s.alerts.Load().Notify(alert.Event{Type: alert.ReinitFailed, Kind: KindModel, Key: key,
				Reason: "reinit (" + why + ") failed", Message: msg})
		},
	}}
}

// reinit kills the model's process and starts a fresh one (see
// supervisor.Model.Reinit).
func (s *Server) reinit(ctx context.Context, m *Model, why string) api.HealResult {
	return healResultOf(m.Reinit(ctx, why))
}

// healAll reinitialises every model that is unavailable or not loaded, at
// most max_concurrent_reinit at once.
func (s *Server) healAll(ctx context.Context, st *state) []api.HealResult {
	models := make([]*supervisor.Model, len(st.modelList))
	for i, m := range st.modelList {
		models[i] = m.Model
	}
	res := supervisor.HealAll(ctx, models, st.cfg.Health.MaxConcurrentReinit)
	out := make([]api.HealResult, len(res))
	for i, r := range res {
		out[i] = healResultOf(r)
	}
	return out
}

func healResultOf(r supervisor.Result) api.HealResult {
	h := api.HealResult{ModelKey: r.Key, Status: r.Status, Message: r.Message}
	switch r.Status {
	case supervisor.StatusSuccess:
		pid := r.Pid
		h.Pid = &pid
	case supervisor.StatusCooldown:
		rem := api.Seconds(r.CooldownRemaining)
		h.CooldownRemaining = &rem
		return h
	}
	h.Mode, h.Why, h.Reason = r.Mode, r.Why, r.Reason
	if r.Mode != "" {
		sw, dr := api.Seconds(r.Switch), api.Seconds(r.Drain)
		h.SwitchSeconds, h.DrainSeconds = &sw, &dr
	}
	return h
}

// reinitialised is told of every reinit attempt of a model (warm or cold,
// asked or not): it counts it, times the switch and sends an event.
func (s *Server) reinitialised(key string, r supervisor.Result) {
	s.metrics.reinits.WithLabelValues(key, r.Mode, r.Why, r.Status).Inc()
	if r.Status == supervisor.StatusSuccess {
		s.metrics.reinitSwitch.WithLabelValues(key, r.Mode).Observe(r.Switch.Seconds())
	}
	s.log.Info("model reinitialised", "model", key, "mode", r.Mode, "why", r.Why, "reason", r.Reason,
		"status", r.Status, "switch", r.Switch, "drain", r.Drain, "pid", r.Pid, "old_pid", r.OldPid)
	s.publishModelEvent("reinit", healResultOf(r))
}

func (m *Model) document() api.Model {
	snap := m.Health.Snapshot()
	mc := m.Config()
	d := api.Model{ModelKey: m.Key, Name: mc.Name, Entry: entryOf(snap), Explain: explainOf(snap),
		Fallback: api.StrOrNil(mc.Fallback)}
	sup := m.State()
	if sup.Loaded {
		pid := sup.Pid
		d.Loaded, d.Pid = true, &pid
	}
	d.Restarts = sup.Restarts
	d.Calls = sup.Calls
	if last := sup.Last; last.Mode != "" {
		sw := api.Seconds(last.Switch)
		d.LastReinitMode, d.LastReinitWhy, d.LastReinitSwitchSeconds = last.Mode, last.Why, &sw
	}
	d.LastReinit = api.Stamp(sup.LastReinit)
	if !sup.NextReinit.IsZero() {
		d.NextTrialAt = api.Stamp(sup.NextReinit)
	}
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
		msg := "unknown model " + strconv.Quote(key)
		if s.llm.Model(key) != nil {
			msg = "model " + strconv.Quote(key) + ` is served over HTTP: POST /v1/chat/completions or /v1/completions with "model": ` + strconv.Quote(key)
		}
		api.WriteJSON(w, http.StatusNotFound, api.ErrorBody{Status: "error", ModelKey: key, Error: msg})
		return
	}
	defer m.Release()
	inputs, code, msg := decodeInputs(w, r)
	if code != 0 {
		api.WriteJSON(w, code, api.ErrorBody{Status: "error", ModelKey: key, Error: msg})
		return
	}
	data, err := m.predict(r.Context(), s.opts.Tracer, 1, inputs)
	if err == nil {
		api.WriteJSON(w, http.StatusOK, predictDoc{Status: "success", ModelKey: key, Data: data})
		return
	}
	if r.Context().Err() != nil {
		w.WriteHeader(api.StatusClientClosedRequest)
		return
	}
	if errors.Is(err, plugins.ErrBadInput) { // the inputs, not the model: no fallback, not counted
		api.WriteJSON(w, http.StatusBadRequest, api.ErrorBody{Status: "error", ModelKey: key, Error: err.Error()})
		return
	}
	// The model failed or refused: its fallback answers when it can.
	if fb := st.models[m.Config().Fallback]; fb != nil {
		fb.Acquire()
		s.opts.Tracer.Fallback(r.Context(), key, fb.Key)
		data, fbErr := fb.predict(r.Context(), s.opts.Tracer, 2, inputs)
		fb.Release()
		if fbErr == nil {
			api.WriteJSON(w, http.StatusOK, predictDoc{Status: "success", ModelKey: fb.Key, FallbackFrom: key, Data: data})
			return
		}
	}
	var f *breaker.Failure
	switch {
	case errors.As(err, &f) && api.FailureStatus(f.Kind) != http.StatusServiceUnavailable:
		api.WriteJSON(w, api.FailureStatus(f.Kind), api.ErrorBody{Status: "error", ModelKey: key, Error: f.Message})
	default: // refused, or the process is gone: unavailable until a reinit
		api.SetRetryAfter(w, m.RetryAfter())
		msg := "model " + strconv.Quote(key) + " is unavailable: " + m.Health.Snapshot().Reason
		api.WriteJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Status: "unavailable", ModelKey: key, Error: msg})
	}
}

// acquireModel finds the model and counts the caller in its calls in
// flight, so that a reload removing it waits for the call (CloseWhenIdle)
// instead of killing its process first. The caller must call m.Release
// when done.
func (s *Server) acquireModel(key string) (*state, *Model) {
	for {
		st := s.state.Load()
		m := st.models[key]
		if m == nil {
			return st, nil
		}
		m.Acquire()
		if s.state.Load() == st { // no reload in between: m is current
			return st, m
		}
		m.Release()
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
func (m *Model) predict(ctx context.Context, tr *tracing.Tracer, n int, inputs []string) (_ [][]plugins.LabelScore, err error) {
	var out [][]plugins.LabelScore
	var refused error // the plugin refused the inputs: the client's fault
	timeout := m.Config().Timeout
	if tr.Enabled() { // a span per plugin call; nothing when tracing is off
		var span tracing.Span
		ctx, span = tr.StartAttempt(ctx, tracing.Attempt{Model: m.Key, Number: n, Breaker: m.Health.Status().String()})
		ctx = tr.InjectMetadata(ctx) // the plugin may continue the trace
		defer func() {
			var f *breaker.Failure
			switch {
			case errors.As(err, &f):
				span.EndAttempt(tracing.Result{Class: string(f.Kind), Failure: true})
			case err != nil:
				span.EndAttempt(tracing.Result{Class: "refused"})
			default:
				span.EndAttempt(tracing.Result{Class: "success"})
			}
		}()
	}
	err = m.Health.Call(func() (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		data, err := m.Model.Predict(cctx, inputs) // pins the process for the call
		latency := time.Since(start)
		switch {
		case err == nil:
			out = data
			return latency, nil
		case errors.Is(err, supervisor.ErrNotLoaded):
			return 0, breaker.Excluded() // raced with an exit or a cold reinit; the watcher records it
		case ctx.Err() != nil:
			return latency, breaker.Excluded()
		case errors.Is(err, plugins.ErrBadInput):
			refused = err
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
	if refused != nil {
		return nil, refused
	}
	if err == nil && out == nil {
		return nil, breaker.ErrHeld
	}
	return out, err
}
