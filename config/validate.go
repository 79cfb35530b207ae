package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/config/corscfg"
	"github.com/healproxy/healproxy/config/statecfg"
	"github.com/healproxy/healproxy/config/tracecfg"
	"github.com/healproxy/healproxy/internal/hclx"
)

// idPattern is what provider IDs and model keys must match: they appear as
// a single URL path segment (/providers/{id}/…, /models/{key}/…).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// pluginPattern is what a plugin name must match when no list of built-in
// plugins is given.
var pluginPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

// builder turns a decoded fileConfig into a Config: defaults first, then the
// file, then the environment, validating as it goes. Every problem is
// appended to diags; it never stops at the first.
type builder struct {
	*hclx.Builder
	opts LoadOptions
}

func (b *builder) build(fc *fileConfig, cfg *Config) {
	if fc.Listen != nil && b.Decoded(fc.ListenRange) {
		cfg.Listen = *fc.Listen
		b.checkListen(*fc.Listen, fc.ListenRange)
	}

	// Global health: defaults < file < environment.
	cfg.Health = defaultHealth()
	var origin cooldownOrigin
	if fc.Health != nil {
		p := b.healthPatch(fc.Health)
		p.apply(&cfg.Health)
		b.tripRule(fc.Health, &cfg.Health) // routingfile.go
		origin = b.cooldownOrigin(origin, fc.Health, p)
	}
	envPatch, envDiags := envHealth(b.Getenv)
	b.Add(envDiags)
	envPatch.apply(&cfg.Health)
	if envPatch.Cooldown != nil {
		origin.cooldown, origin.cooldownBad, origin.fromEnv = nil, false, true
	}
	b.checkMaxCooldown(&cfg.Health, origin, false)

	if fc.Admin != nil && fc.Admin.Token != nil {
		cfg.AdminToken = *fc.Admin.Token
	}
	st := statecfg.Build(b.Builder, fc.State, cfg.Dir)
	cfg.StatePath, cfg.Replica, cfg.Shared = st.Path, st.Replica, st.Shared

	cfg.Tracing = tracecfg.Build(b.Builder, fc.Tracing)

	seen := map[string]hcl.Range{}
	for _, fp := range fc.Providers {
		if fp == nil {
			continue
		}
		b.checkName("provider ID", fp.ID, fp.IDRange, seen)
		cfg.Providers = append(cfg.Providers, b.provider(fp, cfg.Health, origin))
	}

	seen = map[string]hcl.Range{}
	var keys []string
	for _, fm := range fc.Models {
		if fm == nil {
			continue
		}
		b.checkName("model key", fm.Key, fm.KeyRange, seen)
		keys = append(keys, fm.Key)
	}
	for _, fm := range fc.Models {
		if fm == nil {
			continue
		}
		cfg.Models = append(cfg.Models, b.model(fm, cfg.Health, origin, cfg.Dir, keys))
	}
	b.checkModelKinds(fc.Models, cfg.Models) // endpoints.go

	seen = map[string]hcl.Range{}
	for _, fa := range fc.Alerts {
		if fa == nil {
			continue
		}
		b.checkName("alert name", fa.Name, fa.NameRange, seen)
		cfg.Alerts = append(cfg.Alerts, b.alert(fa))
	}
}

// defaultHealth is the health block of a file that sets nothing: the
// defaults of the settings whose zero means something (Normalize leaves
// those alone), then Normalize's.
func defaultHealth() Health {
	h := Health{
		AutoReinit:         DefaultAutoReinit,
		ReinitCooldown:     DefaultReinitCooldown,
		CooldownMultiplier: DefaultCooldownMultiplier,
		MaxCooldown:        DefaultMaxCooldown,
		StablePeriod:       DefaultStablePeriod,
	}
	h.inherit(healthDefaults())
	return h
}

// healthPatch validates a health block and returns the fields it sets.
func (b *builder) healthPatch(fh *fileHealth) healthPatch {
	var p healthPatch
	var d hcl.Diagnostics
	p.ErrorThreshold, d = hclx.Int(fh.ErrorThreshold, b.Ectx, "error_threshold", 1)
	b.Add(d)
	p.RecoveryCount, d = hclx.Int(fh.RecoveryCount, b.Ectx, "success_recovery_count", 1)
	b.Add(d)
	p.MaxConcurrentReinit, d = hclx.Int(fh.MaxConcurrentReinit, b.Ectx, "max_concurrent_reinit", 1)
	b.Add(d)
	p.Cooldown = b.Duration(fh.Cooldown, fh.CooldownRange, "cooldown", true)
	p.ReinitCooldown = b.Duration(fh.ReinitCooldown, fh.ReinitCooldownRange, "reinit_cooldown", false)
	p.AutoReinit = fh.AutoReinit
	p.CooldownMultiplier, d = hclx.Float(fh.CooldownMultiplier, b.Ectx, "cooldown_multiplier",
		fmt.Sprintf("a number from 1 (no growth) to %g", MaxCooldownMultiplier),
		func(f float64) bool { return f >= 1 && f <= MaxCooldownMultiplier })
	b.Add(d)
	p.MaxCooldown = b.Duration(fh.MaxCooldown, fh.MaxCooldownRange, "max_cooldown", true)
	p.StablePeriod = b.Duration(fh.StablePeriod, fh.StablePeriodRange, "stable_period", true)
	return p
}

