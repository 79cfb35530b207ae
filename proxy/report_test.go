package proxy

// Health report export: GET /api/diagnostics/report in
// JSON and CSV.

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// fetchReport reads the JSON report and checks its envelope and fields.
func fetchReport(t *testing.T, ts *httptest.Server) ([]api.ReportRow, string) {
	t.Helper()
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report?format=json")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("JSON report: %d %s, %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var doc struct {
		Status        string            `json:"status"`
		Timestamp     string            `json:"timestamp"`
		WindowSeconds int               `json:"window_seconds"`
		Entries       []json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Status != "success" || doc.Entries == nil || doc.WindowSeconds != 3600 {
		t.Fatalf("JSON report %s: %v", body, err)
	}
	parseStamp(t, "timestamp", &doc.Timestamp)
	rows := make([]api.ReportRow, len(doc.Entries))
	for i, raw := range doc.Entries {
		var fields map[string]json.RawMessage
		json.Unmarshal(raw, &fields)
		want := []string{"kind", "key", "status", "reason", "error_count", "success_count", "last_success", "last_error",
			"last_error_message", "cooldown_until", "last_hour"}
		if _, ok := fields["upstream"]; ok {
			want = append(want, "upstream")
		}
		wantKeys(t, "report entry", fields, want...)
		var hour map[string]json.RawMessage
		json.Unmarshal(fields["last_hour"], &hour)
		wantKeys(t, "last_hour", hour, "requests", "errors", "success_rate", "p50_latency_ms", "p95_latency_ms", "unavailable_seconds")
		if err := json.Unmarshal(raw, &rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	return rows, body
}

func rowOf(t *testing.T, rows []api.ReportRow, kind, key, upstream string) api.ReportRow {
	t.Helper()
	for _, r := range rows {
		if r.Kind == kind && r.Key == key && r.Upstream == upstream {
			return r
		}
	}
	t.Fatalf("report has no %s %s %s row: %+v", kind, key, upstream, rows)
	return api.ReportRow{}
}

// TestReportJSON: one row per upstream and model; the last hour matches
// the traffic sent; time unavailable is counted.
func TestReportJSON(t *testing.T) {
	up, m1, m2, rec := proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	dead := proxytest.DeadURL(t)
	cfg := &config.Config{Health: reloadHealth, Providers: []config.Provider{
		proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 100, time.Minute, 1),
		proxytest.Provider(t, "multi", m1.URL, m2.URL),
		proxytest.WithHealth(proxytest.Provider(t, "down", dead), 1, time.Hour, 1),
		proxytest.WithHealth(proxytest.Provider(t, "rec", rec.URL), 1, 300*time.Millisecond, 1),
	}, Models: []config.Model{builtinModel("m")}}
	s, ts := startServer(t, cfg)
	cl := ts.Client()
	waitModelPid(t, s, "m", 0)

	sendOK(t, ts, "p", 10)
	up.Code.Store(500)
	for range 2 {
		if resp, _ := proxytest.Get(t, cl, ts.URL+"/providers/p/x"); resp.StatusCode != 500 {
			t.Fatalf("got %d; want the upstream's 500", resp.StatusCode)
		}
	}
	for range 3 {
		wantPredict(t, ts, "m", 200)
	}
	proxytest.Get(t, cl, ts.URL+"/providers/down/x") // trips down for an hour
	// rec: unavailable for its 300ms cooldown, then healthy after a trial
	rec.Code.Store(500)
	proxytest.Get(t, cl, ts.URL+"/providers/rec/x")
	tripped := time.Now()
	rec.Code.Store(0)
	proxytest.Eventually(t, 5*time.Second, "rec's cooldown to end", func() bool {
		return upstreamOf(t, fetchProvider(t, ts.URL, "rec"), rec.URL).Status != "unavailable"
	})
	sendOK(t, ts, "rec", 1)
	recovered := time.Now()

	rows, _ := fetchReport(t, ts)
	if len(rows) != 6 {
		t.Errorf("report has %d rows; want 6 (5 upstreams, 1 model): %+v", len(rows), rows)
	}
	p := rowOf(t, rows, "provider", "p", up.URL)
	if h := p.LastHour; h.Requests != 12 || h.Errors != 2 || h.SuccessRate != 0.8333 || h.P50MS <= 0 || h.P95MS < h.P50MS || h.UnavailableSecs != 0 {
		t.Errorf("p last_hour %+v; want 12 requests, 2 errors, success_rate 0.8333, p50 > 0, p95 >= p50, never unavailable", h)
	}
	if p.Status != "healthy" || p.SuccessCount != 10 || p.ErrorCount != 2 || p.LastSuccess == nil || p.LastError == nil ||
		p.LastErrorMsg == nil || !strings.Contains(*p.LastErrorMsg, "500") || p.CooldownUntil != nil {
		t.Errorf("p row %+v; want healthy, 10 successes, 2 errors, the 500 as last error", p)
	}
	for _, u := range []string{m1.URL, m2.URL} {
		if r := rowOf(t, rows, "provider", "multi", u); r.Status != "unknown" || r.LastHour.Requests != 0 || r.LastHour.SuccessRate != 1 {
			t.Errorf("multi %s: %+v; want an unknown row with no requests", u, r)
		}
	}
	d := rowOf(t, rows, "provider", "down", dead)
	if d.Status != "unavailable" || d.CooldownUntil == nil || d.LastHour.Requests != 1 || d.LastHour.Errors != 1 ||
		d.LastHour.SuccessRate != 0 || d.LastHour.UnavailableSecs <= 0 {
		t.Errorf("down row %+v; want unavailable, in cooldown, 1 failed request, some time unavailable", d)
	}
	r := rowOf(t, rows, "provider", "rec", rec.URL)
	if maxSecs := recovered.Sub(tripped).Seconds() + 0.1; r.Status != "healthy" || r.LastHour.UnavailableSecs < 0.3 || r.LastHour.UnavailableSecs > maxSecs {
		t.Errorf("rec row %+v; want healthy, unavailable for 0.3..%.3f s", r, maxSecs)
	}
	m := rowOf(t, rows, "model", "m", "")
	if m.Status != "healthy" || m.SuccessCount != 3 || m.LastHour.Requests != 3 || m.LastHour.Errors != 0 || m.LastHour.SuccessRate != 1 || m.LastHour.P50MS <= 0 {
		t.Errorf("model row %+v; want healthy with 3 successful calls", m)
	}
	// time unavailable grows while down stays down
	before := d.LastHour.UnavailableSecs
	proxytest.Eventually(t, 5*time.Second, "down's unavailable_seconds to grow", func() bool {
		rows, _ := fetchReport(t, ts)
		return rowOf(t, rows, "provider", "down", dead).LastHour.UnavailableSecs > before
	})
}

var reportHeader = []string{"kind", "key", "upstream", "status", "reason", "error_count", "success_count",
	"last_success", "last_error", "last_error_message", "cooldown_until",
	"requests_1h", "errors_1h", "success_rate_1h", "p50_latency_ms_1h", "p95_latency_ms_1h", "unavailable_seconds_1h"}

// TestReportCSV: a downloadable CSV with a header and one line per entry,
// agreeing with the JSON report; a bad format is 400.
func TestReportCSV(t *testing.T) {
	up, b := proxytest.NewUpstream(t), proxytest.NewUpstream(t)
	cfg := &config.Config{Health: reloadHealth, Providers: []config.Provider{
		proxytest.WithHealth(proxytest.Provider(t, "p", up.URL), 100, time.Minute, 1),
		proxytest.Provider(t, "q", b.URL, proxytest.DeadURL(t)),
	}, Models: []config.Model{builtinModel("m")}}
	s, ts := startServer(t, cfg)
	waitModelPid(t, s, "m", 0)
	sendOK(t, ts, "p", 4)
	up.Code.Store(502)
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	sendOK(t, ts, "q", 3)

	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report?format=csv")
	if resp.StatusCode != 200 {
		t.Fatalf("CSV report: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q; want text/csv", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, `.csv"`) {
		t.Errorf("Content-Disposition %q; want an attachment named *.csv", cd)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, body)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], reportHeader) {
		t.Fatalf("CSV header %q; want %q", recs[0], reportHeader)
	}
	rows, _ := fetchReport(t, ts)
	if len(recs)-1 != len(rows) || len(rows) != 4 {
		t.Fatalf("CSV has %d lines, JSON %d rows; want 4 each (3 upstreams, 1 model)", len(recs)-1, len(rows))
	}
	col := func(rec []string, name string) string { return rec[slices.Index(reportHeader, name)] }
	for i, rec := range recs[1:] {
		row := rows[i]
		if col(rec, "kind") != row.Kind || col(rec, "key") != row.Key || col(rec, "upstream") != row.Upstream || col(rec, "status") != row.Status ||
			col(rec, "requests_1h") != strconv.FormatInt(row.LastHour.Requests, 10) || col(rec, "errors_1h") != strconv.FormatInt(row.LastHour.Errors, 10) {
			t.Errorf("CSV line %d %q does not match JSON row %+v", i+1, rec, row)
		}
		if col(rec, "last_success") != "" {
			if _, err := time.Parse(time.RFC3339Nano, col(rec, "last_success")); err != nil {
				t.Errorf("CSV line %d: last_success %q: %v", i+1, col(rec, "last_success"), err)
			}
		}
	}
	p := recs[1]
	if col(p, "key") != "p" || col(p, "requests_1h") != "5" || col(p, "errors_1h") != "1" || col(p, "success_rate_1h") != "0.8" ||
		col(p, "success_count") != "4" || col(p, "error_count") != "1" || !strings.Contains(col(p, "last_error_message"), "502") {
		t.Errorf("CSV line for p %q; want 5 requests, 1 error, success_rate 0.8, the 502 as last error", p)
	}
	if rate, err := strconv.ParseFloat(col(p, "p95_latency_ms_1h"), 64); err != nil || rate <= 0 || math.IsNaN(rate) {
		t.Errorf("p95 %q; want a positive number", col(p, "p95_latency_ms_1h"))
	}
	if m := recs[len(recs)-1]; col(m, "kind") != "model" || col(m, "key") != "m" || col(m, "upstream") != "" || col(m, "status") != "healthy" {
		t.Errorf("CSV model line %q", m)
	}

	// JSON is the default, and downloadable too.
	resp, _ = proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Errorf("default report: %d, %q, %q; want a JSON attachment", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	for _, f := range []string{"xml", "CSV", "json,csv"} {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report?format="+f)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"status":"error"`) {
			t.Errorf("format=%s: got %d %s; want 400 JSON", f, resp.StatusCode, body)
		}
	}
}

// TestReportEmpty: no providers, no models: a header alone, and [] in JSON.
func TestReportEmpty(t *testing.T) {
	_, ts := startServer(t, &config.Config{})
	if rows, body := fetchReport(t, ts); len(rows) != 0 || !strings.Contains(body, `"entries":[]`) {
		t.Errorf("empty JSON report: %s", body)
	}
	_, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report?format=csv")
	if recs, err := csv.NewReader(strings.NewReader(body)).ReadAll(); err != nil || len(recs) != 1 {
		t.Errorf("empty CSV report %q: %v; want the header alone", body, err)
	}
}

// TestReportNoSecrets: query strings of upstream URLs and header values
// appear in neither format, after successes and failures.
func TestReportNoSecrets(t *testing.T) {
	const secret = "s3cret"
	up := proxytest.NewUpstream(t)
	mk := func(id string, ups ...string) config.Provider {
		pc := proxytest.WithHealth(proxytest.Provider(t, id, ups...), 1, time.Minute, 1)
		pc.Headers = map[string]string{"Authorization": "Bearer " + secret + "-h1", "X-Api-Key": secret + "-h2"}
		return pc
	}
	cfg := &config.Config{AdminToken: "admin-" + secret, Providers: []config.Provider{
		mk("ok", up.URL+"/base?apikey="+secret+"-q1"),
		mk("dead", proxytest.DeadURL(t)+"/x?token="+secret+"-q2"),
		mk("user", strings.Replace(up.URL, "http://", "http://user:"+secret+"-pw@", 1)+"/?k="+secret+"-q3"),
	}}
	_, ts := startServer(t, cfg)
	sendOK(t, ts, "ok", 2)
	sendOK(t, ts, "user", 1)
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/dead/x")
	if !strings.Contains(up.Last(t).RequestURI, secret) {
		t.Fatal("the upstream did not get its query string; the check below would prove nothing")
	}
	for _, f := range []string{"json", "csv"} {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/report?format="+f)
		var all strings.Builder
		for k, v := range resp.Header {
			all.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		all.WriteString(body)
		if i := strings.Index(all.String(), secret); i >= 0 {
			s := all.String()
			t.Errorf("%s report shows a secret: …%s…", f, s[max(0, i-120):min(len(s), i+60)])
		}
		if !strings.Contains(body, "cannot connect") {
			t.Errorf("%s report lacks the dead upstream's error; the failure did not happen as planned:\n%s", f, body)
		}
	}
}
