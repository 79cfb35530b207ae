package config

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/internal/hclx"
)

// FormatDiagnostics renders diags one per line, each line ending in "\n":
//
//	FILE:LINE:COL: message
//
// where message is the Summary, plus "; " and the Detail when there is one,
// on a single line. Warnings are prefixed with "warning: ". A diagnostic
// without a Subject is rendered as "FILE: message", FILE being the path
// given to Load or Parse (or just "message" when it came from elsewhere).
// Nil diagnostics are skipped.
func FormatDiagnostics(diags hcl.Diagnostics) string { return hclx.Format(diags) }
