package config

import (
	"net/url"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/internal/hclx"
)

// Endpoint models and the body timeouts of providers.
//
// A model block with endpoints points at OpenAI-compatible model servers
// (OpenAI, vLLM, TGI, Ollama, llama.cpp server, …) instead of a plugin:
//
//	model "gpt" {
//	  endpoints        = ["https://api.openai.com/v1", "http://gpu-2:8000/v1"]
//	  upstream_model   = "gpt-4o"          # "model" sent upstream; default: the key
//	  headers          = { Authorization = "Bearer ${env("OPENAI_API_KEY")}" }
//	  timeout          = "15s"             # until the first token (or the headers)
//	  idle_timeout     = "20s"             # silence between body reads; default 30s
//	  max_duration     = "5m"              # the whole call; default: none
//	  fallback         = "gpt_small"       # when this model fails, before or during its answer
//	  context_fallback = "gpt_long"        # on context_length_exceeded
//	  prefill          = true              # accepts an assistant prefill (continuation)
//	}
//
// The settings of Model, when Endpoints is set:
//
//   - Endpoints: the API base URLs ("…/v1"), at least one, at most
//     MaxUpstreams, http or https, without user info, no duplicates; tried
//     in order of health, each with its own health entry.
//   - UpstreamModel: the "model" sent upstream; default the key.
//   - Headers: sent to every endpoint. Their values are secrets, like a
//     provider's headers: never logged or shown; an empty value sends no
//     header.
//   - Timeout: an attempt until its first token (a streamed answer) or its
//     response headers (one that is not); default DefaultModelTimeout.
//   - IdleTimeout: the silence between body reads; default
//     DefaultIdleTimeout.
//   - MaxDuration: the whole call, fail-over included; 0 (the default):
//     no bound. When set, at least Timeout.
//   - Fallback and ContextFallback: keys of other endpoint models.
//     ContextFallback answers when this model says the prompt is too long
//     (context_length_exceeded).
//   - Prefill: this model continues an answer from an assistant message
//     holding its beginning.
//
// Endpoint models and plugin models do not fall back to each other: they
// answer different APIs.
//
// A provider's idle_timeout and max_duration mean the same for its
// answers: Timeout bounds the wait for the headers, IdleTimeout the
// silence between body reads, MaxDuration the whole exchange.

// IsEndpoint reports whether m is served by model servers over HTTP
// (Endpoints) rather than a plugin.
func (m *Model) IsEndpoint() bool { return len(m.Endpoints) > 0 }

// normalizeEndpoints fills an endpoint model's defaults.
func (m *Model) normalizeEndpoints() {
	if !m.IsEndpoint() {
		return
	}
	fill(&m.UpstreamModel, m.Key)
	fill(&m.IdleTimeout, DefaultIdleTimeout)
}

// endpointModel reads fm's endpoint settings into m. It reports whether
// endpoints is set (also when its value was rejected); the other
// endpoint settings are refused on a model without it. plugin says
// whether plugin or command is set too, a conflict.
func (b *builder) endpointModel(fm *fileModel, m *Model, plugin bool) bool {
	items, present, d := hclx.StringList(fm.Endpoints, b.Ectx, "endpoints")
	b.Add(d)
	failed := d.HasErrors()
	if !present && !failed {
		b.onlyWithEndpoints(fm)
		return false
	}
	if plugin {
		b.Errorf(fm.Endpoints.Range(), "Conflicting endpoints",
			"Model %s sets endpoints and a plugin or command; set exactly one of plugin, command and endpoints.", hclx.Quote(fm.Key))
		return true
	}
	if failed {
		return true
	}
	m.Endpoints = b.endpointURLs(fm, items)

	if fm.UpstreamModel != nil && b.Decoded(fm.UpstreamModelRange) {
		if *fm.UpstreamModel == "" {
			b.Errorf(fm.UpstreamModelRange, "Invalid upstream_model",
				"Model %s: upstream_model is empty; leave it out to send the key.", hclx.Quote(fm.Key))
		}
		m.UpstreamModel = *fm.UpstreamModel
	}
	m.Headers = b.HeaderMap(fm.Headers)
	if d, _ := b.DurationIn(fm.IdleTimeout, fm.IdleTimeoutRange, "idle_timeout", true, 0, 0); d != nil {
		m.IdleTimeout = *d
	}
	if d, _ := b.DurationIn(fm.MaxDuration, fm.MaxDurationRange, "max_duration", true, 0, 0); d != nil {
		m.MaxDuration = *d
		b.checkMaxDuration(*d, m.Timeout, DefaultModelTimeout, fm.MaxDurationRange)
	}
	if fm.ContextFallback != nil && *fm.ContextFallback != "" && b.Decoded(fm.ContextFallbackRange) {
		m.ContextFallback = *fm.ContextFallback // checked by checkModelKinds
	}
	if fm.Prefill != nil {
		m.Prefill = *fm.Prefill
	}
	return true
}

// checkMaxDuration refuses a max_duration shorter than the timeout (or
// its default), which would make the timeout meaningless.
func (b *builder) checkMaxDuration(maxDur, timeout, def time.Duration, rng hcl.Range) {
	if timeout == 0 {
		timeout = def
	}
	if maxDur < timeout {
		b.Errorf(rng, "Invalid max_duration",
			"max_duration %s is shorter than the timeout, %s; it bounds the whole answer, so it must be at least the timeout.", maxDur, timeout)
	}
}

