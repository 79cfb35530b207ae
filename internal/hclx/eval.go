package hclx

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// MaxInt caps integer settings so that arithmetic on them cannot overflow.
const MaxInt = math.MaxInt32

// Int evaluates an optional whole-number attribute from minimum to
// MaxInt. It returns nil when the attribute is absent or null.
func Int(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum int) (*int, hcl.Diagnostics) {
	return IntRange(expr, ectx, name, minimum, MaxInt)
}

// IntRange is Int with a maximum, which must be at most MaxInt.
func IntRange(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum, maximum int) (*int, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	val, diags := expr.Value(ectx)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return nil, diags
	}
	i, ok := WholeNumber(val, minimum, maximum)
	if !ok {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("Want a whole number from %d to %d, got %s.", minimum, maximum, Describe(val)),
			Subject:  expr.Range().Ptr(),
		})
	}
	return &i, diags
}

// WholeNumber converts a known value to an int from minimum to maximum, as
// HCL converts (a string of digits counts).
func WholeNumber(val cty.Value, minimum, maximum int) (int, bool) {
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

// Float evaluates an optional number attribute that ok accepts; want
// describes the accepted numbers ("a number from 1 to 100"). It returns nil
// when the attribute is absent or null.
func Float(expr hcl.Expression, ectx *hcl.EvalContext, name, want string, ok func(float64) bool) (*float64, hcl.Diagnostics) {
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
		Detail:   fmt.Sprintf("Want %s, got %s.", want, Describe(val)),
		Subject:  expr.Range().Ptr(),
	})
}

// IntItem is one element of a decoded list of whole numbers.
type IntItem struct {
	Index int
	Value int
	Range hcl.Range
}

// IntList evaluates an optional list of whole numbers from minimum to
// maximum. present is false when the attribute is absent or null.
func IntList(expr hcl.Expression, ectx *hcl.EvalContext, name string, minimum, maximum int) (items []IntItem, present bool, diags hcl.Diagnostics) {
	return list(expr, ectx, name, "whole numbers", func(i int, ev cty.Value, rng hcl.Range) (IntItem, string) {
		n, ok := 0, false
		if !ev.IsNull() && ev.IsKnown() {
			n, ok = WholeNumber(ev, minimum, maximum)
		}
		if !ok {
			return IntItem{}, fmt.Sprintf("Element %d: want a whole number from %d to %d, got %s.", i, minimum, maximum, Describe(ev))
		}
		return IntItem{Index: i, Value: n, Range: rng}, ""
	})
}

// list evaluates an optional list (or tuple or set) whose elements
// elem converts, each with its own range when the list is written
// literally, else the whole list's; elem returns a problem's detail, or "".
// present is false when the attribute is absent or null.
func list[T any](expr hcl.Expression, ectx *hcl.EvalContext, name, of string,
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

// Describe shows a value in a message: short primitives in full, anything
// else by its type.
func Describe(val cty.Value) string {
	if val.IsNull() || !val.IsKnown() {
		return Friendly(val)
	}
	switch val.Type() {
	case cty.String:
		return Quote(val.AsString())
	case cty.Number:
		return val.AsBigFloat().Text('g', 10)
	case cty.Bool:
		return strconv.FormatBool(val.True())
	}
	return Friendly(val)
}

// Duration checks an optional duration string. positive asks for > 0,
// otherwise >= 0 is accepted.
func Duration(s *string, rng hcl.Range, name string, positive bool) (*time.Duration, hcl.Diagnostics) {
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
			Detail:   fmt.Sprintf("%s is not %s.", Quote(*s), want),
			Subject:  rng.Ptr(),
		}}
	}
	return &d, nil
}

// StringItem is one element of a decoded list or map, with the range to
// blame for it.
type StringItem struct {
	Key   string // map key; "" for list elements
	Index int    // list index
	Value string
	Range hcl.Range // the element's (for a map: the key's) range when known
}

// StringList evaluates an optional list of strings. present is false
// when the attribute is absent or null. Each element carries its own range
// when the list is written literally, else the whole list's range.
func StringList(expr hcl.Expression, ectx *hcl.EvalContext, name string) (items []StringItem, present bool, diags hcl.Diagnostics) {
	return list(expr, ectx, name, "strings", func(i int, ev cty.Value, rng hcl.Range) (StringItem, string) {
		s, ok := ctyString(ev)
		if !ok {
			return StringItem{}, fmt.Sprintf("Element %d: want a string, got %s.", i, Friendly(ev))
		}
		return StringItem{Value: s, Index: i, Range: rng}, ""
	})
}

// StringMap evaluates an optional map of strings. Items come in source
// order when the map is written literally (so duplicate keys are visible),
// in key order otherwise.
func StringMap(expr hcl.Expression, ectx *hcl.EvalContext, name string) (items []StringItem, diags hcl.Diagnostics) {
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
			Detail:   fmt.Sprintf("The value of %s must be a string, got %s.", Quote(key), Friendly(v)),
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
			items = append(items, StringItem{Key: k, Value: s, Range: p.Key.Range()})
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
		items = append(items, StringItem{Key: k, Value: s, Range: expr.Range()})
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

func Friendly(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	return v.Type().FriendlyName()
}
