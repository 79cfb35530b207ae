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

// Handler serves the UI: index.html at "/", the other files under
// "/assets/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	assets := http.StripPrefix("/assets/", files)
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, r *http.Request) {
		// Embedded files have no modification time: make browsers
		// revalidate, so that a new binary's assets are picked up.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(w, r)
	})
	return mux
}
