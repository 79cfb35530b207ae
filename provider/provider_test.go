package provider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/internal/proxytest"
)

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
