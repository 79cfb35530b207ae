package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
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
	State     *fileState      `hcl:"state,block"`
	Providers []*fileProvider `hcl:"provider,block"`
	Models    []*fileModel    `hcl:"model,block"`
	Alerts    []*fileAlert    `hcl:"alert,block"`
	Tracing   *fileTracing    `hcl:"tracing,block"`
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
	CORS                   *fileCORS        `hcl:"cors,block"`

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

type fileCORS struct {
	AllowOrigins hcl.Expression `hcl:"allow_origins,optional"` // required; checked by us to report it once

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

	DefRange hcl.Range `hcl:",def_range"`
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

// maxInt caps integer settings so that arithmetic on them cannot overflow.
const maxInt = math.MaxInt32

// evalInt evaluates an optional whole-number attribute from minimum to
// maxInt. It returns nil when the attribute is absent or null.
func evalInt(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum int) (*int, hcl.Diagnostics) {
	return evalIntRange(expr, ectx, name, minimum, maxInt)
}

// evalIntRange is evalInt with a maximum, which must be at most maxInt.
func evalIntRange(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum, maximum int) (*int, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, diags
	}
	i, ok := wholeNumber(val, minimum, maximum)
	if !ok {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("Want a whole number from %d to %d, got %s.", minimum, maximum, describe(val)),
			Subject:  expr.Range().Ptr(),
		})
	}
	return &i, diags
}

// wholeNumber converts a known value to an int from minimum to maximum, as
// HCL converts (a string of digits counts).
func wholeNumber(val cty.Value, minimum, maximum int) (int, bool) {
	num, err := convert.Convert(val, cty.Number)
	if err != nil || num.IsNull() || !num.IsKnown() {
		return 0, false
	}
	bf := num.AsBigFloat()
	if bf.IsInf() || !bf.IsInt() {
		return 0, false
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n < int64(minimum) || n > int64(maximum) {
		return 0, false
	}
	return int(n), true
}

// evalFloat evaluates an optional number attribute that ok accepts; want
// describes the accepted numbers ("a number from 1 to 100"). It returns nil
// when the attribute is absent or null.
func evalFloat(expr hcl.Expression, ectx *hcl.EvalContext, name, want string, ok func(float64) bool) (*float64, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, diags
	}
	num, err := convert.Convert(val, cty.Number)
	if err == nil && !num.IsNull() && num.IsKnown() {
		if f, _ := num.AsBigFloat().Float64(); !math.IsInf(f, 0) && !math.IsNaN(f) && ok(f) {
			return &f, diags
		}
	}
	return nil, append(diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid " + name,
		Detail:   fmt.Sprintf("Want %s, got %s.", want, describe(val)),
		Subject:  expr.Range().Ptr(),
	})
}

// intItem is one element of a decoded list of whole numbers.
type intItem struct {
	Index int
	Value int
	Range hcl.Range
}

// evalIntList evaluates an optional list of whole numbers from minimum to
// maximum. present is false when the attribute is absent or null.
func evalIntList(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum, maximum int) (items []intItem, present bool, diags hcl.Diagnostics) {
	return evalList(expr, ectx, name, "whole numbers", func(i int, ev cty.Value, rng hcl.Range) (intItem, string) {
		n, ok := 0, false
		if !ev.IsNull() && ev.IsKnown() {
			n, ok = wholeNumber(ev, minimum, maximum)
		}
		if !ok {
			return intItem{}, fmt.Sprintf("Element %d: want a whole number from %d to %d, got %s.", i, minimum, maximum, describe(ev))
		}
		return intItem{Index: i, Value: n, Range: rng}, ""
	})
}

// evalList evaluates an optional list (or tuple or set) whose elements
// elem converts, each with its own range when the list is written
// literally, else the whole list's; elem returns a problem's detail, or "".
// present is false when the attribute is absent or null.
func evalList[T any](expr hcl.Expression, ectx *hcl.EvalContext, name, of string,
	elem func(i int, ev cty.Value, rng hcl.Range) (T, string)) (items []T, present bool, diags hcl.Diagnostics) {
	if expr == nil {
		return nil, false, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, false, diags
	}
	ty := val.Type()
	if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
		return nil, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("Want a list of %s, got %s.", of, ty.FriendlyName()),
			Subject:  expr.Range().Ptr(),
		})
	}
	elemExprs, ediags := hcl.ExprList(expr)
	if ediags.HasErrors() || len(elemExprs) != val.LengthInt() {
		elemExprs = nil
	}
	i := 0
	for it := val.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		rng := expr.Range()
		if elemExprs != nil {
			rng = elemExprs[i].Range()
		}
		item, problem := elem(i, ev, rng)
		if problem != "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid " + name,
				Detail:   problem,
				Subject:  rng.Ptr(),
			})
			continue
		}
		items = append(items, item)
	}
	return items, true, diags
}

