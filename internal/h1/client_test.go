package h1

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Requests the lean client leaves to http.Transport: bodies, other
// methods, upgrades, HTTPS.
func TestLeanClientEligibility(t *testing.T) {
	mk := func(method, target string, body io.Reader, hdr ...string) *http.Request {
		r := httptest.NewRequest(method, target, body)
		r.URL.RawPath = r.URL.EscapedPath()
		if body == nil {
			r.Body = nil
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		req  *http.Request
		want bool
	}{
		{mk("GET", "/x?a=b", nil), true},
		{mk("HEAD", "/x", nil), true},
		{mk("POST", "/x", nil), false},
		{mk("GET", "/x", strings.NewReader("body")), false},
		{mk("GET", "/x", nil, "Upgrade", "websocket"), false},
		{mk("GET", "/x", nil, "Expect", "100-continue"), false},
		{mk("GET", "/a!b", nil), false},
		{mk("GET", "/x", nil, "X-Bad", "a\x00b"), false},
	} {
		if got := Eligible(tc.req); got != tc.want {
			t.Errorf("Eligible(%s %s %v) = %v; want %v", tc.req.Method, tc.req.URL, tc.req.Header, got, tc.want)
		}
	}
	if p := NewPools(); p.Pool("https", "example.com:443") != nil {
		t.Error("an HTTPS upstream got a lean pool")
	} else {
		p.Close()
	}
}
