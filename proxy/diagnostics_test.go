package proxy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/healproxy/healproxy/internal/proxytest"
)

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func wantKeys(t *testing.T, what string, m map[string]json.RawMessage, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keysOf(m); !slices.Equal(got, want) {
		t.Errorf("%s has fields %v; want %v", what, got, want)
	}
}

func TestDiagnosticsHealthFields(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL+"/base?k=v"), 2, time.Minute, 1))
	for range 2 {
		proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	}
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/health")
	if g, w := resp.Header.Get("Content-Type"), "application/json"; g != w {
		t.Errorf("got Content-Type %q; want %q", g, w)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	// replica: which replica answered; shared_state only with state.redis
	wantKeys(t, "the document", doc, "status", "timestamp", "providers", "models", "overall_health", "replica")
	var ts0 string
	json.Unmarshal(doc["timestamp"], &ts0)
	if _, err := time.Parse(time.RFC3339, ts0); err != nil || !strings.HasSuffix(ts0, "Z") {
		t.Errorf("got timestamp %q; want RFC 3339 UTC", ts0)
	}
	var providers map[string]json.RawMessage
	json.Unmarshal(doc["providers"], &providers)
	wantKeys(t, "providers", providers, "summary", "entries")
	var summary map[string]json.RawMessage
	json.Unmarshal(providers["summary"], &summary)
	wantKeys(t, "the summary", summary, "total", "healthy", "degraded", "unavailable", "unknown", "in_cooldown")
	var overall map[string]json.RawMessage
	json.Unmarshal(doc["overall_health"], &overall)
	wantKeys(t, "overall_health", overall, "providers_ok", "models_ok")

	var entries []map[string]json.RawMessage
	json.Unmarshal(providers["entries"], &entries)
	if len(entries) != 1 {
		t.Fatalf("got %d provider entries; want 1", len(entries))
	}
	wantKeys(t, "the provider entry", entries[0], "provider_id", "name", "status", "error_count", "success_count",
		"last_success", "last_error", "last_error_message", "cooldown_until", "in_cooldown", "upstreams",
		"reason", "next_trial_at") // beyond the contract: the entry explains itself
	var ups []map[string]json.RawMessage
	json.Unmarshal(entries[0]["upstreams"], &ups)
	if len(ups) != 1 {
		t.Fatalf("got %d upstream entries; want 1", len(ups))
	}
	for _, k := range []string{"url", "status", "error_count", "cooldown_until", "reason", "recent_failures", "next_trial_at"} {
		if _, ok := ups[0][k]; !ok {
			t.Errorf("upstream entry lacks %q (has %v)", k, keysOf(ups[0]))
		}
	}

	p := fetchProvider(t, ts.URL, "p")
	u := p.Upstreams[0]
	if g, w := u.URL, up.URL+"/base"; g != w {
		t.Errorf("got upstream url %q; want %q (no query string)", g, w)
	}
	if p.Name != "Provider p" || p.Status != "unavailable" {
		t.Errorf("got name %q, status %s; want %q, unavailable", p.Name, p.Status, "Provider p")
	}
	if u.Reason == "" || !strings.Contains(u.Reason, "2") {
		t.Errorf("got reason %q; want it to say the threshold of 2 was reached", u.Reason)
	}
	if len(u.RecentFailures) != 2 {
		t.Fatalf("got %d recent failures; want 2", len(u.RecentFailures))
	}
	for _, f := range u.RecentFailures {
		if f.Kind != "status" || f.StatusCode != 500 || !strings.Contains(f.Message, "500") || f.Time.IsZero() {
			t.Errorf("got failure %+v; want kind status, status_code 500, a message and a time", f)
		}
	}
	if u.RecentFailures[0].Time.Before(u.RecentFailures[1].Time) {
		t.Errorf("recent_failures %v, %v; want newest first", u.RecentFailures[0].Time, u.RecentFailures[1].Time)
	}
	next := parseStamp(t, "next_trial_at", u.NextTrialAt)
	until := parseStamp(t, "cooldown_until", u.CooldownUntil)
	if !next.Equal(until) {
		t.Errorf("got next_trial_at %v; want the end of the cooldown %v", next, until)
	}
	if d := time.Until(next); d <= 0 || d > time.Minute {
		t.Errorf("next trial is %v away; want within the minute of cooldown", d)
	}
	parseStamp(t, "last_error", p.LastError)
	if p.LastSuccess != nil {
		t.Errorf("got last_success %q; want null", *p.LastSuccess)
	}
}

