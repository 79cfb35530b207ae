package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/fakeopenai"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// endpointHCL is a config with two endpoint models: "gpt" on two fake
// model servers, falling back to "small" on a third.
func endpointHCL(a, b, c *fakeopenai.Server, state string) string {
	hcl := `
model "gpt" {
  endpoints = ["` + a.BaseURL() + `", "` + b.BaseURL() + `"]
  headers   = { Authorization = "Bearer sk-endpoint-secret" }
  timeout   = "2s"
  fallback  = "small"
}
model "small" {
  endpoints = ["` + c.BaseURL() + `"]
}
`
	if state != "" {
		hcl += "state {\n  path = \"" + state + "\"\n}\n"
	}
	return hcl
}

func newFakeModelServer(t *testing.T, word string) *fakeopenai.Server {
	t.Helper()
	f := fakeopenai.New(fakeopenai.Options{Word: word, Tokens: 12})
	t.Cleanup(f.Close)
	return f
}

// serveEndpointConfig serves a Server for hcl; close stops it (once).
func serveEndpointConfig(t *testing.T, hcl string) (s *Server, ts *httptest.Server, close func()) {
	t.Helper()
	s, err := New(proxytest.Config(t, hcl), Options{Logger: proxytest.DiscardLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts = httptest.NewServer(s)
	done := false
	close = func() {
		if done {
			return
		}
		done = true
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
	}
	t.Cleanup(close)
	return s, ts, close
}

// streamChat sends a streamed chat completion for model and returns the
// answer's text (the deltas' content, in order), whether it ended with
// [DONE], and the response.
func streamChat(t *testing.T, url, model string) (text string, done bool, resp *http.Response) {
	t.Helper()
	body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"Say the tokens."}]}`
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var ck struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ck); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		for _, c := range ck.Choices {
			sb.WriteString(c.Delta.Content)
		}
	}
	return sb.String(), done, resp
}

func healthDoc(t *testing.T, url string) api.Health {
	t.Helper()
	resp, body := proxytest.Get(t, http.DefaultClient, url+"/api/diagnostics/health")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	var doc api.Health
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("health document: %v", err)
	}
	return doc
}

func modelEntry(t *testing.T, doc api.Health, key string) api.Model {
	t.Helper()
	for _, m := range doc.Models.Entries {
		if m.ModelKey == key {
			return m
		}
	}
	t.Fatalf("no model %q in the health document", key)
	return api.Model{}
}

// TestEndpointModelsThroughTheServer: models served over HTTP answer at
// the server's /v1, and show in the health document (one sub-entry per
// endpoint), metrics, history, report and self-heal like other models;
// their endpoints' health survives a restart through the state file.
func TestEndpointModelsThroughTheServer(t *testing.T) {
	a, b, c := newFakeModelServer(t, "a"), newFakeModelServer(t, "b"), newFakeModelServer(t, "c")
	a.SetScript(fakeopenai.Always(fakeopenai.Overloaded)) // the first endpoint is down
	state := filepath.Join(t.TempDir(), "state")
	hcl := endpointHCL(a, b, c, state)
	_, ts, stop := serveEndpointConfig(t, hcl)

	text, done, resp := streamChat(t, ts.URL, "gpt")
	if want := b.Answer(); text != want || !done {
		t.Fatalf("answer %q (done %v); want %q from the second endpoint, then [DONE]", text, done, want)
	}
	if got := resp.Header.Get("X-Healproxy-Model"); got != "gpt" {
		t.Errorf("X-Healproxy-Model = %q; want gpt", got)
	}

	doc := healthDoc(t, ts.URL)
	gpt := modelEntry(t, doc, "gpt")
	if len(gpt.Upstreams) != 2 || gpt.Upstreams[0].URL != a.BaseURL() || gpt.Upstreams[1].URL != b.BaseURL() {
		t.Fatalf("gpt's upstreams = %+v; want its two endpoints in order", gpt.Upstreams)
	}
	if gpt.Upstreams[0].ErrorCount < 1 || gpt.Upstreams[1].SuccessCount != 1 {
		t.Errorf("endpoints: a error_count %d, b success_count %d; want a failure on a and a success on b",
			gpt.Upstreams[0].ErrorCount, gpt.Upstreams[1].SuccessCount)
	}
	if gpt.Status != "degraded" || !gpt.Loaded || gpt.Fallback == nil || *gpt.Fallback != "small" {
		t.Errorf("gpt: status %s, loaded %v, fallback %v; want degraded, loaded, small", gpt.Status, gpt.Loaded, gpt.Fallback)
	}
	if small := modelEntry(t, doc, "small"); small.Status != "unknown" || len(small.Upstreams) != 1 {
		t.Errorf("small: status %s with %d upstreams; want unknown (never called) with 1", small.Status, len(small.Upstreams))
	}
	if doc.Models.Summary.Total != 2 {
		t.Errorf("models summary total %d; want 2", doc.Models.Summary.Total)
	}
	if _, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/health"); strings.Contains(body, "sk-endpoint-secret") {
		t.Error("the health document shows an endpoint header's secret")
	}

	_, metrics := proxytest.Get(t, http.DefaultClient, ts.URL+"/metrics")
	if !strings.Contains(metrics, `healproxy_health_status{key="gpt",kind="model",upstream="`+a.BaseURL()+`"}`) {
		t.Error("metrics: no healproxy_health_status series for gpt's first endpoint")
	}
	if !strings.Contains(metrics, `healproxy_llm_time_to_first_token_seconds_count{model="gpt"}`) {
		t.Error("metrics: no time to first token of gpt (the gateway's metrics are not registered)")
	}
	_, report := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/report?format=csv")
	if !strings.Contains(report, "model,gpt,"+a.BaseURL()) {
		t.Errorf("report has no row for gpt's first endpoint:\n%s", report)
	}
	_, history := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/history")
	if !strings.Contains(history, `"key":"gpt","upstream":"`+a.BaseURL()+`"`) {
		t.Error("history has no entry for gpt's first endpoint")
	}
	_, models := proxytest.Get(t, http.DefaultClient, ts.URL+"/v1/models")
	if !strings.Contains(models, `"id":"gpt"`) || !strings.Contains(models, `"id":"small"`) {
		t.Errorf("/v1/models = %s; want gpt and small", models)
	}
	if r, body := proxytest.Do(t, http.DefaultClient, "POST", ts.URL+"/models/gpt/predict", strings.NewReader(`{"inputs":"x"}`), nil); r.StatusCode != http.StatusNotFound || !strings.Contains(body, "/v1/chat/completions") {
		t.Errorf("predict on an endpoint model: %d %s; want 404 pointing at /v1/chat/completions", r.StatusCode, body)
	}

	// A restart keeps the endpoints' health (the state file).
	stop()
	_, ts2, _ := serveEndpointConfig(t, hcl)
	if got := modelEntry(t, healthDoc(t, ts2.URL), "gpt").Upstreams[0].ErrorCount; got < 1 {
		t.Errorf("after a restart, a's error_count = %d; want the failure kept", got)
	}

	// Self-heal of the model clears its endpoints.
	resp, body := proxytest.Do(t, http.DefaultClient, "POST", ts2.URL+"/api/diagnostics/self-heal?model_key=gpt", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"status":"success"`) {
		t.Fatalf("self-heal: %d %s", resp.StatusCode, body)
	}
	if got := modelEntry(t, healthDoc(t, ts2.URL), "gpt").Upstreams[0].ErrorCount; got != 0 {
		t.Errorf("after self-heal, a's error_count = %d; want 0", got)
	}
}

