package proxy

// Fuzz tests (RELIABILITY.md, "Fuzzing"). Run one at a time, bounded, as
// scripts/fuzz.sh does:
//
//	go test -run '^$' -fuzz '^FuzzProviderPath$' -fuzztime 10s ./proxy/
//
// Seed corpora are in testdata/fuzz/<FuzzName>; a failing input found by
// the fuzzer lands there too and becomes a regression test of the plain
// `go test` run.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
	"github.com/healproxy/healproxy/provider"
)

// FuzzProviderPath sends any request target (path and raw query, parsed
// from a request line as the server does) through the real router and
// transport to an httptest upstream configured as
// http://127.0.0.1:PORT/base/v1?key=k, and checks what leaves the proxy:
//   - nothing goes to any host but the configured upstream;
//   - what the upstream receives stays under /base/v1 (no dot segment,
//     encoded or not, survives, and the path is in origin form);
//   - the upstream's own query comes first, unchanged;
//   - at most one upstream request, answered with the upstream's 200;
//     else a refusal, the UI or the router's redirect to a local path;
//     never a 5xx, never a panic.
func FuzzProviderPath(f *testing.F) {
	up := proxytest.NewUpstream(f)
	upURL, _ := url.Parse(up.URL)
	var strayMu sync.Mutex
	var stray []string // requests for any other host
	base := newTransport()
	tr := proxytest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host != upURL.Host || r.URL.Scheme != "http" {
			strayMu.Lock()
			stray = append(stray, r.URL.String())
			strayMu.Unlock()
			return nil, fmt.Errorf("fuzz: refusing a request to %s", r.URL.Host)
		}
		return base.RoundTrip(r)
	})
	pc := config.Provider{ID: "p", Name: "P", Timeout: 5 * time.Second,
		Health: config.Health{ErrorThreshold: 1000, Cooldown: time.Second, RecoveryCount: 1},
		Retry:  config.Retry{Budget: 1}}
	pc.Upstreams = []*url.URL{mustParse(f, up.URL+"/base/v1?key=k")}
	// Two proxies: one whose transport records any other host; one with
	// the default transports (the lean client for GET, net/http for the
	// rest), where a request to another host would fail as a 502.
	var servers []*Server
	for _, opts := range []Options{{Logger: proxytest.DiscardLogger(), Transport: tr}, {Logger: proxytest.DiscardLogger()}} {
		s, err := New(proxytest.Normalized(&config.Config{Providers: []config.Provider{pc}}), opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { s.Close(context.Background()) })
		servers = append(servers, s)
	}

	for _, seed := range [][2]string{
		{"/providers/p/x", ""},
		{"/providers/p/x", "a=1&b=2"},
		{"/providers/p", ""},
		{"/providers/p/", "key=evil"},
		{"/providers/p/../../etc/passwd", ""},
		{"/providers/p/%2e%2e/%2E%2E/x", ""},
		{"/providers/p/.%2e/x", ""},
		{"/providers/p/..%2fx", ""},
		{"/providers/p/%2F%2Fevil.example/x", ""},
		{"/providers/p//evil.example/x", ""},
		{"/providers/p/\\..\\x", ""},
		{"/providers/p/%5c..%5cx", ""},
		{"/providers/p/%00", ""},
		{"/providers/p/%252e%252e/x", ""},
		{"/providers/p/;/../x", ""},
		{"/providers/p/./x/.", ""},
		{"/providers/./p/x", ""},
		{"/providers/q/x", ""},
		{"//providers/p/x", ""},
		{"/providers/p%2f..%2f/x", ""},
		{"/providers/p/%zz", ""},
		{"/providers/p/x#frag", ""},
		{"/providers/p/x", "%zz&;=&a=%00"},
		{"http://evil.example/providers/p/x", ""},
		{"http://evil.example:1/providers/p/../x", "q"},
		{"*", ""},
		{"evil.example:443", ""},
		{"/providers/p/@evil.example", ""},
		{"/providers/p/x y", ""},
		{"/providers/p/\u00e9/%C3%A9", ""},
	} {
		f.Add(seed[0], seed[1])
	}

	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		target := path
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		for i, method := range []string{"GET", "POST", "GET", "HEAD"} {
			s := servers[i/2]
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
				method + " " + target + " HTTP/1.1\r\nHost: proxy.test\r\nContent-Length: 0\r\n\r\n")))
			if err != nil {
				return // the server answers 400 before any handler
			}
			req.RemoteAddr = "127.0.0.1:5555"
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			var got []string // the request URI of each upstream request
			for _, r := range up.Take() {
				got = append(got, r.RequestURI)
			}
			strayMu.Lock()
			strays := stray
			stray = nil
			strayMu.Unlock()
			if len(strays) > 0 {
				t.Fatalf("%s %q: the proxy sent requests to %q; want only %s", method, target, strays, upURL.Host)
			}
			switch {
			case len(got) > 1:
				t.Fatalf("%s %q: the upstream got %d requests %q; want at most 1", method, target, len(got), got)
			case len(got) == 1 && w.Code != 200:
				t.Fatalf("%s %q: got %d (body %s) after an upstream request; want the upstream's 200", method, target, w.Code, w.Body)
			case w.Code >= 500:
				t.Fatalf("%s %q: got status %d (body %s); want no 5xx", method, target, w.Code, w.Body)
			case w.Code/100 == 3:
				// the router's own redirect (an empty path to "/"): local only
				loc := w.Header().Get("Location")
				if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
					t.Fatalf("%s %q: got %d to %q; want a local redirect", method, target, w.Code, loc)
				}
			}
			for _, uri := range got {
				checkUnderBase(t, target, uri)
			}
		}
	})
}

