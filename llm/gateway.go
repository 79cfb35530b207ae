// Package llm is healproxy's gateway to OpenAI-compatible model servers
// (OpenAI, vLLM, TGI, Ollama, llama.cpp server, …): the model blocks with
// endpoints (config.Model.Endpoints). It serves the OpenAI API,
//
//	POST /v1/chat/completions   streamed (Server-Sent Events) or not
//	POST /v1/completions        likewise
//	GET  /v1/models             the endpoint models' keys
//
// where the request's "model" names a model block and its upstream_model
// is sent upstream. Each endpoint has its own health entry
// (breaker.Entry). A call goes to the model's endpoints in order of
// health, fails over between them, retries after a backoff, and then hands
// the call to the model's fallback; a failure in the middle of a streamed
// answer is recovered on the fallback when it can be done without the
// client noticing (a prefill continuation, or a replay whose answer begins
// with what was delivered), and is otherwise ended with an explicit SSE
// error event, never a clean end. docs/behaviour.md ("Model servers over
// HTTP") has the rules; the README the settings.
//
// Prompts and answers are never logged.
package llm

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/redact"
)

// Defaults of Options.
const (
	DefaultMaxRequestBody  = 4 << 20  // 4 MiB
	DefaultMaxResponseBody = 32 << 20 // 32 MiB, a non-streamed answer
	DefaultBackoff         = 25 * time.Millisecond
	DefaultMaxBackoff      = time.Second
	DefaultMaxRetryWait    = 5 * time.Second
	DefaultFinishGrace     = time.Second
	DefaultPasses          = 2
)

// Options configure a Gateway. The zero value works.
type Options struct {
	// Transport sends requests to the endpoints; nil: a dedicated
	// http.Transport, closed by Close.
	Transport http.RoundTripper
	// Registerer registers the gateway's metrics; nil: they are kept but
	// not registered.
	Registerer prometheus.Registerer
	// Hooks are told about health changes, fallbacks and recoveries.
	Hooks Hooks
	// Logger logs operational events (never prompts or answers); nil:
	// none.
	Logger *slog.Logger

	// MaxRequestBody bounds a client's request (413 beyond it); default
	// DefaultMaxRequestBody.
	MaxRequestBody int64
	// MaxResponseBody bounds a non-streamed answer, which is read whole
	// before it is sent on; default DefaultMaxResponseBody.
	MaxResponseBody int64
	// Passes is how many times a call goes over a model's endpoints
	// before it falls back: the first pass fails over between them, the
	// later ones retry after a backoff. Default DefaultPasses.
	Passes int
	// Backoff is the base of the full-jitter exponential backoff before a
	// later pass, capped at MaxBackoff; defaults DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxRetryWait is the longest a call waits for a rate-limit pause
	// (Retry-After) to end when the model has no fallback; default
	// DefaultMaxRetryWait. A longer pause is answered with the
	// endpoint's 429.
	MaxRetryWait time.Duration
	// FinishGrace is how long a stream that sent its finish_reason may
	// stay silent before it is finished without its "[DONE]"; default
	// DefaultFinishGrace (or the idle timeout, if shorter).
	FinishGrace time.Duration
	// PreciseStamps is passed to the health entries (breaker.Options).
	PreciseStamps bool
}

