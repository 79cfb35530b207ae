package proxy

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// TestHealthPage: ?status=&q=&sort=&offset=&limit= answer one page of the
// entries, with the whole fleet's summaries and the number of matches;
// without them the document is the whole one, with no page field; a bad
// value is a 400 that says what is wrong.
func TestHealthPage(t *testing.T) {
	good := proxytest.NewUpstream(t)
	bad := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	a := proxytest.Provider(t, "a", good.URL)
	b := proxytest.WithHealth(proxytest.Provider(t, "b", bad.URL+"/eu-west"), 1, time.Minute, 1)
	b.Name = "Bravo"
	c := proxytest.Provider(t, "c", good.URL)
	d := proxytest.Provider(t, "d", good.URL)
	_, ts := startProviders(t, a, b, c, d)
	for _, id := range []string{"a", "b", "c"} {
		proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/"+id+"/x")
	}
	get := func(query string) (int, string, api.Health) {
		t.Helper()
		resp, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/health"+query)
		var doc api.Health
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return resp.StatusCode, body, doc
	}
	_, body, full := get("")
	if strings.Contains(body, `"page"`) || full.Page != nil || len(full.Providers.Entries) != 4 {
		t.Fatalf("the whole document has a page field or not every entry: %s", body)
	}
	if full.Providers.Summary.Unavailable != 1 || full.Providers.Summary.Healthy != 2 || full.Providers.Summary.Unknown != 1 {
		t.Fatalf("summary %+v; want b unavailable, a and c healthy, d unknown", full.Providers.Summary)
	}
	for _, c := range []struct {
		query   string
		want    []string
		matched int
	}{
		{"?status=problems", []string{"b"}, 1},
		{"?status=healthy", []string{"a", "c"}, 2},
		{"?status=unknown", []string{"d"}, 1},
		{"?q=BRAVO", []string{"b"}, 1},
		{"?q=eu-west", []string{"b"}, 1},
		{"?sort=problems&limit=2", []string{"b", "a"}, 4},
		{"?offset=1&limit=2", []string{"b", "c"}, 4},
		{"?offset=9", nil, 4},
		{"?sort=last_error&limit=1", []string{"b"}, 4},
	} {
		code, body, doc := get(c.query)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", c.query, code, body)
		}
		var got []string
		for _, p := range doc.Providers.Entries {
			got = append(got, p.ProviderID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: providers %v; want %v", c.query, got, c.want)
		}
		if doc.Page == nil || doc.Page.Providers.Matched != c.matched || doc.Page.Providers.Returned != len(c.want) {
			t.Errorf("%s: page %+v; want %d matched", c.query, doc.Page, c.matched)
		}
		if doc.Providers.Summary != full.Providers.Summary || doc.Overall != full.Overall {
			t.Errorf("%s: summary %+v; want the whole fleet's %+v", c.query, doc.Providers.Summary, full.Providers.Summary)
		}
	}
	for query, want := range map[string]string{
		"?status=sick":   `status \"sick\" is not one of`,
		"?limit=0":       `limit \"0\" is not a whole number from 1`,
		"?offset=-3":     `offset \"-3\"`,
		"?sort=age":      `sort \"age\"`,
		"?q=a&q=b":       "q is given 2 times",
		"?status=&q=%00": "",
	} {
		code, body, _ := get(query)
		if want == "" {
			if code != http.StatusOK {
				t.Errorf("%s: %d; want 200", query, code)
			}
			continue
		}
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s; want 400 saying %s", query, code, body, want)
		}
	}
}

