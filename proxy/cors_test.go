package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config/corscfg"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestCORSHeadersOnlyForAllowedOrigins: an upstream's Access-Control-*
// headers ("*" included) reach the client only when the provider's cors
// setting allows the request's Origin; otherwise no page of another site
// can read answers made with the proxy's keys.
func TestCORSHeadersOnlyForAllowedOrigins(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, answer(http.StatusOK,
		"Access-Control-Allow-Origin", "*",
		"Access-Control-Allow-Credentials", "true",
		"Access-Control-Expose-Headers", "X-Price"))
	closed := proxytest.Provider(t, "closed", up.URL)
	open := proxytest.Provider(t, "open", up.URL)
	open.CORS = &corscfg.CORS{AllowOrigins: []string{"https://app.example"}}
	any := proxytest.Provider(t, "any", up.URL)
	any.CORS = &corscfg.CORS{AllowOrigins: []string{"*"}}
	_, ts := startProviders(t, closed, open, any)

	tests := []struct {
		provider, origin string
		wantCORS         bool
	}{
		{"closed", "", false},
		{"closed", "https://evil.example", false},
		{"closed", "https://app.example", false},
		{"open", "https://app.example", true},
		{"open", "HTTPS://APP.example", true},
		{"open", "https://evil.example", false},
		{"open", "null", false},
		{"open", "", false},
		{"any", "https://evil.example", true},
		{"any", "null", false},
	}
	for _, tt := range tests {
		hdr := http.Header{}
		if tt.origin != "" {
			hdr.Set("Origin", tt.origin)
		}
		resp, body := proxytest.Do(t, http.DefaultClient, "GET", ts.URL+"/providers/"+tt.provider+"/x", nil, hdr)
		if resp.StatusCode != 200 || !strings.Contains(body, "answer 200") {
			t.Fatalf("%s, Origin %q: got %d %q; want the upstream's answer", tt.provider, tt.origin, resp.StatusCode, body)
		}
		var got []string
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				got = append(got, k)
			}
		}
		if tt.wantCORS && len(got) != 3 {
			t.Errorf("%s, Origin %q: got CORS headers %v; want the upstream's three", tt.provider, tt.origin, got)
		}
		if !tt.wantCORS && len(got) != 0 {
			t.Errorf("%s, Origin %q: got CORS headers %v; want none", tt.provider, tt.origin, got)
		}
		if tt.provider != "closed" && !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("%s, Origin %q: Vary %q; want Origin in it", tt.provider, tt.origin, resp.Header.Values("Vary"))
		}
	}
}

// TestTraceOnlyWhenAllowed: TRACE would make an echoing upstream show the
// client the injected headers; it is refused unless allow_trace is on.
func TestTraceOnlyWhenAllowed(t *testing.T) {
	const secret = "SECRET-HEADER-789"
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "message/http")
		r.Header.Write(w) // what a TRACE-enabled server does
	})
	off := proxytest.Provider(t, "off", up.URL)
	off.Headers = map[string]string{"X-Api-Key": secret}
	on := proxytest.Provider(t, "on", up.URL)
	on.AllowTrace = true
	_, ts := startProviders(t, off, on)

	resp, body := proxytest.Do(t, http.DefaultClient, "TRACE", ts.URL+"/providers/off/x", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(body, secret) {
		t.Errorf("TRACE, allow_trace off: got %d %q; want 405 without the header's value", resp.StatusCode, body)
	}
	if int(up.Hits.Load()) != 0 {
		t.Errorf("upstream got %d requests; want 0", int(up.Hits.Load()))
	}
	resp, _ = proxytest.Do(t, http.DefaultClient, "TRACE", ts.URL+"/providers/on/x", nil, nil)
	if resp.StatusCode != http.StatusOK || int(up.Hits.Load()) != 1 {
		t.Errorf("TRACE, allow_trace on: got %d, %d upstream requests; want 200 from the upstream", resp.StatusCode, int(up.Hits.Load()))
	}
}
