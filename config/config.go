// Package config turns a healproxy HCL file into a typed, validated Config.
//
// Loading runs in three steps, each of which appends to one hcl.Diagnostics
// list so that a user sees every problem at once:
//
//	decode (gohcl) → build (the file's settings, validated, over the
//	HEALTH_* environment overrides) → Normalize (normalize.go)
//
// Normalize is the one place a zero setting gets its default, and a Config
// built by hand must go through it too. The Default* constants below are
// the values; normalize.go says which zero settings mean something on
// purpose and are kept.
//
// Config values are immutable once Load returns; a reload builds a new one.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/config/corscfg"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/config/statecfg"
	"github.com/healproxy/healproxy/config/tracecfg"
)

// Built-in defaults. Every default of the configuration lives here; they
// are applied by Normalize, or by the loader for settings whose zero means
// something.
const (
	DefaultListen              = "127.0.0.1:7860"
	DefaultErrorThreshold      = 3
	DefaultCooldown            = 5 * time.Minute
	DefaultRecoveryCount       = 2
	DefaultAutoReinit          = true
	DefaultReinitCooldown      = 10 * time.Minute
	DefaultMaxConcurrentReinit = 5
	DefaultProviderTimeout     = 10 * time.Second
	DefaultModelTimeout        = 10 * time.Second
	DefaultAlertMinInterval    = time.Minute

	DefaultCooldownMultiplier = 2.0
	DefaultMaxCooldown        = 30 * time.Minute
	DefaultStablePeriod       = 10 * time.Minute
	DefaultMode               = ModeEnforce
	DefaultSlowCallThreshold  = time.Duration(0) // off
	DefaultMaxRateLimitPause  = 10 * time.Minute

	DefaultHealthCheckPath     = "/"
	DefaultHealthCheckInterval = 30 * time.Second
	DefaultHealthCheckTimeout  = 2 * time.Second

	// The default Retry.Attempts is the number of upstreams, at least
	// DefaultRetryAttemptsMin and at most MaxRetryAttempts.
	DefaultRetryAttemptsMin  = 2
	DefaultRetryBackoff      = 25 * time.Millisecond
	DefaultRetryMaxBackoff   = time.Second
	DefaultRetryBudget       = 0.2
	DefaultRetryBudgetWindow = 10 * time.Second
	DefaultRetryMinRetries   = 3
	DefaultCacheStaleIfError = 5 * time.Minute
	DefaultCacheMaxEntries   = 1000
	DefaultCacheMaxBodyBytes = int64(1 << 20)   // 1 MiB
	DefaultMaxRequestBody    = int64(10 << 20)  // 10 MiB
	DefaultAllDownWait       = time.Duration(0) // no wait

	// DefaultIdleTimeout bounds the silence between reads of an answer's
	// body, for providers and endpoint models (endpoints.go).
	DefaultIdleTimeout = 30 * time.Second
)

// Default lists. Loading copies them, so changing a Config cannot change
// these.
var (
	DefaultExpectStatus = []int{200}
	DefaultRetryOn      = []string{"connect-failure", "5xx", "timeout"}
	DefaultRetryMethods = []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
	DefaultAllDownOrder = []string{"stale", "last_resort", "wait", "fail"}
)

// RetryOnValues are the failures a retry policy can name in on = [...].
var RetryOnValues = []string{"connect-failure", "timeout", "5xx", "429"}

// AllDownSteps are the steps an all_down order can name; "fail" is always
// last, implied when left out.
var AllDownSteps = []string{"stale", "last_resort", "wait", "fail"}

// Bounds of the resilience settings.
const (
	MaxRetryAttempts       = 10
	MinHealthCheckInterval = time.Second
	MinRetryBudgetWindow   = time.Second
	MaxAllDownWait         = 10 * time.Second
	MaxCooldownMultiplier  = 100.0
)

// AlertEvents are the event types an alert can be sent, in the order the
// documentation lists them; an alert without on = [...] gets all of them.
var AlertEvents = []string{"unavailable", "degraded", "recovered", "reinit_failed"}

// Config is a loaded, validated configuration.
type Config struct {
	// Path is the file it was loaded from; Dir is that file's folder, from
	// which relative plugin commands are resolved.
	Path, Dir string

	// Listen is the address to serve on. Default DefaultListen.
	Listen string

	// Health is the global health block after the HEALTH_* environment
	// overrides; providers and models start from it.
	Health Health

	// AdminToken, when not empty, is required as a Bearer token on admin
	// endpoints. Empty means admin endpoints answer loopback clients only.
	AdminToken string

	// StatePath, when not empty, is where health state is persisted.
	StatePath string

	// Shared, when not nil, shares provider-upstream health with other
	// replicas through Redis (config/statecfg).
	Shared *statecfg.SharedState
	// Replica names this process among replicas: HEALPROXY_REPLICA, else
	// state.replica; "" means DefaultReplicaID().
	Replica string

	// Providers, Models and Alerts keep the order of the file.
	Providers []Provider
	Models    []Model
	Alerts    []Alert

	// Tracing, when not nil, exports OpenTelemetry traces (config/tracecfg);
	// nil means tracing is off.
	Tracing *tracecfg.Tracing
}