// onlyWithEndpoints refuses the settings that mean something only for an
// endpoint model.
func (b *builder) onlyWithEndpoints(fm *fileModel) {
	refuse := func(name string, rng hcl.Range) {
		b.Errorf(rng, "Unexpected "+name,
			"Model %s: %s is a setting of a model with endpoints = [...] (an OpenAI-compatible model server).", hclx.Quote(fm.Key), name)
	}
	if fm.UpstreamModel != nil {
		refuse("upstream_model", fm.UpstreamModelRange)
	}
	if items, _ := hclx.StringMap(fm.Headers, b.Ectx, "headers"); items != nil {
		refuse("headers", fm.Headers.Range())
	}
	if fm.IdleTimeout != nil {
		refuse("idle_timeout", fm.IdleTimeoutRange)
	}
	if fm.MaxDuration != nil {
		refuse("max_duration", fm.MaxDurationRange)
	}
	if fm.ContextFallback != nil {
		refuse("context_fallback", fm.ContextFallbackRange)
	}
	if fm.Prefill != nil {
		refuse("prefill", fm.PrefillRange)
	}
}

func (b *builder) endpointURLs(fm *fileModel, items []hclx.StringItem) []*url.URL {
	switch {
	case len(items) == 0:
		b.Errorf(fm.Endpoints.Range(), "Empty endpoints",
			"Model %s needs at least one endpoint URL, such as \"https://api.openai.com/v1\".", hclx.Quote(fm.Key))
		return nil
	case len(items) > MaxUpstreams:
		b.Errorf(fm.Endpoints.Range(), "Too many endpoints",
			"Model %s has %d endpoints; at most %d are supported.", hclx.Quote(fm.Key), len(items), MaxUpstreams)
		return nil
	}
	var out []*url.URL
	seen := map[string]bool{}
	for _, it := range items {
		u, problem := parseUpstream(it.Value)
		if problem != "" {
			// The URL itself is not echoed: its query string may hold a secret.
			b.Errorf(it.Range, "Invalid endpoint URL", "endpoints[%d]: %s.", it.Index, problem)
			continue
		}
		key := upstreamKey(u)
		if seen[key] {
			b.Errorf(it.Range, "Duplicate endpoint URL",
				"endpoints[%d] repeats an earlier endpoint of model %s.", it.Index, hclx.Quote(fm.Key))
			continue
		}
		seen[key] = true
		out = append(out, u)
	}
	return out
}

// checkModelKinds checks, once every model is read, that fallbacks stay
// within their kind (an endpoint model's fallbacks are endpoint models, a
// plugin model's are plugin models) and that a context_fallback names
// another endpoint model. fms and models are in the same order (nil
// blocks left out of models).
func (b *builder) checkModelKinds(fms []*fileModel, models []Model) {
	byKey := map[string]*Model{}
	for i := range models {
		byKey[models[i].Key] = &models[i]
	}
	i := 0
	for _, fm := range fms {
		if fm == nil {
			continue
		}
		m := &models[i]
		i++
		if to := byKey[m.Fallback]; to != nil && to != m {
			switch from, kind := m.kind(), to.kind(); {
			case from == "" || kind == "" || from == kind: // a kind unknown was reported already
			case from == "endpoint":
				b.Errorf(fm.FallbackRange, "Invalid fallback",
					"Model %s has endpoints; its fallback %s is a plugin model, which answers a different API. Fall back to a model with endpoints.", hclx.Quote(m.Key), hclx.Quote(to.Key))
			default:
				b.Errorf(fm.FallbackRange, "Invalid fallback",
					"Model %s is a plugin model; its fallback %s has endpoints, which answer a different API. Fall back to a plugin model.", hclx.Quote(m.Key), hclx.Quote(to.Key))
			}
		}
		if m.ContextFallback == "" {
			continue
		}
		keys := make([]string, 0, len(models))
		for _, o := range models {
			keys = append(keys, o.Key)
		}
		to := byKey[m.ContextFallback]
		switch {
		case m.ContextFallback == m.Key:
			b.Errorf(fm.ContextFallbackRange, "Invalid context_fallback", "Model %s cannot fall back to itself.", hclx.Quote(m.Key))
		case to == nil:
			b.Errorf(fm.ContextFallbackRange, "Unknown context_fallback model",
				"No model %s is defined in this file.%s", hclx.Quote(m.ContextFallback), hclx.Suggest(m.ContextFallback, keys))
		case to.kind() == "plugin":
			b.Errorf(fm.ContextFallbackRange, "Invalid context_fallback",
				"Model %s: context_fallback %s is a plugin model; it must be a model with endpoints.", hclx.Quote(m.Key), hclx.Quote(to.Key))
		}
	}
}

// kind is "endpoint", "plugin" (or command), or "" for a model whose
// backend setting was rejected.
func (m *Model) kind() string {
	switch {
	case m.IsEndpoint():
		return "endpoint"
	case m.Plugin != "" || m.Command != nil:
		return "plugin"
	}
	return ""
}

// providerBodyTimeouts reads a provider's idle_timeout and max_duration.
func (b *builder) providerBodyTimeouts(fp *fileProvider, p *Provider) {
	if d, _ := b.DurationIn(fp.IdleTimeout, fp.IdleTimeoutRange, "idle_timeout", true, 0, 0); d != nil {
		p.IdleTimeout = *d
	}
	if d, _ := b.DurationIn(fp.MaxDuration, fp.MaxDurationRange, "max_duration", true, 0, 0); d != nil {
		p.MaxDuration = *d
		b.checkMaxDuration(*d, p.Timeout, DefaultProviderTimeout, fp.MaxDurationRange)
	}
}
