package config

import (
	"reflect"
	"testing"
)

func TestPluginEnv(t *testing.T) {
	src := `
provider "p" {
  upstreams = ["http://127.0.0.1:1"]
  headers   = { Authorization = env("PROVIDER_KEY") }
}
model "py" {
  command     = ["/usr/bin/python3", "/opt/model/model.py"]
  env         = { HF_HOME = "/var/cache/hf", TOKEN = env("MODEL_TOKEN"), PATH = "/opt/venv/bin:/usr/bin" }
  inherit_env = ["CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"]
}
model "plain" {
  plugin = "sentiment"
}
`
	cfg := mustParse(t, "env.hcl", src, map[string]string{"PROVIDER_KEY": "sk-secret", "MODEL_TOKEN": "tok"})
	py, plain := cfg.Models[0], cfg.Models[1]
	wantEnv := map[string]string{"HF_HOME": "/var/cache/hf", "TOKEN": "tok", "PATH": "/opt/venv/bin:/usr/bin"}
	if !reflect.DeepEqual(py.Env, wantEnv) {
		t.Errorf("got Env %v; want %v", py.Env, wantEnv)
	}
	if want := []string{"CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"}; !reflect.DeepEqual(py.InheritEnv, want) {
		t.Errorf("got InheritEnv %q; want %q", py.InheritEnv, want)
	}
	if plain.Env != nil || plain.InheritEnv != nil {
		t.Errorf("model without env: got Env %v, InheritEnv %q; want nil, nil", plain.Env, plain.InheritEnv)
	}
}

func TestPluginEnvInvalid(t *testing.T) {
	tests := []struct {
		name string
		attr string
		want []string
	}{
		{"bad name in env", `env = { "1X" = "a" }`,
			[]string{`bad.hcl:4:11: Invalid environment variable name; Model "m": "1X" in env is not a valid`}},
		{"name with '='", `env = { "A=B" = "a" }`,
			[]string{`bad.hcl:4:11: Invalid environment variable name`}},
		{"cookie in env", `env = { HEALPROXY_MODEL_PLUGIN = "x" }`,
			[]string{`bad.hcl:4:11: Reserved environment variable; Model "m": "HEALPROXY_MODEL_PLUGIN" is set by healproxy for the plugin handshake`}},
		{"socket dir in env", `env = { PLUGIN_UNIX_SOCKET_DIR = "/tmp" }`,
			[]string{`bad.hcl:4:11: Reserved environment variable`}},
		{"client cert inherited", `inherit_env = ["PLUGIN_CLIENT_CERT"]`,
			[]string{`bad.hcl:4:18: Reserved environment variable; Model "m": "PLUGIN_CLIENT_CERT" is set by healproxy for the plugin handshake and cannot be set in inherit_env`}},
		{"bad inherited name", `inherit_env = ["CUDA-DEVICES"]`,
			[]string{`bad.hcl:4:18: Invalid environment variable name`}},
		{"inherited twice", `inherit_env = ["A", "A"]`,
			[]string{`bad.hcl:4:23: Duplicate inherit_env variable`}},
		{"set and inherited", "env = { A = \"1\" }\n  inherit_env = [\"A\"]",
			[]string{`bad.hcl:5:18: Variable both set and inherited`}},
		{"env not a map", `env = ["A"]`,
			[]string{`bad.hcl:4:9: Invalid env; Want a map of strings`}},
		{"value not a string", `env = { A = ["x"] }`,
			[]string{`bad.hcl:4:15: Invalid env; The value of "A" must be a string`}},
		{"inherit_env not a list", `inherit_env = "A"`,
			[]string{`bad.hcl:4:17: Invalid inherit_env`}},
		{"two problems, both reported", "env = { \"-\" = \"1\", PLUGIN_MIN_PORT = \"2\" }",
			[]string{`bad.hcl:4:11: Invalid environment variable name`, `bad.hcl:4:22: Reserved environment variable`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "\nmodel \"m\" {\n  plugin = \"sentiment\"\n  " + tt.attr + "\n}\n"
			wantDiagnostics(t, mustFail(t, "bad.hcl", src, nil), tt.want)
		})
	}
}
