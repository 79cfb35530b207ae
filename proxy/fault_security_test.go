package proxy

// Security regressions of /api/admin/fault: an unknown upstream's name is
// not echoed with its secrets, and out-of-range numbers are refused
// rather than wrapped into nonsense.

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config"
)

// TestFaultUnknownUpstreamRedacted: an operator naming an upstream by its
// configured URL, API key included, gets a 404 that names it without its
// query string or user info, as the drain endpoint answers.
func TestFaultUnknownUpstreamRedacted(t *testing.T) {
	const key, pass = "sk-FAULTSECRET123", "hunter2pass"
	configured := deadUpstreamURL(t) + "/v1?api_key=" + key
	_, ts := startTestServer(t, &config.Config{Providers: []config.Provider{testProvider(t, "p", configured)}}, Options{})
	withUser := strings.Replace(configured, "http://", "http://admin:"+pass+"@", 1)
	for _, tt := range []struct{ name, method, upstream, body string }{
		{"POST, the configured URL", "POST", configured, `{"kind": "abort", "ttl": "1m"}`},
		{"DELETE, the configured URL", "DELETE", configured, ``},
		{"POST, user info and query", "POST", withUser, `{"kind": "abort", "ttl": "1m"}`},
		{"POST, another host", "POST", "http://192.0.2.9/v1?key=" + key + "&x=" + pass, `{"kind": "abort", "ttl": "1m"}`},
		{"POST, not a URL", "POST", "%zz?api_key=" + key, `{"kind": "abort", "ttl": "1m"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := faultCall(t, ts, tt.method, "?provider=p&upstream="+url.QueryEscape(tt.upstream), tt.body)
			if code != 404 || !strings.Contains(body, "has no upstream") {
				t.Fatalf("got %d %s; want a 404 naming no upstream", code, body)
			}
			for _, secret := range []string{key, pass, "api_key", "admin:"} {
				if strings.Contains(body, secret) {
					t.Errorf("the answer holds %q: %s", secret, body)
				}
			}
		})
	}
	// What is kept still says which upstream was meant.
	_, body := faultCall(t, ts, "POST", "?provider=p&upstream="+url.QueryEscape(configured), `{"kind": "abort"}`)
	var doc errorBody
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if want := strings.TrimSuffix(configured, "?api_key="+key); !strings.Contains(doc.Error, want) {
		t.Errorf("error %q does not name %s", doc.Error, want)
	}
}
