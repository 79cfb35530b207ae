package config

import (
	"fmt"
	"math"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/healproxy/healproxy/internal/bytesize"
	"github.com/healproxy/healproxy/internal/hclx"
)

// This file builds a model's resource limits and warm-up: max_memory,
// max_requests, latency_recycle and warmup (README, "Configuration";
// docs/behaviour.md, "Models"). All are off when left out.

// Bounds of the model limits.
const (
	// MinMaxMemory is the smallest max_memory accepted: no plugin process
	// runs in less, so a smaller one is a unit mistake.
	MinMaxMemory = 1 << 20
	// MaxWarmupInputs bounds the warm-up samples, as a predict request's
	// inputs are bounded.
	MaxWarmupInputs = 256
	// MaxLatencyRecycle bounds latency_recycle.
	MaxLatencyRecycle = 1000
)

// limits fills m's limits and warm-up from fm.
func (b *builder) limits(fm *fileModel, m *Model) {
	if fm.MaxMemory != nil {
		m.MaxMemory = b.size(fm.MaxMemory, "max_memory", MinMaxMemory)
	}
	n, d := hclx.Int(fm.MaxRequests, b.Ectx, "max_requests", 1)
	b.Add(d)
	if n != nil {
		m.MaxRequests = int64(*n)
	}
	f, d := hclx.Float(fm.LatencyRecycle, b.Ectx, "latency_recycle",
		fmt.Sprintf("a number above 1 and at most %d (a multiple of the p95 after start)", MaxLatencyRecycle),
		func(f float64) bool { return f > 1 && f <= MaxLatencyRecycle })
	b.Add(d)
	if f != nil {
		m.LatencyRecycle = *f
	}

	items, present, d := hclx.StringList(fm.Warmup, b.Ectx, "warmup")
	b.Add(d)
	switch {
	case !present || d.HasErrors():
	case len(items) == 0:
		b.Errorf(fm.Warmup.Range(), "Invalid warmup",
			"Model %s: warmup is an empty list; give at least one sample input, or leave warmup out.", hclx.Quote(fm.Key))
	case len(items) > MaxWarmupInputs:
		b.Errorf(fm.Warmup.Range(), "Invalid warmup",
			"Model %s: %d warm-up samples; at most %d, as in a predict request.", hclx.Quote(fm.Key), len(items), MaxWarmupInputs)
	default:
		m.Warmup = make([]string, len(items))
		for i, it := range items {
			m.Warmup[i] = it.Value
		}
	}
}

// size evaluates a size attribute: a string such as "2GiB" or "512MB"
// (ParseSize), or a whole number of bytes; at least minimum.
func (b *builder) size(expr hcl.Expression, name string, minimum int64) int64 {
	val, diags := expr.Value(b.Ectx)
	b.Add(diags)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return 0
	}
	bad := func(detail string) int64 {
		b.Errorf(expr.Range(), "Invalid "+name, "%s", detail)
		return 0
	}
	var n int64
	switch val.Type() {
	case cty.String:
		s := val.AsString()
		v, err := bytesize.Parse(s)
		if err != nil {
			return bad(fmt.Sprintf("%s is not a size: %v.", hclx.Quote(s), err))
		}
		n = v
	case cty.Number:
		v, ok := hclx.WholeNumber(val, 0, math.MaxInt)
		if !ok {
			return bad(fmt.Sprintf(`Want a size such as "2GiB" or "512MB", or a whole number of bytes; got %s.`, hclx.Describe(val)))
		}
		n = int64(v)
	default:
		return bad(fmt.Sprintf(`Want a size such as "2GiB" or "512MB", got %s.`, hclx.Friendly(val)))
	}
	if n < minimum {
		return bad(fmt.Sprintf("%s is below the minimum, %s.", bytesize.Format(n), bytesize.Format(minimum)))
	}
	return n
}
