package main

import (
	"path/filepath"
	"testing"

	"github.com/healproxy/healproxy/config"
)

// TestShippedConfigsValid: proxy.hcl and every example config load
// without a diagnostic, as `healproxy validate` would load them, so a
// change of the settings cannot leave a shipped file behind.
func TestShippedConfigsValid(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found (%v)", err)
	}
	for _, f := range append(files, "../../proxy.hcl") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := loadOptions()
			opts.Getenv = func(string) (string, bool) { return "", false } // no HEALTH_* or secrets from this environment
			if _, diags := config.Load(f, opts); len(diags) > 0 {
				t.Errorf("%s:\n%s", f, config.FormatDiagnostics(diags))
			}
		})
	}
}
