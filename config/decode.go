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

	DefRange hcl.Range `hcl:",def_range"`
}

type fileAdmin struct {
	Token *string `hcl:"token,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type fileState struct {
	Path      string    `hcl:"path"`
	PathRange hcl.Range `hcl:"path,attr_value_range"`

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

// evalInt evaluates an optional whole-number attribute. It returns nil when
// the attribute is absent or null.
func evalInt(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum int) (*int, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, diags
	}
	bad := func() (*int, hcl.Diagnostics) {
		got := friendly(val)
		switch val.Type() {
		case cty.String:
			got = quote(val.AsString())
		case cty.Number:
			got = val.AsBigFloat().Text('g', 10)
		case cty.Bool:
			got = strconv.FormatBool(val.True())
		}
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("Want a whole number from %d to %d, got %s.", minimum, maxInt, got),
			Subject:  expr.Range().Ptr(),
		})
	}
	num, err := convert.Convert(val, cty.Number)
	if err != nil || num.IsNull() || !num.IsKnown() {
		return bad()
	}
	bf := num.AsBigFloat()
	if bf.IsInf() || !bf.IsInt() {
		return bad()
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n < int64(minimum) || n > maxInt {
		return bad()
	}
	i := int(n)
	return &i, diags
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
			Detail:   fmt.Sprintf("Want a list of strings, got %s.", ty.FriendlyName()),
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
		s, ok := ctyString(ev)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid " + name,
				Detail:   fmt.Sprintf("Element %d: want a string, got %s.", i, friendly(ev)),
				Subject:  rng.Ptr(),
			})
			continue
		}
		items = append(items, stringItem{Value: s, Index: i, Range: rng})
	}
	return items, true, diags
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
