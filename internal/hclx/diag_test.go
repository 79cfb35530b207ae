package hclx

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestFormat(t *testing.T) {
	rng := &hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 3, Column: 5, Byte: 20}, End: hcl.Pos{Line: 3, Column: 9, Byte: 24}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad thing", Detail: "It is bad.\nVery bad.", Subject: rng},
		{Severity: hcl.DiagError, Summary: "No detail", Subject: rng},
		{Severity: hcl.DiagWarning, Summary: "Careful", Subject: rng},
		{Severity: hcl.DiagError, Summary: "Nowhere"},
		nil,
		{Severity: hcl.DiagError, Summary: "Extra", Extra: fileExtra{filename: "b.hcl"}},
	}
	want := "a.hcl:3:5: Bad thing; It is bad. Very bad.\n" +
		"a.hcl:3:5: No detail\n" +
		"a.hcl:3:5: warning: Careful\n" +
		"Nowhere\n" +
		"b.hcl: Extra\n"
	if got := Format(diags); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if got := Format(nil); got != "" {
		t.Errorf("got %q for nil; want empty", got)
	}
}