func (o *Options) normalize() {
	if o.MaxRequestBody <= 0 {
		o.MaxRequestBody = DefaultMaxRequestBody
	}
	if o.MaxResponseBody <= 0 {
		o.MaxResponseBody = DefaultMaxResponseBody
	}
	if o.Passes <= 0 {
		o.Passes = DefaultPasses
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.Backoff)
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = DefaultMaxRetryWait
	}
	if o.FinishGrace <= 0 {
		o.FinishGrace = DefaultFinishGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Hooks are called on the request path: they must be quick and must not
// block. Any may be nil.
type Hooks struct {
	// OnChange: an endpoint's health entry changed status.
	OnChange func(Change)
	// OnFallback: a call went on to another model.
	OnFallback func(Fallback)
	// OnRecovery: a streamed answer broke after it had reached the
	// client, and was recovered (or not).
	OnRecovery func(Recovery)
}

// Change is a status change of one endpoint's health entry.
type Change struct {
	Model    string // the model's key
	Endpoint string // the endpoint's redacted URL
	Entry    *breaker.Entry
	From, To breaker.Status
}

// Fallback reasons.
const (
	ReasonFailure       = "failure"        // the model failed before its answer began
	ReasonContextLength = "context_length" // the model said the prompt is too long
)

// Fallback is a call going on from one model to another before any of the
// answer reached the client.
type Fallback struct {
	From, To string // model keys
	Reason   string // ReasonFailure or ReasonContextLength
	Error    string // why From failed; free of secrets
}

// Recovery ways.
const (
	WayPrefill = "prefill" // the fallback continued the answer from an assistant prefill
	WayReplay  = "replay"  // the fallback answered again from the start, with the same beginning
	WayFailed  = "failed"  // neither worked: the stream ended with an error event
)

// Recovery is what became of a streamed answer that broke after part of it
// had reached the client.
type Recovery struct {
	Model     string // the model whose stream broke
	To        string // the model that continued it; "" when Way is WayFailed
	Way       string // WayPrefill, WayReplay or WayFailed
	Delivered int    // bytes of answer text the client had when it broke
	Cause     string // why it broke (stalled, cut); free of secrets
}

// Gateway serves the OpenAI API for the endpoint models. Its methods are
// safe for concurrent use.
type Gateway struct {
	opts    Options
	client  *http.Client
	own     *http.Transport // nil when Options.Transport was given
	metrics *metrics

	mu    sync.Mutex // serializes Reconfigure
	state atomic.Pointer[gwState]
}

type gwState struct {
	models map[string]*Model
	list   []*Model
}

// Model is one endpoint model. It is immutable; a reconfiguration builds
// a new one, which keeps the health entries of unchanged endpoints.
type Model struct {
	// Key is the model block's key, what clients send as "model".
	Key string
	// Name is its display name.
	Name string

	cfg       config.Model
	endpoints []*Endpoint
	headers   http.Header      // injected; values are secrets
	secrets   *redact.Scrubber // endpoint query strings and header values
}

// Endpoint is one model server of a model, with its own health.
type Endpoint struct {
	// URL is the endpoint's base URL without user info or query string
	// (which may hold secrets): the form shown in diagnostics and logs.
	URL string
	// Health is the endpoint's health entry.
	Health *breaker.Entry
	base   *url.URL
	key    string // the full URL: what a reconfiguration matches on
}

// ID identifies the endpoint by its full URL without showing it (the
// query string may hold a secret): a hex SHA-256 prefix, stable across
// restarts, for keys of persisted state.
func (ep *Endpoint) ID() string {
	sum := sha256.Sum256([]byte(ep.key))
	return hex.EncodeToString(sum[:12])
}

// Config returns the model's configuration.
func (m *Model) Config() config.Model { return m.cfg }

// Endpoints returns the model's endpoints in the configured order. The
// slice must not be modified.
func (m *Model) Endpoints() []*Endpoint { return m.endpoints }

// Status sums the endpoints' statuses as a provider's upstreams are
// summed (docs/behaviour.md): endpoints never called are left out unless
// all are; healthy when every other is, unavailable when all are,
// degraded otherwise.
func (m *Model) Status() breaker.Status {
	s, _ := breaker.Sum(len(m.endpoints), func(i int) breaker.Status { return m.endpoints[i].Health.Status() })
	return s
}

// SelfHeal clears every endpoint's cooldown and counters (breaker's
// Reset): the self-heal of an endpoint model, like a provider's.
func (m *Model) SelfHeal() {
	for _, ep := range m.endpoints {
		ep.Health.Reset()
	}
}

// New returns a gateway for the endpoint models among models, which come
// from a normalized config; other models are left out.
func New(models []config.Model, opts Options) *Gateway {
	opts.normalize()
	g := &Gateway{opts: opts, metrics: newMetrics(opts.Registerer)}
	rt := opts.Transport
	if rt == nil {
		g.own = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
		rt = g.own
	}
	g.client = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // an API answers; it does not send us elsewhere
	}}
	g.Reconfigure(models)
	return g
}

// Models returns the endpoint models in the configured order.
func (g *Gateway) Models() []*Model { return g.state.Load().list }

// Model returns the endpoint model with that key, or nil.
func (g *Gateway) Model(key string) *Model { return g.state.Load().models[key] }

// Changes says what a Reconfigure did, by model key.
type Changes struct {
	Added, Removed, Changed []string
	Unchanged               int
}