// TestEndpointModelsReload: a reload adds, changes and removes endpoint
// models like others, and an unchanged endpoint keeps its health.
func TestEndpointModelsReload(t *testing.T) {
	a, b, c := newFakeModelServer(t, "a"), newFakeModelServer(t, "b"), newFakeModelServer(t, "c")
	a.SetScript(fakeopenai.Always(fakeopenai.Overloaded))
	s, ts, _ := serveEndpointConfig(t, endpointHCL(a, b, c, ""))
	if text, _, _ := streamChat(t, ts.URL, "gpt"); text != b.Answer() {
		t.Fatalf("answer %q; want b's", text)
	}
	// "small" goes; "gpt" keeps a and b (a's failure with it) and gains c.
	res := s.Reload(proxytest.Config(t, `
model "gpt" {
  endpoints = ["`+a.BaseURL()+`", "`+b.BaseURL()+`", "`+c.BaseURL()+`"]
  timeout   = "2s"
}
`))
	if !strings.Contains(strings.Join(res.Removed, ","), "model small") || !strings.Contains(strings.Join(res.Changed, ","), "model gpt") {
		t.Errorf("reload result %+v; want model small removed and model gpt changed", res)
	}
	gpt := modelEntry(t, healthDoc(t, ts.URL), "gpt")
	if len(gpt.Upstreams) != 3 || gpt.Upstreams[0].ErrorCount < 1 {
		t.Errorf("after the reload gpt has %d upstreams, a's error_count %d; want 3, and a's failure kept",
			len(gpt.Upstreams), gpt.Upstreams[0].ErrorCount)
	}
	if _, models := proxytest.Get(t, http.DefaultClient, ts.URL+"/v1/models"); strings.Contains(models, `"id":"small"`) {
		t.Errorf("/v1/models still lists the removed model: %s", models)
	}
}
