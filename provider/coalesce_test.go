package provider

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/internal/coalesce"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// coalesceServer serves provider "p" with coalesce = true in front of up.
// The client's Transport and the provider's share closeIdle's closing
// of idle connections (for goroutine counts).
func coalesceServer(t *testing.T, up *proxytest.Upstream) (*Provider, *coalesce.Handler, string, *prometheus.Registry, *http.Client) {
	t.Helper()
	pc := proxytest.Provider(t, "p", up.URL)
	pc.Coalesce = true
	pc = proxytest.NormalizedProvider(pc)
	reg := prometheus.NewRegistry()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := New(pc, tr, Hooks{}, NewMetrics(reg), proxytest.DiscardLogger(), nil)
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	client := &http.Client{Transport: &closingTransport{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, also: tr}}
	t.Cleanup(client.CloseIdleConnections)
	return p, p.coalesce, ts.URL + "/providers/p", reg, client
}

// closingTransport closes the idle connections of another transport with
// its own.
type closingTransport struct {
	*http.Transport
	also *http.Transport
}

func (c *closingTransport) CloseIdleConnections() {
	c.Transport.CloseIdleConnections()
	c.also.CloseIdleConnections()
}

// gate lets every waiter through once cond held for one of them: a
// condition wait that a waiter polling a moment late does not miss.
type gate struct {
	once sync.Once
	open chan struct{}
	cond func() bool
}

func newGate(cond func() bool) *gate { return &gate{open: make(chan struct{}), cond: cond} }

func (g *gate) wait(ctx context.Context) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if g.cond() {
			g.once.Do(func() { close(g.open) })
		}
		select {
		case <-g.open:
			return
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-tick.C:
		}
	}
}

// bigBody is an answer of several writes.
var bigBody = strings.Repeat("0123456789abcdef", 40<<10/16) // 40 KiB

// TestCoalesceConcurrentGets: 200 identical concurrent GETs make one
// upstream request, and every client gets the whole answer, headers
// included. The upstream answers once all 200 clients wait.
func TestCoalesceConcurrentGets(t *testing.T) {
	const clients = 200
	var co *coalesce.Handler
	all := newGate(func() bool { return co.Clients() == clients })
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		all.wait(r.Context()) // until every client has joined
		w.Header().Set("X-Price", "42")
		for i := 0; i < len(bigBody); i += 4 << 10 {
			io.WriteString(w, bigBody[i:i+4<<10])
			http.NewResponseController(w).Flush()
		}
	})
	_, co0, url, reg, client := coalesceServer(t, up)
	co = co0
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, body := proxytest.Get(t, client, url+"/price?sym=BTC")
			if resp.StatusCode != 200 || resp.Header.Get("X-Price") != "42" || body != bigBody {
				t.Errorf("got %d, X-Price %q, %d bytes; want 200, 42 and the whole %d-byte body", resp.StatusCode, resp.Header.Get("X-Price"), len(body), len(bigBody))
			}
		})
	}
	wg.Wait()
	if got := up.Hits.Load(); got != 1 {
		t.Errorf("upstream got %d requests; want 1", got)
	}
	if got := proxytest.MetricValue(t, reg, "healproxy_coalesced_requests_total", map[string]string{"provider": "p"}); got != clients-1 {
		t.Errorf("coalesced requests %v; want %d", got, clients-1)
	}
}

