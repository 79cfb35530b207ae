package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/proctest"
)

// Metrics the shipped files use that healproxy does not export yet (their
// queries must be valid; data is not required): none.
var notExportedYet = []string{}

// Metrics exported only with state.redis (this test runs without Redis).
var onlyWithRedis = []string{
	"healproxy_shared_state_connected", "healproxy_shared_state_sync_errors_total",
}

// TestPrometheus runs Debian's Prometheus against a real healproxy that
// sees real traffic (successes, failures, a tripped provider, a spent
// retry budget, a crashed model plugin), and checks over Prometheus' HTTP
// API that the metrics arrive, that every query of the Grafana dashboard
// returns data, that every alert rule is valid, evaluates without error
// and reads metrics that exist, and that promtool accepts the shipped
// files.
func TestPrometheus(t *testing.T) {
	t.Parallel() // each waits mostly (scrapes, cooldowns): run them side by side
	promBin := need(t, "prometheus", "prometheus", "the dashboard's and alert rules' queries against a real Prometheus")
	promtool := need(t, "promtool", "prometheus", "the alert rules (promtool check rules)")

	// promtool on the shipped files.
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"check", "config", "prometheus/prometheus.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	good, bad := upstreams(t)
	hook := newHTTPServer(t, http.StatusOK) // an alert webhook
	hp := startHealproxy(t, fmt.Sprintf(`
health {
  error_threshold = 2
  cooldown        = "10m"
  reinit_cooldown = "0s"
}
alert "ops" {
  webhook      = %q
  min_interval = "0s"
}
provider "prices" {
  upstreams        = [%q, %q]
  max_request_body = 16
  health_check {
    path     = "/ping"
    interval = "1s"
    timeout  = "1s"
  }
}
provider "broken" {
  upstreams = [%q, "%s/again"]
}
provider "flaky" {
  upstreams = [%q, %q]
  health {
    error_threshold = 1000
  }
  retry {
    budget        = 0.01
    budget_window = "1s"
    min_retries   = 1
  }
}
model "m0" {
  plugin   = "sentiment"
  fallback = "m1"
}
model "m1" {
  plugin = "sentiment"
}
`, hook, bad.URL, good.URL, bad.URL, bad.URL, bad.URL, good.URL))

	start := time.Now()
	prom := startPrometheus(t, promBin, strings.TrimPrefix(hp.base, "http://"))
	t.Logf("prometheus ready after %v", time.Since(start))

	// Traffic, bounded: successes and failures on prices, a provider
	// broken until every upstream is out (retries, the budget, the
	// all-down policy), model calls, and a plugin crash.
	for i := 0; i < 20; i++ {
		get(t, hp.base+"/providers/prices/ticker?symbol=BTC")
		get(t, hp.base+"/providers/broken/ticker")
		get(t, hp.base+"/providers/flaky/ticker")
		post(t, hp.base+"/models/m0/predict", `{"inputs": "BTC to the moon"}`)
	}
	// A burst on flaky: half its requests meet the broken upstream first
	// and need a retry, far more than its budget of one a second.
	for i := 0; i < 30; i++ {
		get(t, hp.base+"/providers/flaky/ticker")
	}
	// A body over max_request_body: the client's fault, not the upstream's.
	if code := post(t, hp.base+"/providers/prices/orders", strings.Repeat("x", 100)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d for a body over max_request_body; want 413", code)
	}
	hp.killPlugin("m0")
	post(t, hp.base+"/models/m0/predict", `{"inputs": "a call while it is down"}`)
	waitFor(t, 20*time.Second, "model m0 reinitialised by auto_reinit", func() bool { return hp.model("m0").Loaded })

	// The metrics arrive.
	waitFor(t, 30*time.Second, "Prometheus to scrape healproxy's metrics", func() bool {
		return prom.count(t, `healproxy_upstream_requests_total{job="healproxy"}`) > 0 &&
			prom.count(t, `healproxy_health_transitions_total{kind="model",to="unavailable"}`) > 0
	})

	t.Logf("metrics in prometheus after %v", time.Since(start))

	// Every query of the dashboard: valid, and with data (once two scrapes
	// have seen the counters, rate() has a value).
	dash := dashboardQueries(t, "grafana/healproxy.json")
	if len(dash) < 20 {
		t.Fatalf("got %d queries in the dashboard; want every panel's", len(dash))
	}
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		missing = missing[:0]
		for _, q := range dash {
			if prom.query(t, q).empty() && !exempt(q) {
				missing = append(missing, q)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, q := range missing {
		t.Errorf("dashboard query returns no data: %s", q)
	}

	t.Logf("dashboard queries checked after %v", time.Since(start))

	// The template variables' label_values() queries name labels that
	// exist.
	for _, v := range []struct{ metric, label string }{
		{"healproxy_health_status", "instance"},
		{`healproxy_upstream_requests_total{instance=~".*"}`, "provider"},
	} {
		if prom.count(t, fmt.Sprintf(`count by (%s) (%s)`, v.label, v.metric)) == 0 {
			t.Errorf("template variable: no %s label on %s", v.label, v.metric)
		}
	}

	// Every alert rule: loaded, evaluated without error, its expression
	// valid, and every metric it reads exported.
	rules := prom.rules(t)
	if len(rules) != 10 {
		t.Errorf("got %d rules loaded; want the 10 of alerts.yml", len(rules))
	}
	waitFor(t, 20*time.Second, "every rule to be evaluated", func() bool {
		for _, r := range prom.rules(t) {
			if r.LastEvaluation.IsZero() || r.LastEvaluation.Year() < 2000 {
				return false
			}
		}
		return true
	})
	metricRE := regexp.MustCompile(`\bhealproxy_[a-z_]+\b`)
	for _, r := range prom.rules(t) {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
		prom.query(t, r.Query) // valid
		for _, m := range metricRE.FindAllString(r.Query, -1) {
			if prom.count(t, m) == 0 && !exempt(m) {
				t.Errorf("rule %s reads %s, which has no series", r.Name, m)
			}
		}
	}

	// A second burst, now that Prometheus has seen the counters, so that
	// rate() and increase() see them grow.
	for i := 0; i < 30; i++ {
		get(t, hp.base+"/providers/flaky/ticker")
	}
	hp.killPlugin("m0")

	// With the traffic above, these alert expressions hold (their for:
	// periods aside): the crash loop needs 3 crashes in 15 minutes, the
	// error rate 10 minutes, so not them.
	for _, q := range []string{
		`sum by (instance, key) (healproxy_health_status{kind="provider"} == bool 1) == 0 and on (instance, key) max by (instance, key) (healproxy_health_status{kind="provider"}) >= 2`,
		`healproxy_health_status{kind="provider"} == 3`,
		`sum by (instance, provider) (rate(healproxy_retry_budget_exhausted_total[5m])) > 0`,
		`increase(healproxy_health_transitions_total{kind="model", to="unavailable"}[15m]) >= 1`,
	} {
		waitFor(t, 20*time.Second, "a firing expression: "+q, func() bool { return !prom.query(t, q).empty() })
	}
}

// exempt reports whether a query reads only metrics not expected here
// (not exported yet, or only with Redis).
func exempt(q string) bool {
	for _, m := range slices.Concat(notExportedYet, onlyWithRedis) {
		if strings.Contains(q, m) {
			return true
		}
	}
	return false
}

// dashboardQueries returns every PromQL expression of a Grafana
// dashboard, with Grafana's variables replaced by what they stand for.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				out = append(out, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	r := strings.NewReplacer("$__rate_interval", "10s", "$instance", ".*", "$provider", ".*")
	for i := range out {
		out[i] = r.Replace(out[i])
		if strings.Contains(out[i], "$") {
			t.Errorf("dashboard query with an unknown variable: %s", out[i])
		}
	}
	sort.Strings(out)
	return out
}

// ---- Prometheus ----

type prometheus struct {
	base string
	logs *proctest.Buffer
}

// startPrometheus runs Prometheus on a free loopback port, scraping
// target every second and evaluating alerts.yml every second, with its
// data in a temporary folder, until the test ends.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: healproxy
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := &prometheus{base: "http://" + addr, logs: &proctest.Buffer{}}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when it has exited, with waitErr set
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.logs)
		}
	})
	waitFor(t, 30*time.Second, "Prometheus to be ready", func() bool {
		select {
		case <-done:
			t.Fatalf("prometheus exited: %v\n%s", waitErr, p.logs)
		default:
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type queryResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

func (r queryResult) empty() bool { return len(r.Data.Result) == 0 }

// query runs an instant query; an invalid one fails the test.
func (p *prometheus) query(t *testing.T, q string) queryResult {
	t.Helper()
	resp, err := http.PostForm(p.base+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r queryResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("query %s: %v: %s", q, err, body)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s: %s", q, r.ErrorType, r.Error)
	}
	return r
}

// count is the number of series q returns.
func (p *prometheus) count(t *testing.T, q string) int {
	t.Helper()
	return len(p.query(t, q).Data.Result)
}

type rule struct {
	Name           string    `json:"name"`
	Query          string    `json:"query"`
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// rules lists the loaded rules with their evaluation health.
func (p *prometheus) rules(t *testing.T) []rule {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range doc.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// newHTTPServer is a loopback server answering every request with code.
func newHTTPServer(t *testing.T, code int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook"
}
