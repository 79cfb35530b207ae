package hclx

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Builder collects the diagnostics of turning a decoded file into typed
// settings: the packages that build one block each (config and its
// sub-packages) share one, so that a user sees every problem at once,
// never only the first.
type Builder struct {
	Ectx   *hcl.EvalContext
	Getenv func(string) (string, bool)
	Diags  hcl.Diagnostics

	// DecodeDiags are gohcl's, for Decoded.
	DecodeDiags hcl.Diagnostics
}

// NewBuilder returns a builder whose expressions see env() through getenv.
func NewBuilder(getenv func(string) (string, bool)) *Builder {
	return &Builder{Ectx: EvalContext(getenv), Getenv: getenv}
}

// Add appends diags.
func (b *Builder) Add(diags hcl.Diagnostics) { b.Diags = append(b.Diags, diags...) }

// Decoded reports whether the value at rng decoded without error. A value
// that did not is already reported and is not checked further, so that one
// mistake gives one diagnostic.
func (b *Builder) Decoded(rng hcl.Range) bool {
	for _, d := range b.DecodeDiags {
		if d == nil || d.Severity != hcl.DiagError || d.Subject == nil || d.Subject.Filename != rng.Filename {
			continue
		}
		if start := d.Subject.Start.Byte; start >= rng.Start.Byte && start <= rng.End.Byte {
			return false
		}
	}
	return true
}

// Errorf reports an error at subject.
func (b *Builder) Errorf(subject hcl.Range, summary, format string, args ...any) {
	b.Diags = append(b.Diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

// Duration is the package's Duration for a value that gohcl decoded.
func (b *Builder) Duration(s *string, rng hcl.Range, name string, positive bool) *time.Duration {
	if s == nil || !b.Decoded(rng) {
		return nil
	}
	d, diags := Duration(s, rng, name, positive)
	b.Add(diags)
	return d
}

// DurationIn checks an optional duration like Duration and, when minimum
// or maximum is not 0, that it lies between them. bad reports a value that
// was set but rejected (and reported), so that checks comparing it with
// another value can be skipped.
func (b *Builder) DurationIn(s *string, rng hcl.Range, name string, positive bool, minimum, maximum time.Duration) (d *time.Duration, bad bool) {
	if !b.Decoded(rng) {
		return nil, true
	}
	if s == nil {
		return nil, false
	}
	d, diags := Duration(s, rng, name, positive)
	b.Add(diags)
	switch {
	case d == nil:
		return nil, true
	case minimum > 0 && *d < minimum:
		b.Errorf(rng, "Invalid "+name, "%s is shorter than the minimum, %s.", Quote(*s), minimum)
		return nil, true
	case maximum > 0 && *d > maximum:
		b.Errorf(rng, "Invalid "+name, "%s is longer than the maximum, %s.", Quote(*s), maximum)
		return nil, true
	}
	return d, false
}

// IntTo evaluates an optional whole number from minimum to maximum into
// *dst.
func (b *Builder) IntTo(dst *int, expr hcl.Expression, name string, minimum, maximum int) {
	n, d := IntRange(expr, b.Ectx, name, minimum, maximum)
	b.Add(d)
	if n != nil {
		*dst = *n
	}
}

// FloatTo evaluates an optional number that ok accepts into *dst; want
// describes the accepted numbers.
func (b *Builder) FloatTo(dst *float64, expr hcl.Expression, name, want string, ok func(float64) bool) {
	f, d := Float(expr, b.Ectx, name, want, ok)
	b.Add(d)
	if f != nil {
		*dst = *f
	}
}
