package chaos

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
)

func testHealth() *api.Health {
	h := &api.Health{}
	h.Providers.Entries = []api.Provider{
		{ProviderID: "pair", Upstreams: []api.Upstream{{URL: "http://a"}, {URL: "http://b"}}},
		{ProviderID: "solo", Upstreams: []api.Upstream{{URL: "http://c"}}},
	}
	h.Models.Entries = []api.Model{{ModelKey: "s1"}, {ModelKey: "s2"}}
	return h
}

func TestSelectTargets(t *testing.T) {
	tests := []struct {
		name string
		only []string
		want string
	}{
		{"all", nil, "provider/pair/0 provider/pair/1 provider/solo/0 model/s1 model/s2"},
		{"a provider", []string{"provider/pair"}, "provider/pair/0 provider/pair/1"},
		{"an upstream", []string{"provider/pair/1"}, "provider/pair/1"},
		{"a model and an upstream", []string{"model/s2", " provider/solo/0/"}, "provider/solo/0 model/s2"},
		{"nothing matches", []string{"model/nope", "provider/pair/7"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tg := range selectTargets(testHealth(), tt.only) {
				got = append(got, tg.String())
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("got %q; want %q", g, tt.want)
			}
		})
	}
}

// TestLocalPlugin: a pid is killed only for a proxy on loopback and only
// when it is a healproxy plugin here.
func TestLocalPlugin(t *testing.T) {
	if why := localPlugin("http://192.0.2.10:7860", os.Getpid()); !strings.Contains(why, "not on this machine") {
		t.Errorf("remote proxy: %q; want it refused as not on this machine", why)
	}
	if why := localPlugin("http://127.0.0.1:7860", os.Getpid()); !strings.Contains(why, "not a healproxy model plugin") {
		t.Errorf("this test process: %q; want it refused as not a plugin", why)
	}
	if why := localPlugin("http://localhost:7860", 1<<30); !strings.Contains(why, "does not exist") {
		t.Errorf("no such pid: %q", why)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{URL: "http://127.0.0.1:7860/"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.URL != "http://127.0.0.1:7860" || o.Hold != 10*time.Second || o.Heal != "auto" || o.Fault.Kind != "error" || o.Path != "/" {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range []Options{{URL: "127.0.0.1:7860"}, {URL: "http://x", Heal: "maybe"}, {URL: "http://x", Hold: time.Hour}} {
		if err := bad.defaults(); err == nil {
			t.Errorf("%+v: accepted; want an error", bad)
		}
	}
}

func TestReportWrite(t *testing.T) {
	rep := &Report{Poll: 50 * time.Millisecond, Targets: []Result{
		{Target: "provider/solo/0", What: "http://c", Fault: "error 503", Detected: 40 * time.Millisecond, DetectedAs: "degraded",
			Unavailable: 90 * time.Millisecond, Recovered: 1500 * time.Millisecond, RecoveredBy: "recovery trials after the cooldown",
			Probes: 30, Errors: map[string]int{"503 Service Unavailable": 7}},
		{Target: "model/s1", Skipped: "the proxy at example:7860 is not on this machine"},
		{Target: "provider/pair/1", Fault: "abort", Detected: -1, Unavailable: -1, Recovered: -1},
	}}
	var b strings.Builder
	rep.Write(&b)
	out := b.String()
	for _, want := range []string{
		"detected:  degraded after 40ms, unavailable after 90ms",
		"recovered: healthy 1.5s after the fault was removed, by recovery trials",
		"7 × 503 Service Unavailable",
		"skipped: the proxy at example:7860 is not on this machine",
		"NOT DETECTED", "NOT RECOVERED",
		"model/s1         skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if rep.OK() {
		t.Errorf("a report with an undetected target is OK")
	}
}
