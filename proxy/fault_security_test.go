package proxy

// Security regressions of /api/admin/fault: an unknown upstream's name is
// not echoed with its secrets, and out-of-range numbers are refused
// rather than wrapped into nonsense.

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestFaultUnknownUpstreamRedacted: an operator naming an upstream by its
// configured URL, API key included, gets a 404 that names it without its
// query string or user info, as the drain endpoint answers.
func TestFaultUnknownUpstreamRedacted(t *testing.T) {
	const key, pass = "sk-FAULTSECRET123", "hunter2pass"
	configured := proxytest.DeadURL(t) + "/v1?api_key=" + key
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", configured)}})
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
	var doc api.ErrorBody
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if want := strings.TrimSuffix(configured, "?api_key="+key); !strings.Contains(doc.Error, want) {
		t.Errorf("error %q does not name %s", doc.Error, want)
	}
}

// TestFaultNumbersInRange: delay_ms, status, percent and ttl out of range,
// however large, are refused with a 400 that says what is allowed, and
// set nothing; the bounds themselves are accepted as given.
func TestFaultNumbersInRange(t *testing.T) {
	s, ts := startServer(t, &config.Config{Providers: []config.Provider{proxytest.Provider(t, "p", proxytest.DeadURL(t))}})
	refused := []struct{ name, body, wantErr string }{
		// 9223372036854775807 ms × 1e6 wraps to −1 ms as a time.Duration.
		{"delay_ms max int64", `{"kind": "delay", "delay_ms": 9223372036854775807}`, "delay_ms 9223372036854775807: must be > 0 and at most 600000"},
		// 18446744073710 ms × 1e6 wraps to +448384 ns: under the bound.
		{"delay_ms wrapping to under a millisecond", `{"kind": "delay", "delay_ms": 18446744073710}`, "delay_ms 18446744073710: must be > 0 and at most 600000"},
		{"delay_ms min int64", `{"kind": "delay", "delay_ms": -9223372036854775808}`, "must be > 0 and at most 600000"},
		{"delay_ms negative", `{"kind": "delay", "delay_ms": -1}`, "must be > 0"},
		{"delay_ms zero", `{"kind": "delay", "delay_ms": 0}`, "must be > 0"},
		{"delay_ms one past the max TTL", `{"kind": "delay", "delay_ms": 600001}`, "at most 600000"},
		{"delay_ms past int64", `{"kind": "delay", "delay_ms": 9223372036854775808}`, "body must be"},
		{"status negative", `{"kind": "error", "status": -503}`, "want 400–599"},
		{"status max int64", `{"kind": "error", "status": 9223372036854775807}`, "status"},
		{"status 503 plus 2^32", `{"kind": "error", "status": 4294967799}`, "status"},
		{"status past int64", `{"kind": "error", "status": 1e30}`, "body must be"},
		{"percent negative", `{"kind": "abort", "percent": -1}`, "want 1–100"},
		{"percent 50 plus 2^32", `{"kind": "abort", "percent": 4294967346}`, "percent"},
		{"percent past int64", `{"kind": "abort", "percent": 99999999999999999999}`, "body must be"},
		{"ttl overflowing a duration", `{"kind": "abort", "ttl": "9999999999999h"}`, "ttl"},
		{"ttl max int64 ns", `{"kind": "abort", "ttl": "9223372036854775807ns"}`, "ttl"},
		{"ttl zero", `{"kind": "abort", "ttl": "0s"}`, "ttl"},
		{"ttl negative", `{"kind": "abort", "ttl": "-10m"}`, "ttl"},
		{"ttl a nanosecond past the max", `{"kind": "abort", "ttl": "10m0.000000001s"}`, "ttl"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			code, body := faultCall(t, ts, "POST", "?provider=p", tt.body)
			var doc api.ErrorBody
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if code != 400 || !strings.Contains(doc.Error, tt.wantErr) {
				t.Errorf("got %d %q; want 400 with %q", code, doc.Error, tt.wantErr)
			}
			if f := s.state.Load().providers["p"].Upstreams[0].ClearFault(time.Now()); f != nil { // cleared: each case on its own
				t.Errorf("a refused request set a fault: %+v", *f)
			}
		})
	}

	accepted := []struct{ name, body, want string }{
		{"delay_ms at the max TTL", `{"kind": "delay", "delay_ms": 600000}`, `"delay_ms":600000`},
		{"delay_ms 1", `{"kind": "delay", "delay_ms": 1}`, `"delay_ms":1,`},
		{"status 400", `{"kind": "error", "status": 400}`, `"status":400`},
		{"status 599", `{"kind": "error", "status": 599}`, `"status":599`},
		{"percent 1, ttl at the max", `{"kind": "abort", "percent": 1, "ttl": "10m"}`, `"percent":1,`},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			code, body := faultCall(t, ts, "POST", "?provider=p", tt.body)
			if code != 200 || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s; want 200 with %s", code, body, tt.want)
			}
			if code, body := faultCall(t, ts, "DELETE", "?provider=p", ""); code != 200 {
				t.Fatalf("clear: %d %s", code, body)
			}
		})
	}
}
