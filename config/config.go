// Package config turns a healproxy HCL file into a typed, validated Config.
//
// Loading runs in three steps, each of which appends to one hcl.Diagnostics
// list so that a user sees every problem at once:
//
//	decode (gohcl) → applyDefaults (this file, the only place defaults live)
//	→ the HEALTH_* environment overrides → validate
//
// Config values are immutable once Load returns; a reload builds a new one.
package config

import (
	"net/url"
	"time"
)

// Built-in defaults. Every default of the configuration lives here.
const (
	DefaultListen              = "127.0.0.1:7860"
	DefaultErrorThreshold      = 3
	DefaultCooldown            = 5 * time.Minute
	DefaultRecoveryCount       = 2
	DefaultAutoReinit          = true
	DefaultReinitCooldown      = 10 * time.Minute
	DefaultMaxConcurrentReinit = 5
	DefaultProviderTimeout     = 10 * time.Second
	DefaultModelTimeout        = 10 * time.Second
)

// Config is a loaded, validated configuration.
type Config struct {
	// Path is the file it was loaded from; Dir is that file's folder, from
	// which relative plugin commands are resolved.
	Path, Dir string

	// Listen is the address to serve on. Default DefaultListen.
	Listen string

	// Health is the global health block after the HEALTH_* environment
	// overrides; providers and models start from it.
	Health Health

	// AdminToken, when not empty, is required as a Bearer token on admin
	// endpoints. Empty means admin endpoints answer loopback clients only.
	AdminToken string

	// StatePath, when not empty, is where health state is persisted.
	StatePath string

	// Providers and Models keep the order of the file.
	Providers []Provider
	Models    []Model
}

// Health holds the health-model settings of CONTRACT section 3.
type Health struct {
	ErrorThreshold      int           // T; default 3; >= 1
	Cooldown            time.Duration // C; default 5m; > 0
	RecoveryCount       int           // R; default 2; >= 1
	AutoReinit          bool          // default true
	ReinitCooldown      time.Duration // default 10m; >= 0
	MaxConcurrentReinit int           // default 5; >= 1
}

// Provider is one upstream API with one or more equivalent endpoints.
type Provider struct {
	ID        string
	Name      string     // default: ID
	Upstreams []*url.URL // at least one; http or https; no fragment
	Timeout   time.Duration
	// Headers are injected into every upstream request. Their values are
	// secrets: they must never be logged or shown. A header whose value is
	// empty in the file (typically env() of an unset variable) is left out.
	Headers map[string]string
	Health  Health
}

// Model is one model backend served by a go-plugin subprocess. Exactly one
// of Plugin (a built-in plugin name) and Command (argv of an external plugin
// binary, argv[0] already resolved against Config.Dir) is set.
type Model struct {
	Key      string
	Name     string // default: Key
	Plugin   string
	Command  []string
	Timeout  time.Duration
	Fallback string // "" or the key of another model
	Health   Health
}

// Provider returns the provider with that id, or nil.
func (c *Config) Provider(id string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].ID == id {
			return &c.Providers[i]
		}
	}
	return nil
}

// Model returns the model with that key, or nil.
func (c *Config) Model(key string) *Model {
	for i := range c.Models {
		if c.Models[i].Key == key {
			return &c.Models[i]
		}
	}
	return nil
}
