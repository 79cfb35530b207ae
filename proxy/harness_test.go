package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// The server builders of this package's tests. Everything else a test
// needs from a harness (fake upstreams, config builders, condition waits,
// log capture, metric reading) is in internal/proxytest.

// serverSetup is what the serverOptions of newServer and startServer set.
type serverSetup struct {
	cfg         *config.Config
	opts        Options
	quietLog    bool    // the front's own error log is discarded
	closer      *func() // receives the function that closes it all now
	undelivered bool    // alerts may be left undelivered at Close
}

// serverOption changes how newServer and startServer build a Server.
type serverOption func(*serverSetup)

// withLogger gives the Server log (default: a quiet logger).
func withLogger(l *slog.Logger) serverOption {
	return func(s *serverSetup) { s.opts.Logger = l }
}

// withOptions sets the Server's Options; a nil Logger stays quiet.
func withOptions(o Options) serverOption {
	return func(s *serverSetup) { s.opts = o }
}

// withQuietFrontLog discards the front server's own error log, for tests
// whose upstreams or clients misbehave on purpose.
func withQuietFrontLog() serverOption {
	return func(s *serverSetup) { s.quietLog = true }
}

// closedBy stores in *fn a function that closes the front and the Server
// at once (a clean shutdown, as at the end of the test). It may be called
// any number of times; the end of the test calls it too.
func closedBy(fn *func()) serverOption {
	return func(s *serverSetup) { s.closer = fn }
}

// withUndeliveredAlerts is for a test whose webhook keeps failing: at
// the end of the test Close gives up on the alerts still queued after 2s
// (it then returns its context's error, which is not a failure here).
func withUndeliveredAlerts() serverOption {
	return func(s *serverSetup) { s.undelivered = true }
}

// newServer is New(cfg) normalized, with a quiet logger unless an option
// gives one, closed at the end of the test: Close must return within 5s,
// or 20s when plugin processes stop or alerts flush (see closeTimeout).
func newServer(tb testing.TB, cfg *config.Config, opts ...serverOption) *Server {
	tb.Helper()
	s, setup := build(tb, cfg, opts)
	closeAtEnd(tb, s, nil, setup)
	return s
}

// startServer serves newServer(cfg) on a loopback httptest server; both
// are closed at the end of the test (or by closedBy's function).
func startServer(tb testing.TB, cfg *config.Config, opts ...serverOption) (*Server, *httptest.Server) {
	tb.Helper()
	s, setup := build(tb, cfg, opts)
	ts := httptest.NewUnstartedServer(s)
	if setup.quietLog {
		ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	}
	ts.Start()
	closeAtEnd(tb, s, ts, setup)
	return s, ts
}

// startProviders is startServer for a config of just these providers.
func startProviders(tb testing.TB, providers ...config.Provider) (*Server, *httptest.Server) {
	tb.Helper()
	return startServer(tb, &config.Config{Providers: providers})
}

// startHCL is startServer for a config given as HCL text.
func startHCL(tb testing.TB, hcl string, opts ...serverOption) (*Server, *httptest.Server) {
	tb.Helper()
	return startServer(tb, proxytest.Config(tb, hcl), opts...)
}

func build(tb testing.TB, cfg *config.Config, opts []serverOption) (*Server, serverSetup) {
	tb.Helper()
	setup := serverSetup{cfg: cfg}
	for _, o := range opts {
		o(&setup)
	}
	if setup.opts.Logger == nil {
		setup.opts.Logger = proxytest.DiscardLogger()
	}
	s, err := New(proxytest.Normalized(cfg), setup.opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s, setup
}

// closeTimeout is how long a test lets Server.Close take: 5s, or 20s
// when it may have plugin processes to stop or alerts to deliver (the
// config has models or alerts, or a reload may bring them).
func (setup serverSetup) closeTimeout() time.Duration {
	switch {
	case setup.undelivered:
		return 2 * time.Second
	case len(setup.cfg.Models) > 0 || len(setup.cfg.Alerts) > 0 || setup.opts.ConfigSource != nil:
		return 20 * time.Second
	}
	return 5 * time.Second
}

func closeAtEnd(tb testing.TB, s *Server, ts *httptest.Server, setup serverSetup) {
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			if ts != nil {
				s.BeginShutdown() // end event streams, or ts.Close waits for them
				ts.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), setup.closeTimeout())
			defer cancel()
			if err := s.Close(ctx); err != nil && !(setup.undelivered && errors.Is(err, context.DeadlineExceeded)) {
				tb.Errorf("Server.Close: %v", err)
			}
		})
	}
	if setup.closer != nil {
		*setup.closer = closeAll
	}
	tb.Cleanup(closeAll)
}

// getJSON GETs u and decodes its JSON answer into v.
func getJSON(tb testing.TB, u string, v any) {
	tb.Helper()
	resp, err := http.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
}

// fetchHealth GETs the health document from the server at base.
func fetchHealth(t *testing.T, base string) api.Health {
	t.Helper()
	resp, body := proxytest.Get(t, http.DefaultClient, base+"/api/diagnostics/health")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/diagnostics/health: got status %d; want 200", resp.StatusCode)
	}
	var h api.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("health document %q: %v", body, err)
	}
	return h
}

// fetchProvider is provider id's entry of the health document.
func fetchProvider(t *testing.T, base, id string) api.Provider {
	t.Helper()
	for _, e := range fetchHealth(t, base).Providers.Entries {
		if e.ProviderID == id {
			return e
		}
	}
	t.Fatalf("health document has no provider %q", id)
	return api.Provider{}
}

// upstreamOf is the entry of upstream u (its display URL) in p.
func upstreamOf(t *testing.T, p api.Provider, u string) api.Upstream {
	t.Helper()
	for _, up := range p.Upstreams {
		if up.URL == u {
			return up
		}
	}
	t.Fatalf("provider %q has no upstream %q in the health document: %+v", p.ProviderID, u, p.Upstreams)
	return api.Upstream{}
}

// upstreamAt is the i-th upstream of provider id in the health document.
func upstreamAt(t *testing.T, base, id string, i int) api.Upstream {
	t.Helper()
	ups := fetchProvider(t, base, id).Upstreams
	if i >= len(ups) {
		t.Fatalf("provider %q has %d upstreams; want index %d", id, len(ups), i)
	}
	return ups[i]
}

// upstreamByURL is upstream u (its display URL) of provider id in the
// health document.
func upstreamByURL(t *testing.T, base, id, u string) api.Upstream {
	t.Helper()
	return upstreamOf(t, fetchProvider(t, base, id), u)
}