// checkName validates a provider ID or model key and reports a duplicate
// at the second label.
func (b *builder) checkName(what, name string, rng hcl.Range, seen map[string]hcl.Range) {
	if !validID(name) {
		b.Errorf(rng, "Invalid "+what,
			"%s is not a valid %s: use letters, digits, '_', '.' and '-', starting with a letter or digit.", hclx.Quote(name), what)
	}
	if prev, dup := seen[name]; dup {
		b.Errorf(rng, "Duplicate "+what+" "+hclx.Quote(name),
			"previous definition at %s:%d", prev.Filename, prev.Start.Line)
		return
	}
	seen[name] = rng
}

func validID(s string) bool {
	return s != "." && s != ".." && idPattern.MatchString(s)
}

func (b *builder) provider(fp *fileProvider, global Health, origin cooldownOrigin) Provider {
	p := Provider{ID: fp.ID, Health: global} // Normalize fills Name and Timeout
	if fp.Name != nil && *fp.Name != "" {
		p.Name = *fp.Name
	}
	if d := b.Duration(fp.Timeout, fp.TimeoutRange, "timeout", true); d != nil {
		p.Timeout = *d
	}
	if fp.Health != nil {
		b.entryHealth(fp.Health, &p.Health, origin)
	}
	p.Upstreams = b.upstreams(fp)
	p.Headers = b.headers(fp)
	b.resilience(fp, &p)
	if fp.AllowTrace != nil {
		p.AllowTrace = *fp.AllowTrace
	}
	if fp.CORS != nil {
		p.CORS = corscfg.Build(b.Builder, fp.CORS, fp.ID)
	}
	b.providerBodyTimeouts(fp, &p) // endpoints.go
	b.routing(fp, &p)              // routingfile.go
	return p
}

func (b *builder) upstreams(fp *fileProvider) []*url.URL {
	items, present, d := hclx.StringList(fp.Upstreams, b.Ectx, "upstreams")
	b.Add(d)
	if !present {
		if d.HasErrors() {
			return nil
		}
		b.Errorf(fp.DefRange, "Missing upstreams",
			"Provider %s needs upstreams = [\"https://…\", …], one or more equivalent base URLs.", hclx.Quote(fp.ID))
		return nil
	}
	if len(items) == 0 && !d.HasErrors() {
		b.Errorf(fp.Upstreams.Range(), "Empty upstreams",
			"Provider %s needs at least one upstream URL.", hclx.Quote(fp.ID))
		return nil
	}
	if len(items) > MaxUpstreams {
		b.Errorf(fp.Upstreams.Range(), "Too many upstreams",
			"Provider %s has %d upstreams; at most %d are supported.", hclx.Quote(fp.ID), len(items), MaxUpstreams)
		return nil
	}
	var out []*url.URL
	seen := map[string]bool{}
	for _, it := range items {
		i := it.Index
		u, problem := parseUpstream(it.Value)
		if problem != "" {
			// The URL itself is not echoed: its query string may hold a secret.
			b.Errorf(it.Range, "Invalid upstream URL", "upstreams[%d]: %s.", i, problem)
			continue
		}
		key := upstreamKey(u)
		if seen[key] {
			b.Errorf(it.Range, "Duplicate upstream URL",
				"upstreams[%d] repeats an earlier upstream of provider %s.", i, hclx.Quote(fp.ID))
			continue
		}
		seen[key] = true
		out = append(out, u)
	}
	return out
}

// parseUpstream parses an upstream base URL. problem is "" when it is
// acceptable and never contains the URL.
func parseUpstream(s string) (u *url.URL, problem string) {
	u, problem = hclx.HTTPURL(s)
	if problem == "" && u.User != nil {
		return nil, "credentials in the URL are not supported; send them with headers = { … }"
	}
	return u, problem
}

// upstreamKey identifies upstreams that are the same endpoint.
func upstreamKey(u *url.URL) string {
	c := *u
	c.Scheme = strings.ToLower(c.Scheme)
	c.Host = strings.ToLower(c.Host)
	c.Path = strings.TrimRight(c.Path, "/")
	c.RawPath = ""
	c.ForceQuery = false
	return c.String()
}

func (b *builder) headers(fp *fileProvider) map[string]string {
	return b.HeaderMap(fp.Headers)
}

