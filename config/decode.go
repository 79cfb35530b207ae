package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/healproxy/healproxy/config/corscfg"
	"github.com/healproxy/healproxy/config/routecfg"
	"github.com/healproxy/healproxy/config/statecfg"
	"github.com/healproxy/healproxy/config/tracecfg"
)

// The file* types mirror the HCL schema one to one. gohcl rejects anything
// not listed here (there is deliberately no ",remain" field), so a typo is an
// "Unsupported argument" or "Unsupported block type" error at its position.
//
// Scalars are pointers so that "unset" can be told from the zero value.
// Durations are strings (gohcl would decode "30s" as a number error and 30 as
// 30ns), integers and lists are raw expressions that we evaluate ourselves
// so that their diagnostics can point at the value or at one element.

type fileConfig struct {
	Listen      *string   `hcl:"listen,optional"`
	ListenRange hcl.Range `hcl:"listen,attr_value_range"`

	Health    *fileHealth     `hcl:"health,block"`
	Admin     *fileAdmin      `hcl:"admin,block"`
	State     *statecfg.File  `hcl:"state,block"`
	Providers []*fileProvider `hcl:"provider,block"`
	Models    []*fileModel    `hcl:"model,block"`
	Alerts    []*fileAlert    `hcl:"alert,block"`
	Tracing   *tracecfg.File  `hcl:"tracing,block"`
}