func TestDiagnosticsSelfHealProvider(t *testing.T) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 1, time.Hour, 2))
	c := ts.Client()
	proxytest.Get(t, c, ts.URL+"/providers/p/x")
	if p := fetchProvider(t, ts.URL, "p"); p.Status != "unavailable" {
		t.Fatalf("got %s; want unavailable before self-heal", p.Status)
	}
	up.Code.Store(200)

	resp, body := proxytest.Do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=p", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("self-heal: got status %d; want 200 (body %s)", resp.StatusCode, body)
	}
	var heal struct {
		Status  string `json:"status"`
		Results []struct {
			ProviderID string `json:"provider_id"`
			Status     string `json:"status"`
			Message    string `json:"message"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &heal); err != nil {
		t.Fatal(err)
	}
	if len(heal.Results) != 1 || heal.Results[0].ProviderID != "p" || heal.Results[0].Status != "success" || heal.Results[0].Message == "" {
		t.Errorf("got %s; want one result {provider_id p, status success, message}", body)
	}
	p := fetchProvider(t, ts.URL, "p")
	if p.Status != "healthy" || p.ErrorCount != 0 || p.InCooldown || p.Upstreams[0].CooldownUntil != nil {
		t.Errorf("after self-heal got %s, error_count %d, in_cooldown %v; want healthy, 0, false", p.Status, p.ErrorCount, p.InCooldown)
	}
	if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/p/x"); resp.StatusCode != 200 {
		t.Errorf("after self-heal got %d; want 200 from the upstream", resp.StatusCode)
	}

	resp, body = proxytest.Do(t, c, "POST", ts.URL+"/api/diagnostics/self-heal?provider_id=nope", nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("self-heal of an unknown provider: got %d; want 404", resp.StatusCode)
	}
	if e := decodeError(t, body); e.Status != "error" || e.Error == "" {
		t.Errorf("got body %s; want a JSON error", body)
	}
}

func TestDiagnosticsHealthz(t *testing.T) {
	_, ts := startProviders(t)
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/healthz")
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("GET /healthz: got %d %q; want 200 ok", resp.StatusCode, body)
	}
	if h := fetchHealth(t, ts.URL); h.Status != "success" || h.Providers.Summary.Total != 0 || !h.Overall.ProvidersOK {
		t.Errorf("empty config: got %+v; want success, no providers, providers_ok", h)
	}
}

func TestDiagnosticsMetrics(t *testing.T) {
	up := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.WithHealth(proxytest.Provider(t, "p", up.URL+"/v1?key=hidden"), 2, time.Minute, 1))
	c := ts.Client()
	proxytest.Get(t, c, ts.URL+"/providers/p/a")
	up.Code.Store(404)
	proxytest.Get(t, c, ts.URL+"/providers/p/a")
	up.Code.Store(500)
	proxytest.Get(t, c, ts.URL+"/providers/p/a")
	proxytest.Get(t, c, ts.URL+"/providers/p/a")

	resp, body := proxytest.Get(t, c, ts.URL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: got %d; want 200", resp.StatusCode)
	}
	if strings.Contains(body, "hidden") {
		t.Errorf("metrics show the upstream's query string")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics are not Prometheus text: %v", err)
	}
	var mfs []*dto.MetricFamily
	for _, mf := range fams {
		mfs = append(mfs, mf)
	}
	display := up.URL + "/v1"
	lbl := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"healproxy_upstream_requests_total", lbl("provider", "p", "upstream", display, "code", "200"), 1},
		{"healproxy_upstream_requests_total", lbl("provider", "p", "upstream", display, "code", "404"), 1},
		{"healproxy_upstream_requests_total", lbl("provider", "p", "upstream", display, "code", "500"), 2},
		{"healproxy_upstream_request_duration_seconds", lbl("provider", "p", "upstream", display), 4},
		{"healproxy_health_status", lbl("kind", "provider", "key", "p", "upstream", display), 3},
		{"healproxy_health_error_count", lbl("kind", "provider", "key", "p", "upstream", display), 2},
		{"healproxy_health_transitions_total", lbl("kind", "provider", "key", "p", "from", "unknown", "to", "healthy"), 1},
		{"healproxy_health_transitions_total", lbl("kind", "provider", "key", "p", "from", "healthy", "to", "degraded"), 1},
		{"healproxy_health_transitions_total", lbl("kind", "provider", "key", "p", "from", "degraded", "to", "unavailable"), 1},
	}
	for _, tt := range tests {
		if got := proxytest.SumMetric(mfs, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if rem := proxytest.SumMetric(mfs, "healproxy_health_cooldown_remaining_seconds", lbl("key", "p")); rem <= 0 || rem > 60 {
		t.Errorf("healproxy_health_cooldown_remaining_seconds = %v; want within (0, 60]", rem)
	}
	if mf := fams["healproxy_upstream_request_duration_seconds"]; mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("healproxy_upstream_request_duration_seconds is %v; want a histogram", mf.GetType())
	}
}
