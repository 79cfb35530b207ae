// Package web holds healproxy's diagnostics UI, embedded in the binary.
// The page is plain HTML, CSS and JavaScript: no build step.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Security policies of the UI's answers. No page of another site may show
// the UI, or any file of it, in a frame (clickjacking: the UI has
// one-click admin buttons, and without an admin token a loopback browser
// is an admin): frame-ancestors for today's browsers, X-Frame-Options for
// older ones.
const (
	// pageCSP is the page's: everything from the proxy itself, no
	// inline script or style (the page has none), no framing.
	pageCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
		"base-uri 'none'; frame-ancestors 'none'"
	// fileCSP is every other answer's (the files, a 404): nothing to
	// load, no framing.
	fileCSP = "default-src 'none'; frame-ancestors 'none'"
)

// Handler serves the UI: index.html at "/", the other files under
// "/assets/". Every answer, an error too, forbids framing and MIME
// sniffing.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", pageCSP)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	assets := http.StripPrefix("/assets/", files)
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		// Embedded files have no modification time: make browsers
		// revalidate, so that a new binary's assets are picked up.
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", fileCSP) // the page's handler sets its own
		h.Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}
