package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/internal/proxytest"
)

// A request body over max_request_body gets 413 and counts for nothing
// against the upstream, whether its size is declared (refused before
// anything is sent) or found out while it streams (chunked).
func TestProviderRequestBodyLimit(t *testing.T) {
	up := proxytest.NewUpstream(t)
	pc := proxytest.Provider(t, "p", up.URL)
	pc.MaxRequestBody = 1024
	_, front := startProviders(t, pc)
	c := &http.Client{}

	resp, body := proxytest.Do(t, c, "POST", front.URL+"/providers/p/x", strings.NewReader(strings.Repeat("a", 1000)), nil)
	if resp.StatusCode != 200 || up.Last(t).Body != strings.Repeat("a", 1000) {
		t.Fatalf("a body under the limit: %d %q", resp.StatusCode, body)
	}
	hits := up.Hits.Load()

	resp, body = proxytest.Do(t, c, "POST", front.URL+"/providers/p/x", strings.NewReader(strings.Repeat("b", 2000)), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "max_request_body (1024 bytes)") {
		t.Fatalf("declared 2000 bytes: %d %q; want 413", resp.StatusCode, body)
	}
	if up.Hits.Load() != hits {
		t.Error("a declared oversized body reached the upstream")
	}

	// chunked: no Content-Length, so the limit is found out while streaming
	pr, pw := io.Pipe()
	go func() {
		for range 4 {
			pw.Write([]byte(strings.Repeat("c", 600)))
		}
		pw.Close()
	}()
	resp, body = proxytest.Do(t, c, "POST", front.URL+"/providers/p/x", pr, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked 2400 bytes: %d %q; want 413", resp.StatusCode, body)
	}
	h := fetchProvider(t, front.URL, "p")
	if u := h.Upstreams[0]; u.ErrorCount != 0 || len(u.RecentFailures) != 0 {
		t.Errorf("an oversized client body counted against the upstream: %+v", u)
	}
}
