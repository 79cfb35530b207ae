// Command upstream is the benchmark's fixed-response upstream: a ~200-byte
// JSON body over HTTP/1.1 keep-alive, the same for every target (the same
// server as the company peer benchmark's).
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

var body = []byte(`{"id":"bench-0001","object":"chat.completion","model":"upstream-fixed","status":"ok","choices":[{"index":0,"message":{"role":"assistant","content":"hello from the benchmark upstream"}}],"usage":{"total":42}}` + "\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:9201", "listen address")
	flag.Parse()
	clen := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{clen}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, IdleTimeout: 120 * time.Second, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("upstream listening on %s, body %d bytes", *addr, len(body))
	log.Fatal(srv.ListenAndServe())
}