type fileHealth struct {
	ErrorThreshold      hcl.Expression `hcl:"error_threshold,optional"`
	Cooldown            *string        `hcl:"cooldown,optional"`
	CooldownRange       hcl.Range      `hcl:"cooldown,attr_value_range"`
	RecoveryCount       hcl.Expression `hcl:"success_recovery_count,optional"`
	AutoReinit          *bool          `hcl:"auto_reinit,optional"`
	ReinitCooldown      *string        `hcl:"reinit_cooldown,optional"`
	ReinitCooldownRange hcl.Range      `hcl:"reinit_cooldown,attr_value_range"`
	MaxConcurrentReinit hcl.Expression `hcl:"max_concurrent_reinit,optional"`
	CooldownMultiplier  hcl.Expression `hcl:"cooldown_multiplier,optional"`
	MaxCooldown         *string        `hcl:"max_cooldown,optional"`
	MaxCooldownRange    hcl.Range      `hcl:"max_cooldown,attr_value_range"`
	StablePeriod        *string        `hcl:"stable_period,optional"`
	StablePeriodRange   hcl.Range      `hcl:"stable_period,attr_value_range"`

	// The trip rule (routingfile.go).
	Trip        *string        `hcl:"trip,optional"`
	TripRange   hcl.Range      `hcl:"trip,attr_value_range"`
	FailureRate hcl.Expression `hcl:"failure_rate,optional"`
	MinRequests hcl.Expression `hcl:"min_requests,optional"`
	Window      *string        `hcl:"window,optional"`
	WindowRange hcl.Range      `hcl:"window,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileAdmin struct {
	Token *string `hcl:"token,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileProvider struct {
	ID      string    `hcl:"id,label"`
	IDRange hcl.Range `hcl:"id,label_range"`

	Name         *string        `hcl:"name,optional"`
	Upstreams    hcl.Expression `hcl:"upstreams,optional"` // required; checked by us to report it once
	Timeout      *string        `hcl:"timeout,optional"`
	TimeoutRange hcl.Range      `hcl:"timeout,attr_value_range"`
	Headers      hcl.Expression `hcl:"headers,optional"`
	Health       *fileHealth    `hcl:"health,block"`

	Mode                   *string          `hcl:"mode,optional"`
	ModeRange              hcl.Range        `hcl:"mode,attr_value_range"`
	SlowCallThreshold      *string          `hcl:"slow_call_threshold,optional"`
	SlowCallThresholdRange hcl.Range        `hcl:"slow_call_threshold,attr_value_range"`
	MaxRateLimitPause      *string          `hcl:"max_rate_limit_pause,optional"`
	MaxRequestBody         hcl.Expression   `hcl:"max_request_body,optional"` // bytes
	MaxRateLimitPauseRange hcl.Range        `hcl:"max_rate_limit_pause,attr_value_range"`
	HealthCheck            *fileHealthCheck `hcl:"health_check,block"`
	Retry                  *fileRetry       `hcl:"retry,block"`
	Cache                  *fileCache       `hcl:"cache,block"`
	AllDown                *fileAllDown     `hcl:"all_down,block"`
	AllowTrace             *bool            `hcl:"allow_trace,optional"`
	CORS                   *corscfg.File    `hcl:"cors,block"`
	IdleTimeout            *string          `hcl:"idle_timeout,optional"`
	IdleTimeoutRange       hcl.Range        `hcl:"idle_timeout,attr_value_range"`
	MaxDuration            *string          `hcl:"max_duration,optional"`
	MaxDurationRange       hcl.Range        `hcl:"max_duration,attr_value_range"`

	// Routing (routingfile.go).
	Balance          *string               `hcl:"balance,optional"`
	BalanceRange     hcl.Range             `hcl:"balance,attr_value_range"`
	Weights          hcl.Expression        `hcl:"weights,optional"`
	Coalesce         *bool                 `hcl:"coalesce,optional"`
	OutlierDetection *routecfg.OutlierFile `hcl:"outlier_detection,block"`
	Hedge            *routecfg.HedgeFile   `hcl:"hedge,block"`
	Quota            *routecfg.QuotaFile   `hcl:"quota,block"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileHealthCheck struct {
	Path          *string        `hcl:"path,optional"`
	PathRange     hcl.Range      `hcl:"path,attr_value_range"`
	Interval      *string        `hcl:"interval,optional"`
	IntervalRange hcl.Range      `hcl:"interval,attr_value_range"`
	Timeout       *string        `hcl:"timeout,optional"`
	TimeoutRange  hcl.Range      `hcl:"timeout,attr_value_range"`
	ExpectStatus  hcl.Expression `hcl:"expect_status,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileRetry struct {
	Attempts          hcl.Expression `hcl:"attempts,optional"`
	Backoff           *string        `hcl:"backoff,optional"`
	BackoffRange      hcl.Range      `hcl:"backoff,attr_value_range"`
	MaxBackoff        *string        `hcl:"max_backoff,optional"`
	MaxBackoffRange   hcl.Range      `hcl:"max_backoff,attr_value_range"`
	On                hcl.Expression `hcl:"on,optional"`
	Methods           hcl.Expression `hcl:"methods,optional"`
	Budget            hcl.Expression `hcl:"budget,optional"`
	BudgetWindow      *string        `hcl:"budget_window,optional"`
	BudgetWindowRange hcl.Range      `hcl:"budget_window,attr_value_range"`
	MinRetries        hcl.Expression `hcl:"min_retries,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileCache struct {
	StaleIfError      *string        `hcl:"stale_if_error,optional"`
	StaleIfErrorRange hcl.Range      `hcl:"stale_if_error,attr_value_range"`
	MaxEntries        hcl.Expression `hcl:"max_entries,optional"`
	MaxBody           hcl.Expression `hcl:"max_body,optional"` // bytes

	DefRange hcl.Range `hcl:",def_range"`
}

type fileAllDown struct {
	Order           hcl.Expression `hcl:"order,optional"`
	LastResort      *string        `hcl:"last_resort,optional"`
	LastResortRange hcl.Range      `hcl:"last_resort,attr_value_range"`
	Wait            *string        `hcl:"wait,optional"`
	WaitRange       hcl.Range      `hcl:"wait,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileModel struct {
	Key      string    `hcl:"key,label"`
	KeyRange hcl.Range `hcl:"key,label_range"`

	Name          *string        `hcl:"name,optional"`
	Plugin        *string        `hcl:"plugin,optional"`
	PluginRange   hcl.Range      `hcl:"plugin,attr_value_range"`
	Command       hcl.Expression `hcl:"command,optional"`
	Timeout       *string        `hcl:"timeout,optional"`
	TimeoutRange  hcl.Range      `hcl:"timeout,attr_value_range"`
	Fallback      *string        `hcl:"fallback,optional"`
	FallbackRange hcl.Range      `hcl:"fallback,attr_value_range"`
	Health        *fileHealth    `hcl:"health,block"`

	// An endpoint model's (endpoints.go).
	Endpoints            hcl.Expression `hcl:"endpoints,optional"`
	UpstreamModel        *string        `hcl:"upstream_model,optional"`
	UpstreamModelRange   hcl.Range      `hcl:"upstream_model,attr_value_range"`
	Headers              hcl.Expression `hcl:"headers,optional"`
	IdleTimeout          *string        `hcl:"idle_timeout,optional"`
	IdleTimeoutRange     hcl.Range      `hcl:"idle_timeout,attr_value_range"`
	MaxDuration          *string        `hcl:"max_duration,optional"`
	MaxDurationRange     hcl.Range      `hcl:"max_duration,attr_value_range"`
	ContextFallback      *string        `hcl:"context_fallback,optional"`
	ContextFallbackRange hcl.Range      `hcl:"context_fallback,attr_value_range"`
	Prefill              *bool          `hcl:"prefill,optional"`
	PrefillRange         hcl.Range      `hcl:"prefill,attr_range"`

	DefRange hcl.Range `hcl:",def_range"`

	// Resource limits and warm-up, built by config/limits.go.
	MaxMemory      hcl.Expression `hcl:"max_memory,optional"`
	MaxRequests    hcl.Expression `hcl:"max_requests,optional"`
	LatencyRecycle hcl.Expression `hcl:"latency_recycle,optional"`
	Warmup         hcl.Expression `hcl:"warmup,optional"`
	Env            hcl.Expression `hcl:"env,optional"`
	InheritEnv     hcl.Expression `hcl:"inherit_env,optional"`
}

type fileAlert struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`

	Webhook          string         `hcl:"webhook"`
	WebhookRange     hcl.Range      `hcl:"webhook,attr_value_range"`
	On               hcl.Expression `hcl:"on,optional"`
	MinInterval      *string        `hcl:"min_interval,optional"`
	MinIntervalRange hcl.Range      `hcl:"min_interval,attr_value_range"`

	DefRange hcl.Range `hcl:",def_range"`
}

// decodeFile decodes body into a fileConfig. The result is always usable
// (possibly partly filled) so that later passes can report more problems.
func decodeFile(body hcl.Body, ectx *hcl.EvalContext) (*fileConfig, hcl.Diagnostics) {
	var fc fileConfig
	diags := gohcl.DecodeBody(body, ectx, &fc)
	return &fc, diags
}
