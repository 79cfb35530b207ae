package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/healproxy/healproxy/config"
)

func TestEnviron(t *testing.T) {
	host := map[string]string{
		"PATH": "/host/bin", "HOME": "/home/hp", "LANG": "C.UTF-8",
		"OPENAI_API_KEY": "sk-secret", "CUDA_VISIBLE_DEVICES": "0,1",
	}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	spec := Spec{
		Env:        []string{"HEALPROXY_OWN=1"},
		ModelEnv:   map[string]string{"HF_HOME": "/var/cache/hf", "PATH": "/opt/venv/bin"},
		InheritEnv: []string{"CUDA_VISIBLE_DEVICES", "NOT_SET_ANYWHERE"},
	}
	got := Environ(spec, lookup)
	want := []string{
		"PATH=/host/bin", "HOME=/home/hp", "LANG=C.UTF-8", // TZ unset: absent
		"CUDA_VISIBLE_DEVICES=0,1",
		"HF_HOME=/var/cache/hf", "PATH=/opt/venv/bin", // key order; exec keeps the last PATH
		"HEALPROXY_OWN=1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, kv := range got {
		if strings.Contains(kv, "sk-secret") {
			t.Errorf("a host secret reached the plugin's environment: %q", kv)
		}
	}
	// Without a PATH, the plugin still finds the usual programs.
	if got := Environ(Spec{}, func(string) (string, bool) { return "", false }); !slices.Equal(got, []string{"PATH=" + defaultPath}) {
		t.Errorf("no host PATH: got %q", got)
	}
}

// TestPluginEnvironment runs a plugin and reads its environment from
// /proc: the minimal set, the model's env and inherit_env, the handshake,
// and none of healproxy's other variables.
func TestPluginEnvironment(t *testing.T) {
	requireLinux(t)
	t.Setenv("HEALPROXY_TEST_PROVIDER_KEY", "sk-do-not-leak")
	t.Setenv("CUDA_VISIBLE_DEVICES", "3")
	logger, _ := testLogger(t)
	spec := testSpec("sentiment")
	spec.ModelEnv = map[string]string{"HF_HOME": "/var/cache/hf"}
	spec.InheritEnv = []string{"CUDA_VISIBLE_DEVICES"}
	p, err := Start(t.Context(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for kv := range strings.SplitSeq(strings.TrimRight(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, want := range map[string]string{"HF_HOME": "/var/cache/hf", "CUDA_VISIBLE_DEVICES": "3", testPluginEnv: "sentiment", "PATH": os.Getenv("PATH")} {
		if env[k] != want {
			t.Errorf("plugin sees %s=%q; want %q", k, env[k], want)
		}
	}
	if _, ok := env["HEALPROXY_TEST_PROVIDER_KEY"]; ok {
		t.Error("plugin sees HEALPROXY_TEST_PROVIDER_KEY from healproxy's environment; want it hidden")
	}
	allowed := append(append(append([]string{}, BaseEnv...), HandshakeEnv...), "HF_HOME", "CUDA_VISIBLE_DEVICES", testPluginEnv)
	for k := range env {
		if !slices.Contains(allowed, k) {
			t.Errorf("plugin sees %s; want only %q", k, allowed)
		}
	}
}

// TestHandshakeEnvMatchesConfig: config refuses exactly the variables the
// handshake sets (config imports nothing of the repository, so it keeps
// its own list).
func TestHandshakeEnvMatchesConfig(t *testing.T) {
	if !slices.Equal(HandshakeEnv, config.PluginHandshakeEnv) {
		t.Errorf("plugins.HandshakeEnv %q != config.PluginHandshakeEnv %q", HandshakeEnv, config.PluginHandshakeEnv)
	}
}

func TestBadInputTranslated(t *testing.T) {
	live := context.Background()
	err := translateError(live, live, "Predict", status.Error(codes.InvalidArgument, "text too long"))
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "text too long") {
		t.Errorf("got %v; want ErrBadInput with the plugin's message", err)
	}
	// A Go plugin returning ErrBadInput reaches the host as ErrBadInput.
	back := translateError(live, live, "Predict", statusFromError(fmt.Errorf("%w: empty text", ErrBadInput)))
	if !errors.Is(back, ErrBadInput) {
		t.Errorf("round trip: got %v; want ErrBadInput", back)
	}
}