// Health holds the settings of the health state machine
// (docs/behaviour.md, "The health state machine").
type Health struct {
	ErrorThreshold      int           // T; default 3; >= 1
	Cooldown            time.Duration // C; default 5m; > 0
	RecoveryCount       int           // R; default 2; >= 1
	AutoReinit          bool          // default true
	ReinitCooldown      time.Duration // default 10m; >= 0
	MaxConcurrentReinit int           // default 5; >= 1
	// CooldownMultiplier grows the cooldown of an entry that trips again
	// within StablePeriod of recovering: C × multiplier^n, capped at
	// MaxCooldown (Envoy's ejection-time backoff). Default 2; >= 1 (1: off).
	CooldownMultiplier float64
	// MaxCooldown caps the grown cooldown. Default 30m; >= Cooldown.
	MaxCooldown time.Duration
	// StablePeriod without a trip resets the multiplier. Default 10m; > 0.
	StablePeriod time.Duration

	// TripRule is TripCount (or "", the default) or TripRate: open when at least
	// MinRequests calls within the sliding Window failed at FailureRate or
	// more (routing.go). Cooldown, RecoveryCount and the backoff apply to
	// both rules.
	TripRule    string
	FailureRate float64       // rate rule; default 0.5; 0 < rate <= 1
	MinRequests int           // rate rule; default 20; >= 1
	Window      time.Duration // rate rule; default 30s; >= 1s
}

// Provider modes.
const (
	ModeEnforce = "enforce" // the default: unavailable upstreams get no traffic
	ModeObserve = "observe" // track health, metrics and alerts, never block a request
)

// HealthCheck is a provider's active health check (block health_check).
type HealthCheck struct {
	Path         string        // joined to each upstream's base path; default "/"
	Interval     time.Duration // default 30s; >= 1s
	Timeout      time.Duration // default 2s; > 0, <= Interval
	ExpectStatus []int         // default [200]; each 100..599
}

// Retry is a provider's retry policy (block retry).
type Retry struct {
	Attempts   int           // total tries per request, first included; default: number of upstreams, at least 2; 1 = no retry; <= 10
	Backoff    time.Duration // base of the exponential backoff with full jitter before a retry; default 25ms
	MaxBackoff time.Duration // default 1s; >= Backoff
	// On lists the failures that are retried: "connect-failure", "timeout",
	// "5xx", "429". Default ["connect-failure", "5xx", "timeout"].
	On []string
	// Methods are retried; default the idempotent ones (GET HEAD OPTIONS
	// TRACE PUT DELETE). Requests with a body are retried only when it is
	// at most 64 KiB (it is buffered).
	Methods []string
	// Budget is the share of requests that may be retries over BudgetWindow,
	// counting retries waiting in backoff; default 0.2; 0 < Budget <= 1.
	Budget       float64
	BudgetWindow time.Duration // default 10s; >= 1s
	// MinRetries per second are always allowed, so a quiet provider can still
	// retry; default 3.
	MinRetries int
}

// Cache is a provider's stale-if-error cache (block cache).
type Cache struct {
	StaleIfError time.Duration // how old a kept answer may be when served; default 5m; > 0
	MaxEntries   int           // default 1000; >= 1
	MaxBodyBytes int64         // bodies larger are not kept; default 1 MiB
}

// AllDown says what a provider answers when every upstream is out (block
// all_down): the steps of Order in turn, "stale" (the cache), "last_resort"
// (the LastResort upstream), "wait" (up to Wait for the earliest cooldown
// end, then one try), "fail" (503 with Retry-After; always last).
type AllDown struct {
	Order      []string      // default ["stale", "last_resort", "wait", "fail"]; steps without their setting are skipped
	LastResort *url.URL      // optional upstream used only when all others are out
	Wait       time.Duration // default 0 (no wait); <= 10s
}

// MaxUpstreams bounds a provider's upstreams (the proxy tracks which ones a
// request tried in a 64-bit set).
const MaxUpstreams = 64

