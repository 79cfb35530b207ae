package corscfg

import (
	"strings"
	"testing"
)

func TestCORSAllows(t *testing.T) {
	listed := &CORS{AllowOrigins: []string{"https://app.example", "http://localhost:3000"}}
	anyOrigin := &CORS{AllowOrigins: []string{"*"}}
	tests := []struct {
		name   string
		c      *CORS
		origin string
		want   bool
	}{
		{"listed", listed, "https://app.example", true},
		{"listed with a port", listed, "http://localhost:3000", true},
		{"case", listed, "HTTPS://App.Example", true},
		{"not listed", listed, "https://evil.example", false},
		{"a suffix of a listed one", listed, "https://app.example.evil", false},
		{"a prefix of a listed one", listed, "https://app.exampl", false},
		{"another scheme", listed, "http://app.example", false},
		{"another port", listed, "http://localhost:3001", false},
		{"no port", listed, "http://localhost", false},
		{"trailing slash", listed, "https://app.example/", false},
		{"with a path", listed, "https://app.example/x", false},
		{"default port", listed, "https://app.example:443", false}, // never sent by a browser
		{"empty", listed, "", false},
		{"null", listed, "null", false},
		{"star: any", anyOrigin, "https://evil.example", true},
		{"star: odd but non-empty", anyOrigin, "x", true},
		{"star: empty", anyOrigin, "", false},
		{"star: null", anyOrigin, "null", false},
		{"star: NULL", anyOrigin, "NULL", false},
		{"nil CORS", nil, "https://app.example", false},
		{"no origins", &CORS{}, "https://app.example", false},
	}
	for _, tt := range tests {
		if got := tt.c.Allows(tt.origin); got != tt.want {
			t.Errorf("%s: got Allows(%q) = %v; want %v", tt.name, tt.origin, got, tt.want)
		}
	}
}

// Allows runs for every request with an Origin: it must not allocate.
func TestCORSAllowsAllocs(t *testing.T) {
	c := &CORS{AllowOrigins: []string{"https://a.example", "https://b.example", "http://localhost:3000"}}
	origin := strings.ToUpper("http://localhost:3000")
	if n := testing.AllocsPerRun(100, func() {
		if !c.Allows(origin) || c.Allows("https://evil.example") {
			t.Fatal("wrong answer")
		}
	}); n != 0 {
		t.Errorf("got %v allocations per call; want 0", n)
	}
}

func BenchmarkCORSAllows(b *testing.B) {
	c := &CORS{AllowOrigins: []string{"https://a.example", "https://b.example", "http://localhost:3000"}}
	for b.Loop() {
		c.Allows("http://localhost:3000")
	}
}
