package hclx

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Format renders diags one per line, each line ending in "\n":
//
//	FILE:LINE:COL: message
//
// where message is the Summary, plus "; " and the Detail when there is one,
// on a single line. Warnings are prefixed with "warning: ". A diagnostic
// without a Subject is rendered as "FILE: message", FILE being the path
// given to Load or Parse (or just "message" when it came from elsewhere).
// Nil diagnostics are skipped.
func Format(diags hcl.Diagnostics) string {
	var sb strings.Builder
	for _, d := range diags {
		if d == nil {
			continue
		}
		msg := oneLine(d.Summary)
		if detail := oneLine(d.Detail); detail != "" {
			msg += "; " + detail
		}
		if d.Severity == hcl.DiagWarning {
			msg = "warning: " + msg
		}
		file := ""
		if fe, ok := hcl.DiagnosticExtra[fileExtra](d); ok {
			file = fe.filename
		}
		switch {
		case d.Subject != nil:
			if d.Subject.Filename != "" {
				file = d.Subject.Filename
			}
			fmt.Fprintf(&sb, "%s:%d:%d: %s\n", file, d.Subject.Start.Line, d.Subject.Start.Column, msg)
		case file != "":
			fmt.Fprintf(&sb, "%s: %s\n", file, msg)
		default:
			sb.WriteString(msg + "\n")
		}
	}
	return sb.String()
}

// Quote quotes a value for a message, shortened to about 64 bytes.
func Quote(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strconv.Quote(s)
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

func oneLine(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	return strings.TrimSpace(s)
}

// fileExtra is attached (as hcl.Diagnostic.Extra) to diagnostics that have
// no Subject so that Format can still name the file. It wraps any
// Extra already present.
type fileExtra struct {
	filename string
	inner    any
}

func (e fileExtra) UnwrapDiagnosticExtra() any { return e.inner }

// Finish tidies the diagnostics of one load: it drops follow-on errors,
// names the file on Subject-less diagnostics and sorts by position
// (Subject-less first), keeping the order of equal positions.
func Finish(filename string, diags hcl.Diagnostics) hcl.Diagnostics {
	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		if d == nil || (isFollowOn(d) && hasOtherErrors(diags, d)) {
			continue
		}
		if d.Subject == nil {
			if _, ok := hcl.DiagnosticExtra[fileExtra](d); !ok {
				d.Extra = fileExtra{filename: filename, inner: d.Extra}
			}
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Subject, out[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		default:
			return a.Start.Column < b.Start.Column
		}
	})
	return out
}

// isFollowOn reports a diagnostic that only says a value is unknown. Without
// variables, a value is unknown only because evaluating it already failed,
// and that failure has its own, better diagnostic.
func isFollowOn(d *hcl.Diagnostic) bool {
	return d.Severity == hcl.DiagError && strings.Contains(d.Detail, "value must be known")
}

func hasOtherErrors(diags hcl.Diagnostics, except *hcl.Diagnostic) bool {
	for _, d := range diags {
		if d != nil && d != except && d.Severity == hcl.DiagError && !isFollowOn(d) {
			return true
		}
	}
	return false
}
