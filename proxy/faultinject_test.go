package proxy

// Fault injection: /api/admin/fault and Upstream.send.

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// faultCall sends an admin request to /api/admin/fault with query and an
// optional JSON body, from a loopback client.
func faultCall(t *testing.T, ts *httptest.Server, method, query, body string) (int, string) {
	t.Helper()
	resp, raw := adminCall(t, ts, method, "/api/admin/fault"+query, body, "")
	return resp.StatusCode, raw
}

// faultOf reads upstream u of provider id's fault from the health document.
func faultOf(t *testing.T, ts *httptest.Server, id, u string) (status string, f *api.Fault) {
	t.Helper()
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/health")
	if resp.StatusCode != 200 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	var doc struct {
		Providers struct {
			Entries []struct {
				ProviderID string `json:"provider_id"`
				Upstreams  []struct {
					URL    string           `json:"url"`
					Status string           `json:"status"`
					Fault  *json.RawMessage `json:"fault"`
				} `json:"upstreams"`
			} `json:"entries"`
		} `json:"providers"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Providers.Entries {
		for _, up := range p.Upstreams {
			if p.ProviderID != id || up.URL != u {
				continue
			}
			if !strings.Contains(body, `"fault":`) {
				t.Fatalf("the health document has no fault field: %s", body)
			}
			if up.Fault == nil || string(*up.Fault) == "null" {
				return up.Status, nil
			}
			f = &api.Fault{}
			if err := json.Unmarshal(*up.Fault, f); err != nil {
				t.Fatal(err)
			}
			return up.Status, f
		}
	}
	t.Fatalf("no upstream %s of provider %s in the health document", u, id)
	return "", nil
}

// TestFaultAdminOnly: the fault endpoint is an admin endpoint like the
// others: a token when one is set, loopback otherwise.
func TestInjectedFaultAdminOnly(t *testing.T) {
	body := `{"kind": "error", "ttl": "1m"}`
	tests := []struct {
		name     string
		token    string
		method   string
		remote   string
		auth     string
		wantCode int
	}{
		{"token set, none sent", "s3cret", "POST", "127.0.0.1:1234", "", 401},
		{"token set, wrong one", "s3cret", "POST", "127.0.0.1:1234", "Bearer nope", 401},
		{"token set, wrong one on DELETE", "s3cret", "DELETE", "127.0.0.1:1234", "Bearer nope", 401},
		{"token set, wrong one on GET", "s3cret", "GET", "127.0.0.1:1234", "", 401},
		{"token set, right one", "s3cret", "POST", "192.0.2.1:1234", "Bearer s3cret", 200},
		{"no token, remote client", "", "POST", "192.0.2.1:1234", "", 403},
		{"no token, remote client DELETE", "", "DELETE", "192.0.2.1:1234", "", 403},
		{"no token, loopback client", "", "POST", "127.0.0.1:1234", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAdminTestServer(t, tt.token)
			req := httptest.NewRequest(tt.method, "/api/admin/fault?provider=p&upstream=0", strings.NewReader(body))
			req.RemoteAddr = tt.remote
			req.Host = "127.0.0.1:7860"
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if g, want := w.Code, tt.wantCode; g != want {
				t.Errorf("got status %d; want %d (body %s)", g, want, w.Body)
			}
			injected := s.state.Load().providers["p"].Upstreams[0].FaultDocument() != nil
			if injected != (tt.wantCode == 200 && tt.method == "POST") {
				t.Errorf("fault set: %v after a %d", injected, w.Code)
			}
		})
	}
}

// TestFaultRequests: bad requests are refused with the reason, before
// anything is set.
func TestInjectedFaultRequests(t *testing.T) {
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", proxytest.DeadURL(t))}})
	tests := []struct {
		name     string
		method   string
		query    string
		body     string
		wantCode int
		wantErr  string
	}{
		{"no provider", "POST", "", `{"kind": "error"}`, 400, "provider query parameter is required"},
		{"unknown provider", "POST", "?provider=nope", `{"kind": "error"}`, 404, "unknown provider"},
		{"unknown upstream", "POST", "?provider=p&upstream=http://192.0.2.9", `{"kind": "error"}`, 404, "has no upstream"},
		{"index out of range", "POST", "?provider=p&upstream=1", `{"kind": "error"}`, 404, "has no upstream"},
		{"no body", "POST", "?provider=p", ``, 400, "body must be"},
		{"unknown kind", "POST", "?provider=p", `{"kind": "explode"}`, 400, "want error, abort or delay"},
		{"unknown field", "POST", "?provider=p", `{"kind": "error", "colour": "red"}`, 400, "unknown field"},
		{"status not an error", "POST", "?provider=p", `{"kind": "error", "status": 200}`, 400, "want 400–599"},
		{"delay without delay_ms", "POST", "?provider=p", `{"kind": "delay"}`, 400, "delay_ms"},
		{"percent 0", "POST", "?provider=p", `{"kind": "abort", "percent": 0}`, 400, "percent"},
		{"percent 101", "POST", "?provider=p", `{"kind": "abort", "percent": 101}`, 400, "percent"},
		{"ttl over the max", "POST", "?provider=p", `{"kind": "abort", "ttl": "11m"}`, 400, "ttl"},
		{"ttl negative", "POST", "?provider=p", `{"kind": "abort", "ttl": "-1s"}`, 400, "ttl"},
		{"ttl not a duration", "POST", "?provider=p", `{"kind": "abort", "ttl": "soon"}`, 400, "ttl"},
		{"wrong method", "PUT", "?provider=p", `{"kind": "abort"}`, 405, "not allowed"},
		{"delete unknown provider", "DELETE", "?provider=nope", ``, 404, "unknown provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := faultCall(t, ts, tt.method, tt.query, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantErr) {
				t.Errorf("got %d %s; want %d with %q", code, body, tt.wantCode, tt.wantErr)
			}
			if s.state.Load().providers["p"].Upstreams[0].FaultDocument() != nil {
				t.Errorf("a refused request set a fault")
			}
		})
	}
}

// TestFaultFailover: an error fault on one upstream goes through the real
// request path: the upstream is never contacted, its breaker opens, the
// other upstream answers every request (no client sees the fault), and
// diagnostics, the audit log and GET show the fault until it is cleared.
func TestInjectedFaultFailover(t *testing.T) {
	a, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", a.URL, b.URL)}})
	sendOK(t, ts, "p", 4) // both upstreams healthy

	code, body := faultCall(t, ts, "POST", "?provider=p&upstream="+a.URL, `{"kind": "error", "status": 503, "ttl": "5m", "reason": "chaos rehearsal"}`)
	if code != 200 || !strings.Contains(body, `"kind":"error"`) {
		t.Fatalf("POST fault: got %d %s; want 200 with the fault", code, body)
	}
	hitsA := a.Hits.Load()
	// A degraded upstream gets one pick in degradedShare: it takes a few
	// dozen requests to reach the threshold. Retries hide every injected 503.
	status, f := "", (*api.Fault)(nil)
	for i := 0; status != "unavailable"; i++ {
		if i == 50 {
			t.Fatalf("faulted upstream still %q after %d×10 requests; want unavailable", status, i)
		}
		sendOK(t, ts, "p", 10)
		status, f = faultOf(t, ts, "p", a.URL)
	}
	if got := a.Hits.Load(); got != hitsA {
		t.Errorf("upstream a got %d requests while faulted; want none (the fault answers)", got-hitsA)
	}
	if f == nil || f.Kind != "error" || f.Status != 503 || f.Percent != 100 || f.Reason != "chaos rehearsal" || f.Until == nil || f.By == "" {
		t.Errorf("fault in diagnostics: %+v; want error 503 100%% with reason, by and until", f)
	}
	if _, f := faultOf(t, ts, "p", b.URL); f != nil {
		t.Errorf("upstream b shows a fault: %+v", f)
	}
	code, body = faultCall(t, ts, "GET", "", "")
	if code != 200 || !strings.Contains(body, `"provider_id":"p"`) || !strings.Contains(body, `"index":0`) {
		t.Errorf("GET faults: %d %s; want the fault on p's upstream 0", code, body)
	}

	code, body = faultCall(t, ts, "DELETE", "?provider=p&upstream=0", "")
	if code != 200 || !strings.Contains(body, `"cleared":1`) {
		t.Fatalf("DELETE fault: got %d %s; want one cleared", code, body)
	}
	if _, f := faultOf(t, ts, "p", a.URL); f != nil {
		t.Errorf("fault still shown after DELETE: %+v", f)
	}
	resp, audit := adminCall(t, ts, "GET", "/api/admin/audit", "", "")
	if resp.StatusCode != 200 || !strings.Contains(audit, `"action":"fault-error"`) || !strings.Contains(audit, `"action":"fault-clear"`) ||
		!strings.Contains(audit, "chaos rehearsal") {
		t.Errorf("audit log: %s; want fault-error (with the reason) and fault-clear", audit)
	}
}

// TestFaultTTL: a fault ends by itself when its TTL runs out: it leaves
// diagnostics, the upstream is contacted again, and the audit log says so.
func TestInjectedFaultTTL(t *testing.T) {
	a := proxytest.NewUpstream(t)
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", a.URL)}})
	if code, body := faultCall(t, ts, "POST", "?provider=p", `{"kind": "error", "status": 500, "ttl": "300ms"}`); code != 200 {
		t.Fatalf("POST fault: %d %s", code, body)
	}
	if resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 500 || resp.Header.Get("X-Healproxy-Fault") != "error" {
		t.Fatalf("request while faulted: %d %s; want the injected 500", resp.StatusCode, body)
	}
	proxytest.Eventually(t, 10*time.Second, "a fault-expired audit record after a 300ms TTL", func() bool {
		_, audit := adminCall(t, ts, "GET", "/api/admin/audit", "", "")
		return strings.Contains(audit, `"action":"fault-expired"`)
	})
	if _, f := faultOf(t, ts, "p", a.URL); f != nil {
		t.Errorf("expired fault still shown: %+v", f)
	}
	hits := a.Hits.Load()
	if resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x"); resp.StatusCode != 200 || a.Hits.Load() != hits+1 {
		t.Errorf("after the TTL: %d %s, %d upstream hits; want 200 from the upstream", resp.StatusCode, body, a.Hits.Load()-hits)
	}
}

// TestFaultKinds: abort answers like a dropped connection (502), delay
// past the provider's timeout like a timeout (504), percent 100 of error
// with the status asked for; each counts against the upstream's health.
func TestInjectedFaultKinds(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode int
	}{
		{"abort", `{"kind": "abort"}`, 502},
		{"delay past the timeout", `{"kind": "delay", "delay_ms": 60000}`, 504},
		{"error 429", `{"kind": "error", "status": 429}`, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := proxytest.NewUpstream(t)
			pc := proxytest.Provider(t, "p", a.URL)
			pc.Timeout = 200 * time.Millisecond
			_, ts := startServer(t, &config.Config{Providers: []config.Provider{pc}})
			if code, body := faultCall(t, ts, "POST", "?provider=p", tt.body); code != 200 {
				t.Fatalf("POST fault: %d %s", code, body)
			}
			resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
			if resp.StatusCode != tt.wantCode {
				t.Errorf("got %d %s; want %d", resp.StatusCode, body, tt.wantCode)
			}
			if a.Hits.Load() != 0 {
				t.Errorf("the upstream was contacted %d times; want none", a.Hits.Load())
			}
			var doc struct {
				Providers struct {
					Entries []struct {
						ErrorCount int `json:"error_count"`
					} `json:"entries"`
				} `json:"providers"`
			}
			_, h := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/health")
			if err := json.Unmarshal([]byte(h), &doc); err != nil || doc.Providers.Entries[0].ErrorCount != 1 {
				t.Errorf("error_count after one faulted request: %s; want 1", h)
			}
		})
	}
}

// TestFaultPercent: a fault with percent 1 lets almost every attempt
// through to the upstream.
func TestInjectedFaultPercent(t *testing.T) {
	a := proxytest.NewUpstream(t)
	pc := proxytest.WithHealth(proxytest.Provider(t, "p", a.URL), 1000, time.Minute, 1)
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{pc}})
	if code, body := faultCall(t, ts, "POST", "?provider=p", `{"kind": "error", "percent": 1}`); code != 200 {
		t.Fatalf("POST fault: %d %s", code, body)
	}
	const n = 200
	for range n {
		resp, _ := proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
		if resp.StatusCode != 200 && resp.StatusCode != 503 {
			t.Fatalf("got %d; want 200 or the injected 503", resp.StatusCode)
		}
	}
	if got := a.Hits.Load(); got < n/2 {
		t.Errorf("%d of %d requests reached the upstream under a 1%% fault; want most", got, n)
	}
}
