package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/healproxy/healproxy/internal/hclx"
)

// LoadOptions tunes Load. The zero value is usable.
type LoadOptions struct {
	// Getenv looks up environment variables (for env("NAME") and HEALTH_*).
	// nil means os.LookupEnv.
	Getenv func(string) (string, bool)

	// BuiltinPlugins lists valid values of a model's plugin attribute. nil
	// means any identifier-like name is accepted.
	BuiltinPlugins []string
}

// Load reads, decodes, defaults and validates the file at path.
//
// It returns every problem it finds, each with the position of the
// offending token where there is one (see FormatDiagnostics). On any error
// diagnostic the Config is nil; warnings may come with a Config.
func Load(path string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, hclx.Finish(path, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read config file",
			Detail:   err.Error(),
		}})
	}
	return Parse(path, src, opts)
}

// Parse is Load on bytes already read. filename is used in diagnostics and
// to compute Config.Dir (the folder of its absolute path), against which
// relative command and state paths are resolved.
func Parse(filename string, src []byte, opts LoadOptions) (*Config, hcl.Diagnostics) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}

	if diags := hclx.CheckTokens(src, filename); diags.HasErrors() {
		return nil, hclx.Finish(filename, diags)
	}
	file, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() || file == nil {
		// A broken syntax tree gives misleading follow-on errors: stop here.
		return nil, hclx.Finish(filename, diags)
	}
	if d := hclx.CheckExprs(file.Body); d.HasErrors() {
		return nil, hclx.Finish(filename, append(diags, d...))
	}

	cfg := &Config{Path: filename, Dir: configDir(filename)}
	b := &builder{Builder: hclx.NewBuilder(getenv), opts: opts}
	fc, d := decodeFile(file.Body, b.Ectx)
	diags = append(diags, d...)
	b.DecodeDiags = d
	b.build(fc, cfg)
	cfg.Normalize()
	diags = hclx.Finish(filename, append(diags, b.Diags...))
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

func configDir(filename string) string {
	if abs, err := filepath.Abs(filename); err == nil {
		return filepath.Dir(abs)
	}
	return filepath.Dir(filename)
}