func (b *builder) model(fm *fileModel, global Health, origin cooldownOrigin, dir string, keys []string) Model {
	m := Model{Key: fm.Key, Health: global} // Normalize fills Name and Timeout
	if fm.Name != nil && *fm.Name != "" {
		m.Name = *fm.Name
	}
	if d := b.Duration(fm.Timeout, fm.TimeoutRange, "timeout", true); d != nil {
		m.Timeout = *d
	}
	if fm.Health != nil {
		b.entryHealth(fm.Health, &m.Health, origin)
	}

	cmd, cmdPresent, d := hclx.StringList(fm.Command, b.Ectx, "command")
	b.Add(d)
	cmdFailed := d.HasErrors()
	endpoints := b.endpointModel(fm, &m, fm.Plugin != nil || cmdPresent) // endpoints.go
	switch {
	case endpoints:
		// Checked by endpointModel, a conflict with plugin or command included.
	case fm.Plugin != nil && cmdPresent:
		b.Errorf(fm.Command.Range(), "Conflicting plugin and command",
			"Model %s sets both plugin and command; set exactly one.", hclx.Quote(fm.Key))
	case fm.Plugin != nil:
		m.Plugin = *fm.Plugin
		if b.Decoded(fm.PluginRange) {
			b.checkPlugin(*fm.Plugin, fm.PluginRange)
		}
	case cmdPresent && !cmdFailed:
		m.Command = b.command(fm, cmd, dir)
	case cmdPresent:
		// Already reported.
	case !cmdFailed:
		b.Errorf(fm.DefRange, "Missing plugin or command",
			"Model %s needs plugin = \"NAME\" (a built-in plugin), command = [\"./path\", …] (an external one) or endpoints = [\"https://…/v1\", …] (OpenAI-compatible model servers).", hclx.Quote(fm.Key))
	}

	if fm.Fallback != nil && *fm.Fallback != "" && b.Decoded(fm.FallbackRange) {
		m.Fallback = *fm.Fallback
		switch {
		case *fm.Fallback == fm.Key:
			b.Errorf(fm.FallbackRange, "Invalid fallback", "Model %s cannot fall back to itself.", hclx.Quote(fm.Key))
		case !slices.Contains(keys, *fm.Fallback):
			b.Errorf(fm.FallbackRange, "Unknown fallback model",
				"No model %s is defined in this file.%s", hclx.Quote(*fm.Fallback), hclx.Suggest(*fm.Fallback, keys))
		}
	}
	b.limits(fm, &m)
	b.pluginEnv(fm, &m)
	return m
}

func (b *builder) checkPlugin(name string, rng hcl.Range) {
	if b.opts.BuiltinPlugins == nil {
		if !pluginPattern.MatchString(name) {
			b.Errorf(rng, "Invalid plugin name",
				"%s is not a valid plugin name: use letters, digits, '_', '.' and '-', starting with a letter.", hclx.Quote(name))
		}
		return
	}
	if slices.Contains(b.opts.BuiltinPlugins, name) {
		return
	}
	known := "none"
	if len(b.opts.BuiltinPlugins) > 0 {
		known = strings.Join(b.opts.BuiltinPlugins, ", ")
	}
	b.Errorf(rng, "Unknown plugin",
		"No built-in plugin is named %s (built-in: %s); an external plugin binary is set with command = [...].%s", hclx.Quote(name), known, hclx.Suggest(name, b.opts.BuiltinPlugins))
}

func (b *builder) command(fm *fileModel, items []hclx.StringItem, dir string) []string {
	if len(items) == 0 {
		b.Errorf(fm.Command.Range(), "Empty command",
			"Model %s: command needs at least the program to run.", hclx.Quote(fm.Key))
		return nil
	}
	if items[0].Value == "" {
		b.Errorf(items[0].Range, "Invalid command", "Model %s: the program (command[0]) is empty.", hclx.Quote(fm.Key))
		return nil
	}
	argv := make([]string, len(items))
	for i, it := range items {
		argv[i] = it.Value
	}
	argv[0] = resolveCommand(dir, argv[0])
	return argv
}

// resolveCommand resolves a program path that names a file relative to the
// config's folder; a bare name such as "python3" is left for $PATH lookup.
func resolveCommand(dir, prog string) string {
	if filepath.IsAbs(prog) {
		return prog
	}
	if strings.HasPrefix(prog, ".") || strings.ContainsRune(prog, '/') || strings.ContainsRune(prog, filepath.Separator) {
		return filepath.Join(dir, prog)
	}
	return prog
}

func (b *builder) checkListen(addr string, rng hcl.Range) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		b.Errorf(rng, "Invalid listen address",
			"%s is not a host:port address such as \"127.0.0.1:7860\" or \":7860\": %v.", hclx.Quote(addr), err)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		b.Errorf(rng, "Invalid listen address", "%s: the port must be a number from 0 to 65535.", hclx.Quote(addr))
	}
}
