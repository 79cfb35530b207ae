package provider

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/h1"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// streamUpstream answers /sse with n events, one every gap, and then, by
// the query: ?stall=D holds the stream silent for D after the events,
// ?cut=1 breaks the connection after them, otherwise the stream ends
// cleanly. /chunked does the same with plain chunked text.
func streamUpstream(t *testing.T, n int, gap time.Duration) *proxytest.Upstream {
	t.Helper()
	return proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sse := strings.HasPrefix(r.URL.Path, "/sse")
		if sse {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "text/plain")
		}
		w.WriteHeader(http.StatusOK)
		fl := http.NewResponseController(w)
		for i := 1; i <= n; i++ {
			if sse {
				fmt.Fprintf(w, "data: token %d\n\n", i)
			} else {
				fmt.Fprintf(w, "token %d\n", i)
			}
			fl.Flush()
			select {
			case <-time.After(gap): // the pace of a streamed answer
			case <-r.Context().Done():
				return
			}
		}
		q := r.URL.Query()
		if d, err := time.ParseDuration(q.Get("stall")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
			return
		}
		if q.Get("cut") != "" {
			if sse {
				io.WriteString(w, "data: half an ev") // an unfinished event
				fl.Flush()
			}
			panic(http.ErrAbortHandler) // the connection breaks
		}
	})
}

// streamProvider serves provider "p" on loopback, in front of up, with
// the given timeout (until the answer starts) and idle_timeout; lean
// gives its GETs the lean client.
func streamProvider(t *testing.T, up *proxytest.Upstream, timeout, idleTimeout, maxDuration time.Duration, lean bool) (*Provider, string) {
	t.Helper()
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Timeout = timeout
	pc = proxytest.NormalizedProvider(pc)
	pc.IdleTimeout, pc.MaxDuration = idleTimeout, maxDuration
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := New(pc, tr, Hooks{}, NewMetrics(prometheus.NewRegistry()), proxytest.DiscardLogger(), nil)
	if lean {
		pools := h1.NewPools()
		t.Cleanup(pools.Close)
		p.UseLean(pools)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return p, ts.URL + "/providers/p"
}

// read sends method to url and reads the whole answer: the body as far as
// it came, and the error that ended it (nil for a clean end).
func read(t *testing.T, method, url string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, err = io.Copy(&sb, bufio.NewReader(resp.Body))
	return resp.StatusCode, sb.String(), err
}

// TestLongStreamNotCut: a healthy answer that keeps flowing for several
// times the provider's timeout is neither cut nor counted as a failure,
// through the lean client (GET) and http.Transport (POST).
func TestLongStreamNotCut(t *testing.T) {
	for _, tc := range []struct {
		method string
		lean   bool
	}{{"GET", true}, {"POST", false}} {
		t.Run(tc.method, func(t *testing.T) {
			up := streamUpstream(t, 12, 50*time.Millisecond) // ~600ms in all
			p, url := streamProvider(t, up, 150*time.Millisecond, time.Second, 0, tc.lean)
			code, body, err := read(t, tc.method, url+"/sse")
			if code != 200 || err != nil || strings.Count(body, "data: token") != 12 {
				t.Fatalf("got %d, %d events, err %v; want 200 and all 12 events", code, strings.Count(body, "data: token"), err)
			}
			snap := p.Upstreams[0].Health.Snapshot()
			if snap.ErrorCount != 0 || snap.SuccessCount != 1 {
				t.Errorf("upstream error_count %d success_count %d (%s); want one success", snap.ErrorCount, snap.SuccessCount, snap.LastErrorMessage)
			}
		})
	}
}

// TestStalledStream: an answer silent for longer than idle_timeout after
// it started is a failure of kind stalled; the client's event stream ends
// with an SSE error event and without its last chunk (never a clean end).
func TestStalledStream(t *testing.T) {
	for _, tc := range []struct {
		method string
		lean   bool
	}{{"GET", true}, {"POST", false}} {
		t.Run(tc.method, func(t *testing.T) {
			up := streamUpstream(t, 2, 10*time.Millisecond)
			p, url := streamProvider(t, up, 5*time.Second, 200*time.Millisecond, 0, tc.lean)
			code, body, err := read(t, tc.method, url+"/sse?stall=3s")
			if code != 200 || strings.Count(body, "data: token") != 2 {
				t.Fatalf("got %d %q; want 200 with the 2 events sent", code, body)
			}
			if !strings.Contains(body, "event: error\ndata: ") || !strings.Contains(body, "stalled") {
				t.Errorf("body %q; want an SSE error event saying the answer stalled", body)
			}
			if err == nil {
				t.Error("the broken stream ended cleanly; want it cut (no last chunk)")
			}
			proxytest.Eventually(t, 2*time.Second, "the stall counted", func() bool {
				return p.Upstreams[0].Health.Snapshot().ErrorCount == 1
			})
			if f := p.Upstreams[0].Health.Snapshot().RecentFailures; len(f) == 0 || f[0].Kind != breaker.KindStalled {
				t.Errorf("failures %+v; want one of kind stalled", f)
			}
		})
	}
}

// TestCutStream: an event stream that breaks off is a failure of kind cut;
// the client gets the whole events that came, an error event (never the
// half event), and no clean end. A plain chunked answer is cut too.
func TestCutStream(t *testing.T) {
	up := streamUpstream(t, 3, 10*time.Millisecond)
	p, url := streamProvider(t, up, 5*time.Second, time.Second, 0, false)
	code, body, err := read(t, "POST", url+"/sse?cut=1")
	if code != 200 || strings.Count(body, "data: token") != 3 || strings.Contains(body, "half an ev") {
		t.Fatalf("got %d %q; want the 3 whole events and not the unfinished one", code, body)
	}
	if !strings.Contains(body, "event: error\n") || err == nil {
		t.Errorf("body %q, end %v; want an error event and a cut end", body, err)
	}
	proxytest.Eventually(t, 2*time.Second, "the cut counted", func() bool {
		f := p.Upstreams[0].Health.Snapshot().RecentFailures
		return len(f) == 1 && f[0].Kind == breaker.KindCut
	})

	_, body, err = read(t, "POST", url+"/chunked?cut=1")
	if err == nil || strings.Count(body, "token") != 3 {
		t.Errorf("chunked: %q, end %v; want 3 lines and a cut end", body, err)
	}
}

// TestMaxDuration: max_duration bounds the whole answer, flowing or not.
func TestMaxDuration(t *testing.T) {
	up := streamUpstream(t, 100, 20*time.Millisecond) // 2s of healthy stream
	p, url := streamProvider(t, up, 5*time.Second, time.Second, 300*time.Millisecond, true)
	start := time.Now()
	_, body, err := read(t, "GET", url+"/sse")
	if err == nil || time.Since(start) > 1500*time.Millisecond || strings.Count(body, "data: token") >= 100 {
		t.Errorf("after %v: %d events, end %v; want the answer cut near max_duration", time.Since(start), strings.Count(body, "data: token"), err)
	}
	proxytest.Eventually(t, 2*time.Second, "the overrun counted", func() bool {
		f := p.Upstreams[0].Health.Snapshot().RecentFailures
		return len(f) == 1 && f[0].Kind == breaker.KindTimeout && strings.Contains(f[0].Message, "max_duration")
	})
}

func TestEventStreamType(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true, "text/event-stream ;x=y": true,
		"text/event-streams": false, "text/plain": false, "": false, "application/json": false,
	} {
		if got := eventStream(ct); got != want {
			t.Errorf("eventStream(%q) = %v; want %v", ct, got, want)
		}
	}
}