// checkUnderBase fails unless uri (as the upstream received it) stays
// under /base/v1 and carries the upstream's own query first.
func checkUnderBase(t *testing.T, target, uri string) {
	t.Helper()
	if !strings.HasPrefix(uri, "/base/v1") {
		t.Fatalf("%q reached the upstream as %q; want it under /base/v1", target, uri)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		t.Fatalf("%q reached the upstream as %q, which does not parse: %v", target, uri, err)
	}
	rest := strings.TrimPrefix(u.Path, "/base/v1")
	if rest != "" && rest[0] != '/' {
		t.Fatalf("%q reached the upstream as %q: outside /base/v1/", target, uri)
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
			t.Fatalf("%q reached the upstream as %q: segment %q could leave the base path", target, uri, seg)
		}
	}
	if u.RawQuery != "key=k" && !strings.HasPrefix(u.RawQuery, "key=k&") {
		t.Fatalf("%q reached the upstream with query %q; want the upstream's key=k first", target, u.RawQuery)
	}
}

func mustParse(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// FuzzPredictBody posts any body to a real model (the built-in sentiment
// plugin, a subprocess) through the real router: the answer is 200, 400
// or 413, never a 5xx and never a panic, and an answer other than 200
// leaves the model's health as it was.
func FuzzPredictBody(f *testing.F) {
	h := config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1, MaxConcurrentReinit: 1}
	cfg := &config.Config{Health: h, Models: []config.Model{
		{Key: "m", Name: "m", Plugin: "sentiment", Timeout: 10 * time.Second, Health: h}}}
	s := newServer(f, cfg)
	m := s.state.Load().models["m"]
	proxytest.Eventually(f, 30*time.Second, "the sentiment plugin to start", func() bool {
		return m.Process() != nil && m.Health.Status() == breaker.Healthy
	})

	for _, seed := range []string{
		`{"inputs": "BTC breaking out"}`,
		`{"inputs": ["a", "b", ""]}`,
		`{"inputs": []}`,
		`{"inputs": null}`,
		`{"inputs": [null]}`,
		`{"inputs": 1}`,
		`{"inputs": {"a": 1}}`,
		`{"inputs": "x", "inputs": ["y"]}`,
		`{"Inputs": "case"}`,
		`{}`,
		`[]`,
		`null`,
		``,
		`{"inputs": "\ud800"}`,
		"{\"inputs\": \"\xff\xfe\"}",
		`{"inputs": "a"} trailing`,
		`{"inputs": ["` + strings.Repeat("x", 1000) + `"]}`,
		`{"inputs": [` + strings.Repeat(`"a",`, MaxPredictInputs) + `"a"]}`,
		strings.Repeat("[", 10000),
		`{"inputs": "\u0000"}`,
		`{"inputs": 1e999}`,
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		before := m.Health.Snapshot()
		req := httptest.NewRequest("POST", "/models/m/predict", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		var doc struct {
			Status string `json:"status"`
			Data   []json.RawMessage
		}
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("body %q: answer %d is not JSON: %v", body, w.Code, err)
		}
		after := m.Health.Snapshot()
		switch w.Code {
		case 200:
			if doc.Status != "success" || len(doc.Data) == 0 {
				t.Fatalf("body %q: got 200 %s; want success with data", body, w.Body)
			}
		case 400, 413:
			if doc.Status != "error" {
				t.Fatalf("body %q: got %d %s; want status error", body, w.Code, w.Body)
			}
			if after.ErrorCount != before.ErrorCount || after.SuccessCount != before.SuccessCount || after.Status != before.Status {
				t.Fatalf("body %q: a %d changed the model's health from %+v to %+v", body, w.Code, before, after)
			}
		default:
			t.Fatalf("body %q: got status %d (%s); want 200, 400 or 413", body, w.Code, w.Body)
		}
		if after.ErrorCount != 0 || after.Status != breaker.Healthy {
			t.Fatalf("body %q: the model is %v with %d errors; want healthy with none", body, after.Status, after.ErrorCount)
		}
	})
}

