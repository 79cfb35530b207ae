package config

import (
	"regexp"
	"slices"
	"strings"

	"github.com/healproxy/healproxy/internal/hclx"
)

// PluginHandshakeEnv names the variables healproxy sets for the plugin
// handshake (go-plugin's cookie, protocol versions, ports, client
// certificate and socket directory). A model's env and inherit_env may not
// name them: the handshake would break, or the setting would be ignored.
var PluginHandshakeEnv = []string{
	"HEALPROXY_MODEL_PLUGIN",
	"PLUGIN_PROTOCOL_VERSIONS",
	"PLUGIN_MIN_PORT",
	"PLUGIN_MAX_PORT",
	"PLUGIN_CLIENT_CERT",
	"PLUGIN_UNIX_SOCKET_DIR",
	"PLUGIN_UNIX_SOCKET_GROUP",
}

// envNamePattern is a portable environment variable name (POSIX shells
// accept exactly these).
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// pluginEnv reads a model block's env (a map of strings) and inherit_env
// (a list of names) into m.Env and m.InheritEnv, reporting names that are
// not valid, handshake variables, repeated, or in both.
func (b *builder) pluginEnv(fm *fileModel, m *Model) {
	items, diags := hclx.StringMap(fm.Env, b.Ectx, "env")
	b.Add(diags)
	if !diags.HasErrors() && len(items) > 0 {
		m.Env = make(map[string]string, len(items))
		for _, it := range items {
			if !b.checkEnvName(fm, "env", it) {
				continue
			}
			if _, dup := m.Env[it.Key]; dup {
				b.Errorf(it.Range, "Duplicate env variable", "Model %s sets %s twice in env.", hclx.Quote(fm.Key), hclx.Quote(it.Key))
				continue
			}
			m.Env[it.Key] = it.Value
		}
	}

	names, _, diags := hclx.StringList(fm.InheritEnv, b.Ectx, "inherit_env")
	b.Add(diags)
	if diags.HasErrors() {
		return
	}
	for _, it := range names {
		it.Key = it.Value
		if !b.checkEnvName(fm, "inherit_env", it) {
			continue
		}
		switch {
		case slices.Contains(m.InheritEnv, it.Value):
			b.Errorf(it.Range, "Duplicate inherit_env variable", "Model %s lists %s twice in inherit_env.", hclx.Quote(fm.Key), hclx.Quote(it.Value))
			continue
		case m.Env != nil && hasKey(m.Env, it.Value):
			b.Errorf(it.Range, "Variable both set and inherited",
				"Model %s sets %s in env and inherits it in inherit_env; keep one (env wins over inherit_env).", hclx.Quote(fm.Key), hclx.Quote(it.Value))
			continue
		}
		m.InheritEnv = append(m.InheritEnv, it.Value)
	}
}

// checkEnvName reports whether it.Key may be set for a plugin, and a
// diagnostic when not.
func (b *builder) checkEnvName(fm *fileModel, attr string, it hclx.StringItem) bool {
	switch {
	case !envNamePattern.MatchString(it.Key):
		b.Errorf(it.Range, "Invalid environment variable name",
			"Model %s: %s in %s is not a valid environment variable name: use letters, digits and '_', not starting with a digit.", hclx.Quote(fm.Key), hclx.Quote(it.Key), attr)
		return false
	case slices.Contains(PluginHandshakeEnv, it.Key):
		b.Errorf(it.Range, "Reserved environment variable",
			"Model %s: %s is set by healproxy for the plugin handshake and cannot be set in %s (reserved: %s).", hclx.Quote(fm.Key), hclx.Quote(it.Key), attr, strings.Join(PluginHandshakeEnv, ", "))
		return false
	}
	return true
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
