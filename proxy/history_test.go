package proxy

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestHistoryOfOneEntry: ?kind=&key= narrow the history to one entry (its
// upstreams and its sum), so the UI's timeline of one row does not fetch
// a fleet's; a bad kind is a 400.
func TestHistoryOfOneEntry(t *testing.T) {
	up := proxytest.NewUpstream(t)
	_, ts := startProviders(t, proxytest.Provider(t, "a", up.URL), proxytest.Provider(t, "b", up.URL))
	get := func(query string) (int, api.History) {
		resp, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/history"+query)
		var doc api.History
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("history: %v", err)
			}
		}
		return resp.StatusCode, doc
	}
	if _, all := get(""); len(all.Entries) != 4 {
		t.Fatalf("whole history: %d entries; want 4 (two providers, an upstream and a sum each)", len(all.Entries))
	}
	code, one := get("?kind=provider&key=a")
	if code != http.StatusOK || len(one.Entries) != 2 {
		t.Fatalf("history of a: %d, %d entries; want 200 and 2", code, len(one.Entries))
	}
	for _, e := range one.Entries {
		if e.Kind != KindProvider || e.Key != "a" {
			t.Errorf("history of a has an entry of %s %s", e.Kind, e.Key)
		}
	}
	if _, none := get("?kind=model&key=a"); len(none.Entries) != 0 {
		t.Errorf("history of model a: %d entries; want none", len(none.Entries))
	}
	if code, _ := get("?kind=bogus"); code != http.StatusBadRequest {
		t.Errorf("kind=bogus: %d; want 400", code)
	}
}
