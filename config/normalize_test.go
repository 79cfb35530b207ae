package config

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A loaded Config is already normalized, and a Config built by hand gets
// from Normalize the defaults a file that leaves its settings out gets,
// except those whose zero means something.
func TestNormalize(t *testing.T) {
	src := `
provider "p" {
  upstreams = ["http://a", "http://b"]
  health_check {}
  cache {}
}
alert "ops" { webhook = "http://hook" }
`
	loaded, diags := Parse("x.hcl", []byte(src), LoadOptions{Getenv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	again := *loaded
	again.Providers = append([]Provider(nil), loaded.Providers...)
	again.Normalize()
	if !reflect.DeepEqual(&again, loaded) {
		t.Errorf("Normalize changed a loaded Config:\n%+v\nwant\n%+v", again, *loaded)
	}

	lp := loaded.Providers[0]
	hand := &Config{
		Providers: []Provider{{ID: "p", Upstreams: lp.Upstreams, HealthCheck: &HealthCheck{}, Cache: &Cache{},
			// the settings whose zero means something, as the file's defaults
			MaxRequestBody: DefaultMaxRequestBody,
			Retry:          Retry{Backoff: DefaultRetryBackoff, MaxBackoff: DefaultRetryMaxBackoff},
		}},
		Alerts: []Alert{{Name: "ops", Webhook: loaded.Alerts[0].Webhook, MinInterval: DefaultAlertMinInterval}},
	}
	hand.Health = Health{AutoReinit: true, ReinitCooldown: DefaultReinitCooldown, CooldownMultiplier: DefaultCooldownMultiplier,
		MaxCooldown: DefaultMaxCooldown, StablePeriod: DefaultStablePeriod}
	hand.Providers[0].Health = hand.Health
	hand.Normalize()
	hand.Path, hand.Dir = loaded.Path, loaded.Dir
	if !reflect.DeepEqual(hand, loaded) {
		t.Errorf("Normalize of a Config built by hand:\n%+v\nwant\n%+v", *hand, *loaded)
	}

	// Zero values that mean something are kept.
	z := &Config{Providers: []Provider{{ID: "z", Upstreams: []*url.URL{{Scheme: "http", Host: "a"}}}}}
	if err := z.CheckNormalized(); err == nil || !strings.Contains(err.Error(), `provider "z": mode is zero`) {
		t.Errorf("CheckNormalized before Normalize: %v", err)
	}
	z.Normalize()
	if err := z.CheckNormalized(); err != nil {
		t.Errorf("CheckNormalized after Normalize: %v", err)
	}
	p := z.Providers[0]
	if p.Retry.Backoff != 0 || p.Retry.MaxBackoff != 0 || p.MaxRequestBody != 0 || p.SlowCallThreshold != 0 ||
		p.AllDown.Wait != 0 || p.Health.CooldownMultiplier != 0 || p.Health.AutoReinit || p.HealthCheck != nil || p.Cache != nil {
		t.Errorf("Normalize filled a meaningful zero: %+v", p)
	}
	if p.Retry.Attempts != 1 || p.Health.Cooldown != DefaultCooldown || p.Timeout != 10*time.Second {
		t.Errorf("Normalize left a zero: %+v", p)
	}
}
