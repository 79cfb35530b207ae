package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// Regression: an upstream's redirect went to the client as is, pointing
// around the proxy and carrying the upstream URL's secret query string.
func TestRedirectLocationRewritten(t *testing.T) {
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/base/old":
			http.Redirect(w, r, "/base/new?key=SECRETQ&page=2", http.StatusFound)
		case "/base/abs":
			w.Header().Set("Location", "http://"+r.Host+"/base/a%20b?key=SECRETQ")
			w.WriteHeader(http.StatusMovedPermanently)
		case "/base/away":
			w.Header().Set("Location", "https://elsewhere.example/x?y=1")
			w.WriteHeader(http.StatusFound)
		case "/base/outside":
			w.Header().Set("Location", "/other/place")
			w.WriteHeader(http.StatusFound)
		case "/base/outside-secret":
			w.Header().Set("Location", "/other/place?key=SECRETQ&a=1")
			w.WriteHeader(http.StatusFound)
		}
	})
	u, _ := url.Parse(up.URL + "/base?key=SECRETQ")
	pc := config.Provider{ID: "p", Name: "p", Upstreams: []*url.URL{u}, Timeout: 5e9,
		Health: config.Health{ErrorThreshold: 3, Cooldown: 60e9, RecoveryCount: 1}}
	_, ts := startProviders(t, pc)
	c := ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tests := []struct{ path, want string }{
		{"/providers/p/old", "/providers/p/new?page=2"},
		{"/providers/p/abs", "/providers/p/a%20b"},
		{"/providers/p/away", "https://elsewhere.example/x?y=1"},
		{"/providers/p/outside", "/other/place"}, // outside the base path: not ours to map, and no secret in it
		{"/providers/p/outside-secret", up.URL + "/other/place?a=1"},
	}
	for _, tt := range tests {
		resp, err := c.Get(ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != tt.want {
			t.Errorf("%s: got Location %q; want %q", tt.path, got, tt.want)
		}
		if strings.Contains(resp.Header.Get("Location"), "SECRETQ") {
			t.Errorf("%s: the upstream's secret reached the client", tt.path)
		}
	}
}
