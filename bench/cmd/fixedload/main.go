// Command fixedload sends a fixed number of requests, one at a time over
// one keep-alive connection, and fails on any answer but 200: the load of
// bench/callgrind.sh, where a count (not a duration) makes instruction
// counts comparable between two builds.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	url := flag.String("url", "", "the URL to request")
	n := flag.Int("n", 1000, "how many requests")
	method := flag.String("method", "GET", "GET or POST (a small JSON body)")
	wait := flag.Duration("wait", 10*time.Second, "how long to wait for the URL to answer first")
	flag.Parse()
	if *url == "" || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: fixedload -url URL [-n N] [-method GET|POST]")
		os.Exit(2)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	deadline := time.Now().Add(*wait)
	for {
		resp, err := c.Get(*url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "fixedload: no answer:", err)
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond) // poll until the proxy listens
	}
	for i := range *n {
		var body io.Reader
		if *method == http.MethodPost {
			body = strings.NewReader(`{"symbol":"BTCUSDT"}`)
		}
		req, _ := http.NewRequest(*method, *url, body)
		resp, err := c.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fixedload: request %d: %v\n", i, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "fixedload: request %d: status %d\n", i, resp.StatusCode)
			os.Exit(1)
		}
	}
}
