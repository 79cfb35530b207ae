package provider

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/stalecache"
)

// TestStaleCacheAgreesOnFailures: the cache keeps its own copy of what an
// upstream failure is (it cannot import proxy). A working answer that may
// not be kept drops the kept one; a failure (failureStatus) must not, nor
// may 1xx, 304 or 206.
func TestStaleCacheAgreesOnFailures(t *testing.T) {
	u, _ := url.Parse("/p")
	req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
	answer := func(c *stalecache.Cache, code int, hdr http.Header) {
		resp := &http.Response{
			StatusCode: code, Status: strconv.Itoa(code) + " " + http.StatusText(code),
			Header: hdr, Body: io.NopCloser(strings.NewReader("x")), ContentLength: 1, Request: req,
		}
		c.Capture(c.Key(req), resp)
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	for code := 100; code < 600; code++ {
		c := stalecache.New(config.Cache{StaleIfError: time.Minute, MaxEntries: 10, MaxBodyBytes: 1 << 10}, nil)
		answer(c, http.StatusOK, http.Header{})
		answer(c, code, http.Header{"Cache-Control": {"no-store"}}) // never kept itself
		_, kept := c.Stale(c.Key(req), req, time.Now())
		keep := code < 200 || failureStatus(code) || code == http.StatusNotModified || code == http.StatusPartialContent
		if kept != keep {
			t.Errorf("%d after a kept 200: entry kept %v; want %v", code, kept, keep)
		}
	}
}
