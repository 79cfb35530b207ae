package provpath

import (
	"net/http"
	"net/url"
	"testing"
)

// TestRest covers Rest directly, including forms an HTTP
// client cannot send.
func TestRest(t *testing.T) {
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
			got, ok := Rest(&http.Request{URL: u}, "p")
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Rest(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestClientURL: an upstream's URL becomes the provider's path, without
// the upstream's own query parameters; other URLs are kept.
func TestClientURL(t *testing.T) {
	a, _ := url.Parse("https://a.example/v1?key=secret")
	lr, _ := url.Parse("http://last.example:8080/base")
	ups := func(yield func(*url.URL, string) bool) {
		_ = yield(a, "/v1") && yield(lr, "/base")
	}
	req := &http.Request{URL: &url.URL{Path: "/v1/things"}}
	for _, tc := range []struct{ in, want string }{
		{"https://a.example/v1/things/2?page=3&key=secret", "/providers/p/things/2?page=3"},
		{"https://a.example/v1", "/providers/p"},
		{"/v1/next#frag", "/v1/next#frag"}, // relative to the request, which has no host: kept
		{"https://a.example/other?key=secret&x=1", "https://a.example/other?x=1"},
		{"https://a.example/v10/x", "https://a.example/v10/x"},
		{"http://last.example:8080/base/a%2Fb", "/providers/p/a%2Fb"},
		{"https://elsewhere.example/v1/x?key=secret", "https://elsewhere.example/v1/x?key=secret"},
		{"%zz", "%zz"},
	} {
		if got := ClientURL(tc.in, req, "p", ups); got != tc.want {
			t.Errorf("ClientURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	links := `<https://a.example/v1/x?key=secret>; rel="next", <https://b.example/y>; rel="other"`
	want := `</providers/p/x>; rel="next", <https://b.example/y>; rel="other"`
	if got := ClientLinks(links, req, "p", ups); got != want {
		t.Errorf("ClientLinks = %q; want %q", got, want)
	}
}
