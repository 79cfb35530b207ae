package llm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/fakeopenai"
)

func TestHealthyStreamLongerThanTimeoutIsNotCut(t *testing.T) {
	// 30 tokens 25ms apart: 750ms of steady answer, five times the 150ms
	// timeout and idle_timeout.
	p := fake(t, fakeopenai.Options{Tokens: 30, TokenInterval: 25 * time.Millisecond})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	a := e.post("primary", true)
	wantComplete(t, a, fakeopenai.Answer(30))
	if a.took < 700*time.Millisecond {
		t.Fatalf("took %s; the test needs a stream longer than the timeout", a.took)
	}
	ent := e.entry("primary", 0)
	if st := ent.Export(); st.FailureTotal != 0 || st.SuccessCount != 1 || ent.Status() != breaker.Healthy {
		t.Errorf("primary %s %+v; want one success, no failure", ent.Status(), st)
	}
	if got := counter(t, e.g.metrics.tps); got != 1 {
		t.Errorf("tokens-per-second observations %v; want 1", got)
	}
	if got := counter(t, e.g.metrics.ttft); got != 1 {
		t.Errorf("time-to-first-token observations %v; want 1", got)
	}
}

func TestNonStreamed(t *testing.T) {
	t.Run("answer", func(t *testing.T) {
		p := fake(t, fakeopenai.Options{})
		e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
		a := e.post("primary", false)
		if a.status != http.StatusOK || a.text != full || a.model != "fb-primary" || a.usage == nil {
			t.Errorf("got %d %q model %q usage %+v", a.status, a.text, a.model, a.usage)
		}
		if reqs := p.Requests(); len(reqs) != 1 || reqs[0].Model != "fb-primary" || reqs[0].Stream {
			t.Errorf("upstream requests %+v; want one with the upstream_model", reqs)
		}
	})
	for _, f := range []fakeopenai.Fault{fakeopenai.Cut, fakeopenai.Stall, fakeopenai.Malformed} {
		t.Run(string(f)+" body fails over unseen", func(t *testing.T) {
			p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(f), Delay: 5 * time.Second})
			b := fake(t, fakeopenai.Options{})
			e := newEnv(t, twoModels, map[string]*fakeopenai.Server{"primary": p, "backup": b})
			a := e.post("primary", false)
			if a.status != http.StatusOK || a.text != full || a.header.Get("X-Healproxy-Model") != "backup" {
				t.Errorf("got %d %q from %q", a.status, a.text, a.header.Get("X-Healproxy-Model"))
			}
			if got := e.entry("primary", 0).Export().FailureTotal; got != 2 {
				t.Errorf("primary failures %d; want 2", got)
			}
		})
	}
}

func TestCompletionsEndpoint(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Cut)})
	b := fake(t, fakeopenai.Options{})
	e := newEnv(t, strings.Replace(twoModels, `upstream_model = "fb-ok"`, `upstream_model = "fb-ok"
  prefill = true`, 1), map[string]*fakeopenai.Server{"primary": p, "backup": b})
	a := e.do("/v1/completions", map[string]any{"model": "primary", "prompt": "Say the tokens.", "stream": true})
	wantComplete(t, a, full)
	if breqs := b.Requests(); len(breqs) != 1 || breqs[0].Path != "/v1/completions" || breqs[0].Prefill != fakeopenai.Answer(40) {
		t.Errorf("fallback requests %+v; want a continuation of the prompt", breqs)
	}
	a = e.do("/v1/completions", map[string]any{"model": "backup", "prompt": "Say the tokens."})
	if a.status != http.StatusOK || a.text != full {
		t.Errorf("non-streamed: got %d %q", a.status, a.text)
	}
}

