package plugins

import (
	"maps"
	"slices"
)

// BaseEnv names the variables of healproxy's environment every plugin gets
// when they are set. A plugin sees nothing else of healproxy's environment
// (which holds provider keys and other secrets) but what its model block
// names: env = { NAME = "value" } and inherit_env = ["NAME"] (README,
// "Plugins in Python"; SECURITY.md).
var BaseEnv = []string{"PATH", "HOME", "LANG", "TZ"}

// defaultPath is the PATH of a plugin when healproxy runs without one.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// HandshakeEnv names the variables healproxy and go-plugin set for the
// handshake: a model block may not set them.
var HandshakeEnv = []string{
	Handshake.MagicCookieKey,
	"PLUGIN_PROTOCOL_VERSIONS",
	"PLUGIN_MIN_PORT",
	"PLUGIN_MAX_PORT",
	"PLUGIN_CLIENT_CERT",
	"PLUGIN_UNIX_SOCKET_DIR",
	"PLUGIN_UNIX_SOCKET_GROUP",
}

// Environ returns the environment of spec's plugin, before the handshake
// variables, as KEY=VALUE pairs; lookup reads healproxy's environment
// (os.LookupEnv). Later entries win:
//
//  1. BaseEnv, from lookup when set (PATH defaults to defaultPath);
//  2. spec.InheritEnv, from lookup when set;
//  3. spec.ModelEnv, in key order;
//  4. spec.Env, healproxy's own variables.
func Environ(spec Spec, lookup func(string) (string, bool)) []string {
	env := make([]string, 0, len(BaseEnv)+len(spec.InheritEnv)+len(spec.ModelEnv)+len(spec.Env))
	for _, name := range BaseEnv {
		v, ok := lookup(name)
		if !ok && name == "PATH" {
			v, ok = defaultPath, true
		}
		if ok {
			env = append(env, name+"="+v)
		}
	}
	for _, name := range spec.InheritEnv {
		if v, ok := lookup(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(spec.ModelEnv)) {
		env = append(env, name+"="+spec.ModelEnv[name])
	}
	return append(env, spec.Env...)
}
