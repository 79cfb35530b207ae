package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClickjackHandlerHeaders: every answer of the UI, an error or a
// directory listing too, forbids framing and MIME sniffing; the page
// keeps its own fuller policy.
func TestClickjackHandlerHeaders(t *testing.T) {
	h := Handler()
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/", 200}, {"/assets/app.js", 200}, {"/assets/style.css", 200}, {"/assets/", 200}, {"/assets/missing.js", 404},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		if w.Code != tt.code {
			t.Errorf("GET %s: got %d; want %d", tt.path, w.Code, tt.code)
		}
		if g := w.Header().Get("X-Frame-Options"); g != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q; want DENY", tt.path, g)
		}
		if g := w.Header().Values("Content-Security-Policy"); len(g) != 1 || !strings.Contains(g[0], "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q; want one policy with frame-ancestors 'none'", tt.path, g)
		}
		if g := w.Header().Get("X-Content-Type-Options"); g != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q; want nosniff", tt.path, g)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if g := w.Header().Get("Content-Security-Policy"); g != pageCSP {
		t.Errorf("GET /: Content-Security-Policy %q; want the page's %q", g, pageCSP)
	}
}