// describe shows a value in a message: short primitives in full, anything
// else by its type.
func describe(val cty.Value) string {
	if val.IsNull() || !val.IsKnown() {
		return friendly(val)
	}
	switch val.Type() {
	case cty.String:
		return quote(val.AsString())
	case cty.Number:
		return val.AsBigFloat().Text('g', 10)
	case cty.Bool:
		return strconv.FormatBool(val.True())
	}
	return friendly(val)
}

// parseDuration checks an optional duration string. positive asks for > 0,
// otherwise >= 0 is accepted.
func parseDuration(s *string, rng hcl.Range, name string, positive bool) (*time.Duration, hcl.Diagnostics) {
	if s == nil {
		return nil, nil
	}
	want := `a duration >= 0 such as "0s", "30s" or "10m"`
	if positive {
		want = `a duration > 0 such as "500ms", "30s" or "5m"`
	}
	d, err := time.ParseDuration(*s)
	if err != nil || d < 0 || (positive && d == 0) {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("%s is not %s.", quote(*s), want),
			Subject:  rng.Ptr(),
		}}
	}
	return &d, nil
}

// stringItem is one element of a decoded list or map, with the range to
// blame for it.
type stringItem struct {
	Key   string // map key; "" for list elements
	Index int    // list index
	Value string
	Range hcl.Range // the element's (for a map: the key's) range when known
}

// evalStringList evaluates an optional list of strings. present is false
// when the attribute is absent or null. Each element carries its own range
// when the list is written literally, else the whole list's range.
func evalStringList(expr hcl.Expression, ectx *hcl.EvalContext, name string) (items []stringItem, present bool, diags hcl.Diagnostics) {
	return evalList(expr, ectx, name, "strings", func(i int, ev cty.Value, rng hcl.Range) (stringItem, string) {
		s, ok := ctyString(ev)
		if !ok {
			return stringItem{}, fmt.Sprintf("Element %d: want a string, got %s.", i, friendly(ev))
		}
		return stringItem{Value: s, Index: i, Range: rng}, ""
	})
}

// evalStringMap evaluates an optional map of strings. Items come in source
// order when the map is written literally (so duplicate keys are visible),
// in key order otherwise.
func evalStringMap(expr hcl.Expression, ectx *hcl.EvalContext, name string) (items []stringItem, diags hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, diags
	}
	ty := val.Type()
	if !ty.IsMapType() && !ty.IsObjectType() {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("Want a map of strings, got %s.", ty.FriendlyName()),
			Subject:  expr.Range().Ptr(),
		})
	}
	bad := func(key string, v cty.Value, rng hcl.Range) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("The value of %s must be a string, got %s.", quote(key), friendly(v)),
			Subject:  rng.Ptr(),
		})
	}

	// A literal map: walk its items for their ranges and duplicates.
	if pairs, pdiags := hcl.ExprMap(expr); !pdiags.HasErrors() {
		for _, p := range pairs {
			kv, kdiags := p.Key.Value(ectx)
			vv, vdiags := p.Value.Value(ectx)
			if kdiags.HasErrors() || vdiags.HasErrors() {
				continue // already reported by the evaluation of the whole map
			}
			k, ok := ctyString(kv)
			if !ok {
				continue // likewise: a non-string key fails the whole map
			}
			s, ok := ctyString(vv)
			if !ok {
				bad(k, vv, p.Value.Range())
				continue
			}
			items = append(items, stringItem{Key: k, Value: s, Range: p.Key.Range()})
		}
		return items, diags
	}

	for it := val.ElementIterator(); it.Next(); {
		kv, vv := it.Element()
		k, _ := ctyString(kv)
		s, ok := ctyString(vv)
		if !ok {
			bad(k, vv, expr.Range())
			continue
		}
		items = append(items, stringItem{Key: k, Value: s, Range: expr.Range()})
	}
	return items, diags
}

// ctyString converts a known, non-null primitive to a string, as HCL does
// for string attributes (numbers and bools convert).
func ctyString(v cty.Value) (string, bool) {
	if v.IsNull() || !v.IsKnown() || !v.Type().IsPrimitiveType() {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() || !s.IsKnown() {
		return "", false
	}
	return s.AsString(), true
}

func friendly(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	return v.Type().FriendlyName()
}
