package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

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
		v, err := ParseSize(s)
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
		return bad(fmt.Sprintf("%s is below the minimum, %s.", FormatSize(n), FormatSize(minimum)))
	}
	return n
}

// sizeUnits are the units ParseSize accepts, lower-cased: decimal (kB,
// MB, GB, TB) and binary (KiB, MiB, GiB, TiB).
var sizeUnits = map[string]int64{
	"b": 1, "": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// maxSize bounds sizes so that arithmetic on them cannot overflow.
const maxSize = 1 << 60

// ParseSize parses a size in bytes: a number, optionally with a fraction,
// and a unit: B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB
// (powers of 1024), case-insensitively, with optional space between
// ("2GiB", "512 MB", "1.5GiB"); a bare number is bytes. The result is
// rounded down to whole bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, errors.New("no number")
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %s (want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", hclx.Quote(t[i:]))
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > maxSize/mult {
			return 0, errors.New("too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %s", hclx.Quote(num))
	}
	v := f * float64(mult)
	if v > maxSize {
		return 0, errors.New("too large")
	}
	return int64(v), nil
}

// FormatSize shows n bytes in the largest binary unit it reaches, with at
// most one decimal: "2GiB", "512MiB", "137.4MiB", "900B".
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return strconv.FormatFloat(math.Floor(f*10)/10, 'f', -1, 64) + units[u]
}