// TestCoalesceKeys: requests that differ in Authorization (or query),
// and POSTs, are never coalesced; each gets its own answer.
func TestCoalesceKeys(t *testing.T) {
	var co *coalesce.Handler
	var want int
	all := newGate(func() bool { return co.Clients() == want })
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		all.wait(r.Context()) // until every client waits
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
	})
	_, co0, url, _, client := coalesceServer(t, up)
	co = co0
	type req struct{ method, path, auth string }
	reqs := []req{}
	for range 5 {
		reqs = append(reqs, req{"GET", "/a", "Bearer alice"}, req{"GET", "/a", "Bearer bob"}, req{"GET", "/a?x=1", "Bearer alice"})
	}
	want = len(reqs)
	var wg sync.WaitGroup
	for _, rq := range reqs {
		wg.Go(func() {
			resp, body := proxytest.Do(t, client, rq.method, url+rq.path, nil, http.Header{"Authorization": {rq.auth}})
			if w := rq.method + " " + rq.path + " " + rq.auth; resp.StatusCode != 200 || body != w {
				t.Errorf("got %d %q; want 200 %q", resp.StatusCode, body, w)
			}
		})
	}
	wg.Wait()
	if got := up.Hits.Load(); got != 3 {
		t.Errorf("upstream got %d requests; want 3 (one per key)", got)
	}

	// POSTs: each its own exchange (the upstream holds them until all came)
	up.Hits.Store(0)
	posts := newGate(func() bool { return up.InFlight.Load() == 5 })
	up.Set(func(w http.ResponseWriter, r *http.Request) {
		posts.wait(r.Context())
		io.WriteString(w, "posted")
	})
	for range 5 {
		wg.Go(func() {
			if resp, body := proxytest.Do(t, client, "POST", url+"/a", nil, nil); resp.StatusCode != 200 || body != "posted" {
				t.Errorf("POST: got %d %q", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if got := up.Hits.Load(); got != 5 {
		t.Errorf("upstream got %d POSTs; want 5", got)
	}
}

// TestCoalesceClientsLeave: a joined client that goes away, and the one
// that started the exchange, leave the others' answer whole; the
// upstream exchange is not cancelled while a client remains.
func TestCoalesceClientsLeave(t *testing.T) {
	var co *coalesce.Handler
	proceed := make(chan struct{})
	upstreamCancelled := make(chan struct{}, 1)
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, bigBody[:len(bigBody)/2])
		http.NewResponseController(w).Flush()
		select {
		case <-proceed:
		case <-r.Context().Done():
			upstreamCancelled <- struct{}{}
			return
		}
		io.WriteString(w, bigBody[len(bigBody)/2:])
	})
	_, co0, url, _, client := coalesceServer(t, up)
	co = co0
	before := runtime.NumGoroutine()

	get := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/stream", nil)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	go get(firstCtx) // starts the exchange
	proxytest.Eventually(t, 5*time.Second, "the first client's exchange", func() bool { return up.Hits.Load() == 1 })
	quitter, cancelQuitter := context.WithCancel(context.Background())
	go get(quitter)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if body, err := get(context.Background()); err != nil || body != bigBody {
				t.Errorf("got %d bytes, %v; want the whole %d-byte body", len(body), err, len(bigBody))
			}
		})
	}
	proxytest.Eventually(t, 5*time.Second, "7 clients", func() bool { return co.Clients() == 7 })
	cancelFirst()
	cancelQuitter()
	proxytest.Eventually(t, 5*time.Second, "2 clients to leave", func() bool { return co.Clients() == 5 })
	close(proceed)
	wg.Wait()
	select {
	case <-upstreamCancelled:
		t.Error("the upstream exchange was cancelled when the first client left")
	default:
	}
	if got := up.Hits.Load(); got != 1 {
		t.Errorf("upstream got %d requests; want 1", got)
	}
	proxytest.Eventually(t, 5*time.Second, "the exchange's goroutines to end", func() bool {
		client.CloseIdleConnections()
		return co.Clients() == 0 && runtime.NumGoroutine() <= before+2
	})
}

// TestCoalesceAllClientsLeave: when every client has gone, the upstream
// exchange is cancelled.
func TestCoalesceAllClientsLeave(t *testing.T) {
	cancelled := make(chan struct{})
	up := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(cancelled)
	})
	_, co, url, _, client := coalesceServer(t, up)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/x", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	proxytest.Eventually(t, 5*time.Second, "3 clients and the exchange", func() bool { return co.Clients() == 3 && up.Hits.Load() == 1 })
	cancel()
	wg.Wait()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second): // well within the provider's 5s timeout
		t.Fatal("the upstream exchange went on after every client left")
	}
}
