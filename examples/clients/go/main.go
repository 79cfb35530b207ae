// Command go-client is a short healproxy client: it calls a provider and
// a model, and reads healproxy's 503 as it asks to be read: the JSON body
// says why ("cooldown" for a provider whose upstreams are all cooling
// down, "unavailable" for a model), Retry-After says when to come back,
// in whole seconds.
//
//	go run ./examples/clients/go -base http://127.0.0.1:7860 -provider prices -path ticker -model crypto_sent_0 -text "BTC to the moon"
//
// It prints one JSON line per call. With -max-wait a 503 is retried
// after Retry-After while the total wait stays within it (default 0: no
// retry). Exit status 0 when every call got a 2xx, 3 when one got a 503,
// 1 otherwise.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Unavailable is healproxy's 503 body (README, "Diagnostics and admin
// API"; docs/behaviour.md).
type Unavailable struct {
	Status            string  `json:"status"` // "cooldown" or "unavailable"
	ProviderID        string  `json:"provider_id,omitempty"`
	ModelKey          string  `json:"model_key,omitempty"`
	CooldownRemaining float64 `json:"cooldown_remaining,omitempty"`
	Error             string  `json:"error"`
}

// Result is one call's outcome, printed as a JSON line.
type Result struct {
	Request    string          `json:"request"`
	Status     int             `json:"status"`
	Body       json.RawMessage `json:"body,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Error      string          `json:"error,omitempty"`
	RetryAfter float64         `json:"retry_after,omitempty"`
	Waited     float64         `json:"waited"` // seconds spent waiting out 503s
}

// retryAfter reads Retry-After: delta-seconds (what healproxy sends) or
// an HTTP date (what some upstreams send); 1 s when absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return time.Second
}

// call sends one request, waiting out 503s within maxWait in total.
func call(c *http.Client, method, u string, body []byte, maxWait time.Duration) (Result, error) {
	var waited time.Duration
	for {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			return Result{}, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			return Result{}, err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return Result{}, err
		}
		r := Result{Request: method + " " + req.URL.Path, Status: resp.StatusCode, Waited: waited.Seconds()}
		if resp.StatusCode != http.StatusServiceUnavailable {
			if json.Valid(data) {
				r.Body = data
			}
			return r, nil
		}
		var u503 Unavailable
		if err := json.Unmarshal(data, &u503); err != nil {
			u503.Error = strings.TrimSpace(string(data)) // not healproxy's own 503: an upstream's
		}
		wait := retryAfter(resp.Header)
		r.Reason, r.Error, r.RetryAfter = u503.Status, u503.Error, wait.Seconds()
		if waited+wait > maxWait {
			return r, nil
		}
		time.Sleep(wait)
		waited += wait
	}
}

func main() {
	base := flag.String("base", "http://127.0.0.1:7860", "healproxy's base URL")
	provider := flag.String("provider", "", "provider id to call (GET /providers/ID/PATH)")
	path := flag.String("path", "", "path under the provider")
	model := flag.String("model", "", "model key to call (POST /models/KEY/predict)")
	text := flag.String("text", "", "text for the model")
	maxWait := flag.Duration("max-wait", 0, "total time a 503 may be waited out")
	timeout := flag.Duration("timeout", 10*time.Second, "time per request")
	flag.Parse()

	c := &http.Client{Timeout: *timeout}
	out := json.NewEncoder(os.Stdout)
	code := 0
	do := func(method, u string, body []byte) {
		r, err := call(c, method, u, body, *maxWait)
		if err != nil {
			fmt.Fprintln(os.Stderr, "go-client:", err)
			code = 1
			return
		}
		out.Encode(r)
		switch {
		case r.Status == http.StatusServiceUnavailable && code == 0:
			code = 3
		case (r.Status < 200 || r.Status > 299) && r.Status != http.StatusServiceUnavailable:
			code = 1
		}
	}
	if *provider != "" {
		do(http.MethodGet, *base+"/providers/"+url.PathEscape(*provider)+"/"+strings.TrimPrefix(*path, "/"), nil)
	}
	if *model != "" {
		body, _ := json.Marshal(map[string]string{"inputs": *text})
		do(http.MethodPost, *base+"/models/"+url.PathEscape(*model)+"/predict", body)
	}
	os.Exit(code)
}