// TestTimelineMarks: one entry's history (?kind=&key=) lists its status
// changes, with the entry's status before and after, and the faults
// injected into and cleared from its upstreams, which the event stream
// sends as "fault" events with the entry after them.
func TestTimelineMarks(t *testing.T) {
	bad := proxytest.NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	good := proxytest.NewUpstream(t)
	alpha := proxytest.WithHealth(proxytest.Provider(t, "alpha", bad.URL, good.URL), 1, time.Minute, 1)
	alpha.Retry.Attempts = 1
	_, ts := startProviders(t, alpha, proxytest.Provider(t, "beta", good.URL))

	events := make(chan string, 64)
	req, _ := http.NewRequest("GET", ts.URL+"/api/diagnostics/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				ev = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok && ev != "" {
				events <- ev + " " + v
			}
		}
		close(events)
	}()
	waitEvent := func(kind string) string {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the event stream ended before a %s event", kind)
				}
				if strings.HasPrefix(e, kind+" ") {
					return strings.TrimPrefix(e, kind+" ")
				}
			case <-deadline:
				t.Fatalf("no %s event in 5s", kind)
			}
		}
	}
	waitEvent("hello")

	marks := func() []api.Mark {
		t.Helper()
		_, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/history?kind=provider&key=alpha")
		var doc api.History
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Marks
	}
	if m := marks(); m == nil || len(m) != 0 {
		t.Fatalf("marks of a quiet entry: %#v; want []", m)
	}
	// both upstreams called: the good one healthy, the bad one tripped
	proxytest.Eventually(t, 5*time.Second, "alpha's bad upstream trips", func() bool {
		proxytest.Get(t, http.DefaultClient, ts.URL+"/providers/alpha/x")
		for _, m := range marks() {
			if m.Type == "status" && m.Upstream == bad.URL && m.UpstreamTo == "unavailable" {
				return true
			}
		}
		return false
	})
	var trip api.Mark
	for _, m := range marks() {
		if m.Upstream == bad.URL && m.UpstreamTo == "unavailable" {
			trip = m
		}
	}
	if trip.To != "degraded" || trip.From == "" || trip.Reason == "" || time.Since(trip.Time) > time.Minute {
		t.Errorf("the trip's mark %+v; want alpha degraded (one of two upstreams down), from its status before, with a reason", trip)
	}

	res, body := proxytest.Do(t, http.DefaultClient, "POST", ts.URL+"/api/admin/fault?provider=alpha&upstream=1",
		strings.NewReader(`{"kind":"error","status":503,"ttl":"5m","reason":"game day 7"}`), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("inject: %d %s", res.StatusCode, body)
	}
	var ev api.FaultEvent
	if err := json.Unmarshal([]byte(waitEvent("fault")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Key != "alpha" || ev.Mark.Type != "fault" || ev.Mark.Upstream != good.URL || !strings.Contains(ev.Mark.Reason, "game day 7") ||
		ev.Mark.Fault == nil || ev.Entry.Upstreams[1].Fault == nil {
		t.Errorf("fault event %+v; want alpha's second upstream, its reason, the fault and the entry with it", ev)
	}
	res, body = proxytest.Do(t, http.DefaultClient, "DELETE", ts.URL+"/api/admin/fault?provider=alpha", nil, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("clear: %d %s", res.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(waitEvent("fault")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Mark.Type != "fault-clear" || ev.Entry.Upstreams[1].Fault != nil {
		t.Errorf("clear event %+v; want fault-clear and the entry without it", ev)
	}
	var types []string
	for _, m := range marks() {
		types = append(types, m.Type)
	}
	if n := len(types); n < 3 || types[n-2] != "fault" || types[n-1] != "fault-clear" {
		t.Errorf("alpha's marks are %v; want its status changes, then fault and fault-clear", types)
	}
	if res, body := proxytest.Get(t, http.DefaultClient, ts.URL+"/api/diagnostics/history"); strings.Contains(body, `"marks"`) {
		t.Errorf("the whole history (%d) has marks: %.200s", res.StatusCode, body)
	}
}

// BenchmarkScaleHealthPage is one GET /api/diagnostics/health of the
// UI's first page (problems first, 50 entries) with n providers.
func BenchmarkScaleHealthPage(b *testing.B) {
	forEachScale(b, func(b *testing.B, n int) {
		s := newServer(b, loadScaleConfig(b, writeScaleConfig(b, b.TempDir(), n, 0)))
		req := httptest.NewRequest("GET", "/api/diagnostics/health?status=all&sort=problems&offset=0&limit=50", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		w := &countingWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.code, w.n = 0, 0
			s.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("got status %d; want 200", w.code)
			}
		}
		b.ReportMetric(float64(w.n), "doc-bytes")
	})
}