func TestRequests(t *testing.T) {
	p := fake(t, fakeopenai.Options{})
	e := newEnv(t, oneModel+"model \"plug\" {\n  plugin = \"sentiment\"\n}\n", map[string]*fakeopenai.Server{"primary": p})
	get := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("GET", "/v1/models", "")
	var list struct {
		Object string
		Data   []struct{ ID, Object string }
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "primary" {
		t.Errorf("GET /v1/models: %d %s; want the endpoint models only", code, body)
	}
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantIn                   string
	}{
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"nope","messages":[]}`, 404, `"code":"model_not_found"`},
		{"a plugin model is not served here", "POST", "/v1/chat/completions", `{"model":"plug","messages":[]}`, 404, "model_not_found"},
		{"no model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "missing_model"},
		{"not JSON", "POST", "/v1/chat/completions", `{"model":`, 400, "invalid_json"},
		{"bad stream", "POST", "/v1/chat/completions", `{"model":"primary","stream":"yes"}`, 400, "invalid_stream"},
		{"too large", "POST", "/v1/chat/completions", `{"model":"primary","x":"` + strings.Repeat("a", DefaultMaxRequestBody) + `"}`, 413, "request_too_large"},
		{"wrong method", "GET", "/v1/chat/completions", "", 405, "method_not_allowed"},
		{"unknown path", "POST", "/v1/embeddings", "{}", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(tt.method, tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantIn) {
				t.Errorf("got %d %s; want %d with %s", code, clip(body, 200), tt.wantCode, tt.wantIn)
			}
		})
	}
	if n := len(p.Requests()); n != 0 {
		t.Errorf("the endpoint saw %d requests; want none", n)
	}
}

func TestSecretsNotShown(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Reset)})
	src := `
model "m" {
  endpoints = ["{primary}?key=sk-query-secret"]
  headers   = { Authorization = "Bearer sk-header-secret" }
  timeout   = "1s"
}
`
	e := newEnv(t, src, map[string]*fakeopenai.Server{"primary": p})
	a := e.post("m", true)
	if a.status != http.StatusBadGateway {
		t.Fatalf("got %d %s; want 502", a.status, a.body)
	}
	reqs := p.Requests()
	if len(reqs) == 0 || reqs[0].Header.Get("Authorization") != "Bearer sk-header-secret" {
		t.Fatal("the configured header was not sent")
	}
	ep := e.g.Model("m").Endpoints()[0]
	shown := string(a.body) + ep.URL
	for _, f := range ep.Health.Export().RecentFailures {
		shown += f.Message
	}
	if strings.Contains(shown, "sk-query-secret") || strings.Contains(shown, "sk-header-secret") {
		t.Errorf("a secret is shown: %s", shown)
	}
	if !strings.Contains(string(a.body), "could not reach the endpoint") {
		t.Errorf("got %s; want the error to say what happened", a.body)
	}
}

func TestFailoverBetweenEndpoints(t *testing.T) {
	down := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Overloaded)})
	up := fake(t, fakeopenai.Options{})
	src := `
model "m" {
  endpoints = ["{down}", "{up}"]
  timeout   = "1s"
  health {
    error_threshold = 2
    cooldown        = "1m"
  }
}
`
	e := newEnv(t, src, map[string]*fakeopenai.Server{"down": down, "up": up})
	for range 3 {
		wantComplete(t, e.post("m", true), full)
	}
	// The first call failed over; the second put the degraded endpoint
	// after the healthy one... which answered, so "down" saw one request
	// per call until it was unavailable.
	if s := e.entry("m", 0).Status(); s == breaker.Healthy {
		t.Errorf("the failing endpoint is %s", s)
	}
	if n := len(down.Requests()); n > 2 {
		t.Errorf("the failing endpoint saw %d requests; want it tried first only while healthy", n)
	}
	if s := e.g.Model("m").Status(); s != breaker.Degraded {
		t.Errorf("model status %s; want degraded (one endpoint down, one up)", s)
	}
}

func TestReconfigureKeepsHealth(t *testing.T) {
	p := fake(t, fakeopenai.Options{Script: fakeopenai.Always(fakeopenai.Overloaded)})
	q := fake(t, fakeopenai.Options{})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	e.post("primary", true)
	old := e.entry("primary", 0)
	if old.Export().ErrorCount != 2 {
		t.Fatalf("error_count %d; want 2", old.Export().ErrorCount)
	}
	src := strings.ReplaceAll(`
model "primary" {
  endpoints = ["{primary}", "{second}"]
  timeout   = "2s"
}
model "added" {
  endpoints = ["{second}"]
}
`, "{primary}", p.BaseURL())
	src = strings.ReplaceAll(src, "{second}", q.BaseURL())
	cfg, diags := config.Parse("x.hcl", []byte(src), config.LoadOptions{Getenv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	ch := e.g.Reconfigure(cfg.Models)
	if len(ch.Added) != 1 || ch.Added[0] != "added" || len(ch.Changed) != 1 || ch.Changed[0] != "primary" {
		t.Errorf("changes %+v", ch)
	}
	if id := e.g.Model("primary").Endpoints()[0].ID(); len(id) != 24 || id == e.g.Model("primary").Endpoints()[1].ID() || strings.Contains(p.BaseURL(), id) {
		t.Errorf("endpoint ids %q", id)
	}
	if e.entry("primary", 0) != old || old.Export().ErrorCount != 2 {
		t.Error("the unchanged endpoint lost its health entry")
	}
	if old.Settings().ErrorThreshold != config.DefaultErrorThreshold {
		t.Errorf("new health settings not applied: %+v", old.Settings())
	}
	e.g.Model("primary").SelfHeal()
	if st := old.Export(); st.ErrorCount != 0 || old.Status() != breaker.Healthy {
		t.Errorf("after self-heal: %s %+v", old.Status(), st)
	}
	ch = e.g.Reconfigure(nil)
	if len(ch.Removed) != 2 || e.g.Model("primary") != nil {
		t.Errorf("changes %+v", ch)
	}
}

func TestClientLeavesNotCounted(t *testing.T) {
	p := fake(t, fakeopenai.Options{Tokens: 40, TokenInterval: 20 * time.Millisecond})
	e := newEnv(t, oneModel, map[string]*fakeopenai.Server{"primary": p})
	body, _ := json.Marshal(map[string]any{"model": "primary", "stream": true, "messages": []any{}})
	resp, err := http.Post(e.srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	resp.Body.Read(buf)
	resp.Body.Close() // the client leaves mid-answer
	ent := e.entry("primary", 0)
	gone := e.g.metrics.attempts.WithLabelValues("primary", e.g.Model("primary").Endpoints()[0].URL, "gone")
	for deadline := time.Now().Add(3 * time.Second); counter(t, gone) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not notice the client leaving")
		}
	}
	if st := ent.Export(); st.FailureTotal != 0 {
		t.Errorf("a client that left counted against the endpoint: %+v", st)
	}
}