// FuzzRestoreEntry feeds any stored entry value to what a start-up does
// with it (persist.go's restore: decode, then restore the breaker and the
// drain) and then uses the provider: the health document, metrics, a
// request, a save. bbolt does not checksum values (see package store), so
// a damaged value must not crash or wedge the proxy.
func FuzzRestoreEntry(f *testing.F) {
	// Not a proxytest.Upstream: that records every request, and a fuzzer
	// sends requests without end.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	f.Cleanup(up.Close)
	pc := config.Provider{ID: "p", Name: "P", Timeout: 5 * time.Second,
		Health: config.Health{ErrorThreshold: 3, Cooldown: time.Minute, RecoveryCount: 1, CooldownMultiplier: 2, MaxCooldown: time.Hour},
		Retry:  config.Retry{Budget: 1}}
	pc.Upstreams = []*url.URL{mustParse(f, up.URL+"/v1")}
	s := newServer(f, &config.Config{Providers: []config.Provider{pc}})
	p := s.state.Load().providers["p"]

	now := time.Now().UTC()
	seeds := []persisted{
		{},
		{Health: breaker.State{Called: true, ErrorCount: 2, SuccessCount: 5, LastError: now}},
		{Health: breaker.State{Called: true, ErrorCount: 3, Open: true, CooldownUntil: now.Add(time.Minute), Trips: 2,
			RecentFailures: []breaker.Failure{{Kind: breaker.KindStatus, StatusCode: 502, Message: "upstream answered 502"}}}},
		{Health: breaker.State{Open: true, Indefinite: true, ForceReason: "operator"}},
		{Health: breaker.State{PausedUntil: now.Add(time.Hour), PauseReason: "429 with Retry-After: 3600"}},
		{Drain: &provider.DrainInfo{}},
	}
	for _, sd := range seeds {
		b, _ := json.Marshal(sd)
		f.Add(b)
	}
	for _, raw := range []string{
		`{"health":{"error_count":-5,"success_count":-1}}`,
		`{"health":{"open":true,"cooldown_until":"9999-12-31T23:59:59Z","trips":2147483647}}`,
		`{"health":{"open":true,"cooldown_until":"0001-01-01T00:00:01Z","trip_reason":-7}}`,
		`{"health":{"open":true,"trip_reason":99999}}`,
		`{"health":{"paused_until":"1677-09-21T00:12:43Z"}}`,
		`{"health":{"recent_failures":[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]}}`,
		`{"drain":{"until":"9999-01-01T00:00:00Z"}}`,
		`{"health":null,"drain":null}`,
		`not json`,
	} {
		f.Add([]byte(raw))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		u := p.Upstreams[0]
		u.Health = breaker.New("provider/p/fuzz", breaker.SettingsOf(pc.Health), breaker.Options{})
		u.Resume() // no drain
		// as Server.restore does with one stored value
		var ps persisted
		if json.Unmarshal(b, &ps) != nil {
			return
		}
		u.Health.Restore(ps.Health)
		u.RestoreDrain(ps.Drain, time.Now())

		if _, err := json.Marshal(s.healthDocument()); err != nil {
			t.Fatalf("entry %q: the health document does not encode: %v", b, err)
		}
		if _, err := s.metrics.reg.Gather(); err != nil {
			t.Fatalf("entry %q: metrics: %v", b, err)
		}
		_ = p.CooldownRemaining()
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/providers/p/x", nil)
		s.ServeHTTP(w, req)
		switch w.Code {
		case 200:
		case 503:
			ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("entry %q: got 503 with Retry-After %q; want whole seconds >= 1", b, w.Header().Get("Retry-After"))
			}
		default:
			t.Fatalf("entry %q: got status %d (%s); want 200 or 503", b, w.Code, w.Body)
		}
		if _, err := json.Marshal(s.snapshotState()); err != nil {
			t.Fatalf("entry %q: cannot save the state again: %v", b, err)
		}
	})
}
