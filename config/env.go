package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/internal/hclx"
)

// Environment variables that override the global health block.
const (
	EnvErrorThreshold = "HEALTH_ERROR_THRESHOLD"  // whole number >= 1
	EnvCooldown       = "HEALTH_COOLDOWN_SECONDS" // whole seconds >= 1
	EnvRecoveryCount  = "HEALTH_RECOVERY_COUNT"   // whole number >= 1
	EnvAutoReinit     = "HEALTH_AUTO_REINIT"      // true/false/1/0, any case
	EnvReinitCooldown = "HEALTH_REINIT_COOLDOWN"  // whole seconds >= 0
)

// healthPatch holds the fields of a health block that are set. Applying it
// over a Health overrides exactly those fields.
type healthPatch struct {
	ErrorThreshold      *int
	Cooldown            *time.Duration
	RecoveryCount       *int
	AutoReinit          *bool
	ReinitCooldown      *time.Duration
	MaxConcurrentReinit *int
	CooldownMultiplier  *float64
	MaxCooldown         *time.Duration
	StablePeriod        *time.Duration
}

func (p healthPatch) apply(h *Health) {
	if p.ErrorThreshold != nil {
		h.ErrorThreshold = *p.ErrorThreshold
	}
	if p.Cooldown != nil {
		h.Cooldown = *p.Cooldown
	}
	if p.RecoveryCount != nil {
		h.RecoveryCount = *p.RecoveryCount
	}
	if p.AutoReinit != nil {
		h.AutoReinit = *p.AutoReinit
	}
	if p.ReinitCooldown != nil {
		h.ReinitCooldown = *p.ReinitCooldown
	}
	if p.MaxConcurrentReinit != nil {
		h.MaxConcurrentReinit = *p.MaxConcurrentReinit
	}
	if p.CooldownMultiplier != nil {
		h.CooldownMultiplier = *p.CooldownMultiplier
	}
	if p.MaxCooldown != nil {
		h.MaxCooldown = *p.MaxCooldown
	}
	if p.StablePeriod != nil {
		h.StablePeriod = *p.StablePeriod
	}
}

// maxSeconds keeps seconds*time.Second from overflowing.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// envHealth reads the HEALTH_* variables. An empty value counts as unset.
// A malformed value is an error without a Subject naming the variable.
func envHealth(getenv func(string) (string, bool)) (healthPatch, hcl.Diagnostics) {
	var p healthPatch
	var diags hcl.Diagnostics
	lookup := func(name string) (string, bool) {
		v, ok := getenv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return "", false
		}
		return v, true
	}
	bad := func(name, raw, want string) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("%s=%s: want %s", name, hclx.Quote(raw), want),
		})
	}
	whole := func(name string, minimum, maximum int64, want string) *int64 {
		raw, ok := lookup(name)
		if !ok {
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || n < minimum || n > maximum {
			bad(name, raw, want)
			return nil
		}
		return &n
	}
	asInt := func(n *int64) *int {
		if n == nil {
			return nil
		}
		i := int(*n)
		return &i
	}
	asSeconds := func(n *int64) *time.Duration {
		if n == nil {
			return nil
		}
		d := time.Duration(*n) * time.Second
		return &d
	}

	p.ErrorThreshold = asInt(whole(EnvErrorThreshold, 1, hclx.MaxInt, "a whole number >= 1"))
	p.Cooldown = asSeconds(whole(EnvCooldown, 1, maxSeconds, "a whole number of seconds >= 1"))
	p.RecoveryCount = asInt(whole(EnvRecoveryCount, 1, hclx.MaxInt, "a whole number >= 1"))
	p.ReinitCooldown = asSeconds(whole(EnvReinitCooldown, 0, maxSeconds, "a whole number of seconds >= 0"))
	if raw, ok := lookup(EnvAutoReinit); ok {
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "true", "1":
			t := true
			p.AutoReinit = &t
		case "false", "0":
			f := false
			p.AutoReinit = &f
		default:
			bad(EnvAutoReinit, raw, "true, false, 1 or 0")
		}
	}
	return p, diags
}