// Provider is one upstream API with one or more equivalent endpoints.
type Provider struct {
	ID        string
	Name      string     // default: ID
	Upstreams []*url.URL // at least one; http or https; no fragment
	Timeout   time.Duration
	// Headers are injected into every upstream request. Their values are
	// secrets: they must never be logged or shown. A header whose value is
	// empty in the file (typically env() of an unset variable) is left out.
	Headers map[string]string
	Health  Health

	Mode              string        // ModeEnforce (default) or ModeObserve
	SlowCallThreshold time.Duration // calls slower than this count as failures; 0: off
	// MaxRequestBody caps a client's request body in bytes (413 beyond
	// it); default DefaultMaxRequestBody; 0 (only from code) means none.
	MaxRequestBody int64
	// MaxRateLimitPause caps a pause taken from Retry-After or
	// X-RateLimit-Reset; default 10m.
	MaxRateLimitPause time.Duration
	HealthCheck       *HealthCheck // nil: no active checks
	Retry             Retry        // always set (defaults)
	Cache             *Cache       // nil: no stale-if-error cache
	AllDown           AllDown      // always set (defaults)

	// AllowTrace forwards TRACE requests to the upstreams; default false:
	// TRACE is answered 405, since an upstream that echoes it would show
	// the client the injected headers (secrets).
	AllowTrace bool
	// CORS lets browsers on other origins read this provider's answers;
	// nil (the default) drops the upstreams' CORS headers from every answer.
	CORS *corscfg.CORS

	// IdleTimeout bounds the silence between reads of an answer's body
	// (Timeout bounds the wait for its headers); default
	// DefaultIdleTimeout. MaxDuration bounds a whole answer, body
	// included; 0 (the default): no bound. See endpoints.go.
	IdleTimeout time.Duration
	MaxDuration time.Duration

	// Routing (routing.go): all off by default.
	Balance          string                     // BalanceRoundRobin ("", the default) or BalanceLeastLatency
	Weights          []int                      // round robin weights, one per upstream; nil: equal
	OutlierDetection *routecfg.OutlierDetection // nil: no ejection against peers
	Hedge            *routecfg.Hedge            // nil: no hedging
	Coalesce         bool                       // identical concurrent GET/HEAD share one exchange
	Quota            *routecfg.Quota            // nil: quota headers of good answers are not read
}

// Model is one model backend: a go-plugin subprocess, or OpenAI-compatible
// model servers over HTTP. Exactly one of Plugin (a built-in plugin name),
// Command (argv of an external plugin binary, argv[0] already resolved
// against Config.Dir) and Endpoints is set.
type Model struct {
	Key      string
	Name     string // default: Key
	Plugin   string
	Command  []string
	Timeout  time.Duration
	Fallback string // "" or the key of another model
	Health   Health

	// The settings of an endpoint model (Endpoints set); endpoints.go
	// documents each.
	Endpoints       []*url.URL
	UpstreamModel   string
	Headers         map[string]string // secrets, like Provider.Headers
	IdleTimeout     time.Duration
	MaxDuration     time.Duration
	ContextFallback string
	Prefill         bool

	// Resource limits and warm-up (config/limits.go; docs/behaviour.md,
	// "Models"). Zero is off.
	MaxMemory      int64    // bytes of resident memory, plugin and children; past it the process is recycled
	MaxRequests    int64    // calls one process serves before it is recycled
	LatencyRecycle float64  // recycle when the recent p95 exceeds this multiple of the p95 after start
	Warmup         []string // inputs of one Predict a new process answers before it takes calls
	// Env is set in the plugin's environment, on top of the minimal one
	// (PATH, HOME, LANG, TZ); nil for none.
	Env map[string]string
	// InheritEnv names variables of healproxy's environment passed to the
	// plugin when set; nil for none.
	InheritEnv []string
}

// Alert is one webhook that is told about status changes.
type Alert struct {
	Name string
	// Webhook is an absolute http or https URL. It may carry a secret
	// (Slack's do, in the path): never log or show it; show
	// RedactedWebhook instead.
	Webhook *url.URL
	// On is the event types to send, a subset of AlertEvents without
	// repeats, in the file's order. Default: all of AlertEvents.
	On []string
	// MinInterval is how long the same event of the same entry is not sent
	// again. Default DefaultAlertMinInterval; >= 0 (0 sends every event).
	MinInterval time.Duration
}

// RedactedWebhook is the webhook as it may be logged or shown:
// scheme://host[:port], without user info, path or query.
func (a Alert) RedactedWebhook() string {
	if a.Webhook == nil {
		return ""
	}
	return a.Webhook.Scheme + "://" + a.Webhook.Host
}

// String shows the alert with its webhook redacted, so that printing an
// Alert with %v or %s cannot leak the webhook's secret.
func (a Alert) String() string {
	return fmt.Sprintf("alert %s → %s on %v every %s", strconv.Quote(a.Name), a.RedactedWebhook(), a.On, a.MinInterval)
}

// LogValue logs the alert with its webhook redacted.
func (a Alert) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String("webhook", a.RedactedWebhook()),
		slog.Any("on", a.On),
		slog.Duration("min_interval", a.MinInterval),
	)
}

// Provider returns the provider with that id, or nil.
func (c *Config) Provider(id string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].ID == id {
			return &c.Providers[i]
		}
	}
	return nil
}

// Model returns the model with that key, or nil.
func (c *Config) Model(key string) *Model {
	for i := range c.Models {
		if c.Models[i].Key == key {
			return &c.Models[i]
		}
	}
	return nil
}
