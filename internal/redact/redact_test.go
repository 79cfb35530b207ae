package redact

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	u, _ := url.Parse("http://user:PASSWORD9@api.example/base/x?apikey=SECRET-QUERY-456&sig=a%2Fb%2Bc%3D%3D&n=1")
	s := New(append(ForURL(u, false), "Bearer HEADER-TOKEN", "ab")...)
	for _, tc := range []struct{ in, want string }{
		{`malformed HTTP status code "/base/x?apikey=SECRET-QUERY-456&sig=a%2Fb%2Bc%3D%3D&n=1"`, `malformed HTTP status code "/base/x?[redacted]"`},
		{"got SECRET-QUERY-456 back", "got [redacted] back"},
		{"sig a/b+c== decoded, a%2Fb%2Bc%3D%3D encoded", "sig [redacted] decoded, [redacted] encoded"},
		{"echo: Authorization: Bearer HEADER-TOKEN", "echo: Authorization: [redacted]"},
		{"dial user:PASSWORD9@api", "dial [redacted]@api"},
		{"PASSWORD9", "[redacted]"},
		{"short values stay: ab n=1", "short values stay: ab n=1"},
		{"", ""},
	} {
		if got := s.Scrub(tc.in); got != tc.want {
			t.Errorf("Scrub(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubQuotedForm(t *testing.T) {
	secret := "key\"with\\quote"
	s := New(secret)
	in := "bad status " + strconv.Quote("x?"+secret)
	if got := s.Scrub(in); strings.Contains(got, "with") {
		t.Errorf("Scrub(%q) = %q; want the quoted secret gone", in, got)
	}
}

func TestScrubNil(t *testing.T) {
	var s *Scrubber
	if got := s.Scrub("x SECRET"); got != "x SECRET" || !s.Empty() {
		t.Errorf("nil Scrubber: %q", got)
	}
	if !New("", "abc").Empty() {
		t.Error("New of short values only: want Empty")
	}
}

func TestForURLPath(t *testing.T) {
	u, _ := url.Parse("https://hooks.example/services/T000/SECRETPATH")
	s := New(ForURL(u, true)...)
	if got := s.Scrub(`Post "https://hooks.example/services/T000/SECRETPATH": EOF`); strings.Contains(got, "SECRETPATH") {
		t.Errorf("got %q; want the path scrubbed", got)
	}
}