// Reconfigure swaps in new endpoint models (the others in models are left
// out): calls in flight finish on what they started with. An endpoint
// whose model key and full URL stay keeps its health entry, with the new
// health settings applied in place, as a provider's upstreams do on a
// reload.
func (g *Gateway) Reconfigure(models []config.Model) Changes {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ch Changes
	old := g.state.Load()
	st := &gwState{models: map[string]*Model{}}
	for _, mc := range models {
		if !mc.IsEndpoint() {
			continue
		}
		var om *Model
		if old != nil {
			om = old.models[mc.Key]
		}
		m := g.newModel(mc, om)
		st.models[m.Key] = m
		st.list = append(st.list, m)
		switch {
		case om == nil:
			ch.Added = append(ch.Added, mc.Key)
		case sameModel(om.cfg, mc):
			ch.Unchanged++
		default:
			ch.Changed = append(ch.Changed, mc.Key)
		}
	}
	if old != nil {
		for _, om := range old.list {
			if st.models[om.Key] == nil {
				ch.Removed = append(ch.Removed, om.Key)
				g.metrics.forget(om.Key)
			}
		}
	}
	g.state.Store(st)
	return ch
}

func sameModel(a, b config.Model) bool {
	return a.Name == b.Name && a.Timeout == b.Timeout && a.Fallback == b.Fallback && a.Health == b.Health &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y *url.URL) bool { return x.String() == y.String() }) &&
		a.UpstreamModel == b.UpstreamModel && equalHeaders(a.Headers, b.Headers) && a.IdleTimeout == b.IdleTimeout &&
		a.MaxDuration == b.MaxDuration && a.ContextFallback == b.ContextFallback && a.Prefill == b.Prefill
}

func equalHeaders(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// newModel builds a model; endpoints of old with the same full URL keep
// their health entries.
func (g *Gateway) newModel(mc config.Model, old *Model) *Model {
	name := mc.Name
	if name == "" {
		name = mc.Key
	}
	m := &Model{Key: mc.Key, Name: name, cfg: mc, headers: http.Header{}}
	var secrets []string
	for k, v := range mc.Headers {
		if v != "" {
			m.headers.Set(k, v)
			secrets = append(secrets, v)
		}
	}
	settings := breaker.SettingsOf(mc.Health)
	for _, u := range mc.Endpoints {
		secrets = append(secrets, redact.ForURL(u, false)...)
		ep := &Endpoint{URL: redact.URL(u), base: u, key: u.String()}
		if old != nil {
			for _, oe := range old.endpoints {
				if oe.key == ep.key {
					ep.Health = oe.Health
					ep.Health.SetSettings(settings)
				}
			}
		}
		if ep.Health == nil {
			key, display := mc.Key, ep.URL
			ep.Health = breaker.New("model/"+mc.Key+"/"+ep.URL, settings, breaker.Options{
				PreciseStamps: g.opts.PreciseStamps,
				OnChange: func(e *breaker.Entry, from, to breaker.Status) {
					if h := g.opts.Hooks.OnChange; h != nil {
						h(Change{Model: key, Endpoint: display, Entry: e, From: from, To: to})
					}
				},
			})
		}
		m.endpoints = append(m.endpoints, ep)
	}
	m.secrets = redact.New(secrets...)
	return m
}

// Close releases the gateway's idle connections. Calls in flight finish.
func (g *Gateway) Close() {
	if g.own != nil {
		g.own.CloseIdleConnections()
	}
}

// ServeHTTP routes the OpenAI API: POST /v1/chat/completions, POST
// /v1/completions and GET /v1/models; anything else is 404 (405 for
// another method), in OpenAI's error shape.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/models":
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "no route for "+r.Method+" "+path)
		return
	}
	want := http.MethodPost
	if path == "/v1/models" {
		want = http.MethodGet
	}
	if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", want)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", r.Method+" is not allowed on "+path)
		return
	}
	switch path {
	case "/v1/chat/completions":
		g.ServeChatCompletions(w, r)
	case "/v1/completions":
		g.ServeCompletions(w, r)
	default:
		g.ServeModels(w, r)
	}
}

// ServeModels is GET /v1/models: the endpoint models' keys, in OpenAI's
// list shape.
func (g *Gateway) ServeModels(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []entry `json:"data"`
	}{Object: "list", Data: []entry{}}
	for _, m := range g.Models() {
		list.Data = append(list.Data, entry{ID: m.Key, Object: "model", OwnedBy: "healproxy"})
	}
	writeJSON(w, http.StatusOK, list)
}

// ServeChatCompletions is POST /v1/chat/completions.
func (g *Gateway) ServeChatCompletions(w http.ResponseWriter, r *http.Request) {
	g.serveCall(w, r, true)
}

// ServeCompletions is POST /v1/completions.
func (g *Gateway) ServeCompletions(w http.ResponseWriter, r *http.Request) {
	g.serveCall(w, r, false)
}

// Interface guards.
var _ http.Handler = (*Gateway)(nil)
