// Command goproxy is the benchmark's bare Go proxy: a stock
// net/http/httputil.ReverseProxy (no BufferPool, nothing else) with a
// Transport that keeps enough idle connections, exactly as the company
// peer benchmark runs it. It is the baseline healproxy's targets are
// ratios to.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9202", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:9201", "upstream base URL")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   4096,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ExpectContinueTimeout: 0,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ErrorLog:  log.Default(),
	}
	srv := &http.Server{Addr: *addr, Handler: rp, IdleTimeout: 120 * time.Second, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("goproxy listening on %s -> %s", *addr, target)
	log.Fatal(srv.ListenAndServe())
}
