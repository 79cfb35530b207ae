package provider

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestProviderRestPath covers restPath directly, including forms an HTTP
// client cannot send.
func TestProviderRestPath(t *testing.T) {
	tests := []struct {
		path   string
		want   string
		wantOK bool
	}{
		{"/providers/p", "/", true},
		{"/providers/p/", "/", true},
		{"/providers/p/a/b", "/a/b", true},
		{"/providers/p/a%20b", "/a%20b", true},
		{"/providers/p/...", "", false}, // some servers trim trailing dots: refused
		{"/providers/p/..a", "/..a", true},
		{"/providers/p/v1.2/x.json", "/v1.2/x.json", true},
		{"/providers/p/%2e%2e%2e", "", false},
		{"/providers/p/..;", "", false},
		{"/providers/p/..;jsessionid=1/x", "", false},
		{"/providers/p/.;/x", "", false},
		{"/providers/p/%2e%2e;x", "", false},
		{"/providers/p/..%20", "", false},
		{"/providers/p/..%09", "", false},
		{"/providers/p/%252e%252e", "", false},
		{"/providers/p/%252E", "", false},
		{"/providers/p/%255c", "", false},
		{"/providers/p/%2500", "", false},
		{"/providers/p/%c0%ae%c0%ae", "", false},
		{"/providers/p/%e0%80%ae", "", false},
		{"/providers/p/%ff", "", false},
		{"/providers/p/a%0ab", "", false},
		{"/providers/p/a%7f", "", false},
		{"/providers/p/a;b=c", "/a;b=c", true},
		{"/providers/p/%25", "/%25", true},
		{"/providers/p/100%25/x", "/100%25/x", true},
		{"/providers/pp/x", "", false},
		{"/providers/p/..", "", false},
		{"/providers/p/.", "", false},
		{"/providers/p/%2e", "", false},
		{"/providers/p/%2E%2E", "", false},
		{"/providers/p/a/%2e%2E/b", "", false},
		{"/providers/p/a%2Fb", "", false},
		{"/providers/p/a%5Cb", "", false},
		{"/providers/p/a%00", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			u, err := url.Parse(tt.path)
			if err != nil {
				t.Skipf("url.Parse(%q): %v; a server would reject it", tt.path, err)
			}
			got, ok := restPath(&http.Request{URL: u}, "p")
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("restPath(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestUpstreamSendNoFaultAllocs: with no fault set, send adds no
// allocation to an attempt (one atomic load).
func TestUpstreamSendNoFaultAllocs(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: http.NoBody}
	base := proxytest.RoundTripFunc(func(*http.Request) (*http.Response, error) { return resp, nil })
	u := &Upstream{}
	req := httptest.NewRequest("GET", "http://upstream.test/x", nil)
	allocs := testing.AllocsPerRun(1000, func() {
		r, err := u.send(base, req)
		if err != nil || r != resp {
			t.Fatal("send did not pass the attempt through")
		}
	})
	if allocs != 0 {
		t.Errorf("send allocates %v times per attempt with no fault; want 0", allocs)
	}
}

// TestInjectedFaultKeptOnReload: a provider rebuilt by a reload keeps the
// fault of every upstream it keeps.
func TestInjectedFaultKeptOnReload(t *testing.T) {
	a := proxytest.NewUpstream(t)
	pc := proxytest.NormalizedProvider(proxytest.Provider(t, "p", a.URL))
	m := NewMetrics(prometheus.NewRegistry())
	old := New(pc, http.DefaultTransport, Hooks{}, m, proxytest.DiscardLogger(), nil).Upstreams[0]
	_, f, err := fault.Parse(strings.NewReader(`{"kind": "abort"}`))
	if err != nil {
		t.Fatal(err)
	}
	old.InjectFault(f)
	u := New(pc, http.DefaultTransport, Hooks{}, m, proxytest.DiscardLogger(), map[string]*Upstream{a.URL: old}).Upstreams[0]
	if u.fault.Load() != f {
		t.Errorf("the rebuilt upstream lost its fault")
	}
}
