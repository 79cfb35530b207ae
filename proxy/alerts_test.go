package proxy

// Webhook alerts: status changes and failed reinits posted
// to an httptest receiver, delivery while the receiver is down, hung or
// rejecting, the counters of GET /api/diagnostics/alerts, the webhook's
// secret, and reloads. No test sleeps for an effect: each waits for a
// condition with a deadline. A test that must show that something did NOT
// arrive makes a later event and waits for it: an alert delivers in order.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/proxytest"
)

// hookEvent is a delivered payload as a webhook decodes it.
type hookEvent struct {
	Text  string `json:"text"`
	ID    string `json:"id"`
	Alert string `json:"alert"`
	Event struct {
		Type       string    `json:"type"`
		Kind       string    `json:"kind"`
		Key        string    `json:"key"`
		Upstream   string    `json:"upstream"`
		From       string    `json:"from"`
		To         string    `json:"to"`
		Reason     string    `json:"reason"`
		Message    string    `json:"message"`
		Time       time.Time `json:"time"`
		Suppressed int       `json:"suppressed"`
	} `json:"event"`
}

func (e hookEvent) String() string {
	return fmt.Sprintf("%s %s %s %s", e.Event.Type, e.Event.Kind, e.Event.Key, e.Event.Upstream)
}

// Receiver modes; a receiver holds requests with Hold.
const (
	hookUp   = iota // 200, payload kept
	hookDown        // 503
	hookGone        // 404: a permanent refusal
)

// hookReceiver is a webhook on loopback: a proxytest.Upstream (which
// counts and records the requests, and holds them on Hold) answering as
// its mode says.
type hookReceiver struct {
	*proxytest.Upstream
	mode    atomic.Int32
	refused atomic.Int64 // answered 503 or 404

	mu  sync.Mutex
	got []hookEvent
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{Upstream: proxytest.NewUpstream(t)}
	h.Set(h.serve)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	switch h.mode.Load() {
	case hookDown:
		h.refused.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case hookGone:
		h.refused.Add(1)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var e hookEvent
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &e); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, e)
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) events() []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// waitEvents waits until n events arrived and returns them.
func (h *hookReceiver) waitEvents(t *testing.T, n int, d time.Duration) []hookEvent {
	t.Helper()
	proxytest.Eventually(t, d, fmt.Sprintf("%d webhook events (got %v)", n, h.events()), func() bool { return len(h.events()) >= n })
	return h.events()
}

// webhookAlert is an alert to h with a secret path and query, sending
// every event (min_interval 0 unless given).
func webhookAlert(t *testing.T, name, base string, on []string, minInterval time.Duration) config.Alert {
	t.Helper()
	u, err := url.Parse(base + "/services/T000/B000/" + hookSecretPath + "?token=" + hookSecretQuery)
	if err != nil {
		t.Fatal(err)
	}
	if on == nil {
		on = slices.Clone(config.AlertEvents)
	}
	return config.Alert{Name: name, Webhook: u, On: on, MinInterval: minInterval}
}

const (
	hookSecretPath  = "XyZsecretPATHtoken"
	hookSecretQuery = "QsecretQUERYtoken"
)

// alertsDoc is GET /api/diagnostics/alerts as a client decodes it.
type alertsDoc struct {
	Status string      `json:"status"`
	Alerts []api.Alert `json:"alerts"`
}

func fetchAlerts(t *testing.T, ts *httptest.Server) (alertsDoc, string) {
	t.Helper()
	resp, body := proxytest.Get(t, ts.Client(), ts.URL+"/api/diagnostics/alerts")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/diagnostics/alerts: %d %s", resp.StatusCode, body)
	}
	var d alertsDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("alerts document %s: %v", body, err)
	}
	return d, body
}

// selfHealProvider resets provider id (POST /api/diagnostics/self-heal).
func selfHealProvider(t *testing.T, ts *httptest.Server, id string) {
	t.Helper()
	resp, body := proxytest.Do(t, ts.Client(), http.MethodPost, ts.URL+"/api/diagnostics/self-heal?provider_id="+id, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("self-heal of provider %s: %d %s", id, resp.StatusCode, body)
	}
}

// failing is a provider on one upstream that answers 500: threshold 1,
// recovery 1.
func failing(t *testing.T, id string, cooldown time.Duration) (config.Provider, *proxytest.Upstream) {
	up := proxytest.NewUpstream(t)
	up.Code.Store(500)
	return proxytest.WithHealth(proxytest.Provider(t, id, up.URL), 1, cooldown, 1), up
}

// TestAlertUnavailableAndRecovered: a trip sends exactly one "unavailable"
// event with its kind, key, upstream and Slack text; a self-heal and a
// recovery through trials after the cooldown each send "recovered".
func TestAlertUnavailableAndRecovered(t *testing.T) {
	hook := newHookReceiver(t)
	pa, upA := failing(t, "a", time.Minute)
	pb, upB := failing(t, "b", 300*time.Millisecond)
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{pa, pb},
		Alerts: []config.Alert{webhookAlert(t, "ops", hook.URL, nil, 0)}})
	c := ts.Client()

	proxytest.Get(t, c, ts.URL+"/providers/a/x")
	proxytest.Get(t, c, ts.URL+"/providers/a/x") // refused: still one trip
	ev := hook.waitEvents(t, 1, 10*time.Second)[0]
	if ev.Event.Type != "unavailable" || ev.Event.Kind != "provider" || ev.Event.Key != "a" || ev.Event.Upstream != upA.URL ||
		ev.Event.To != "unavailable" || ev.Alert != "ops" || ev.ID == "" {
		t.Errorf("first event %+v; want unavailable provider a upstream %s from alert ops", ev, upA.URL)
	}
	if want := ":x: provider a upstream " + upA.URL + " is unavailable"; !strings.HasPrefix(ev.Text, want) ||
		!strings.Contains(ev.Text, "500") {
		t.Errorf("text %q; want it to start with %q and name the 500", ev.Text, want)
	}

	selfHealProvider(t, ts, "a")
	got := hook.waitEvents(t, 2, 10*time.Second)
	if got[1].Event.Type != "recovered" || got[1].Event.Key != "a" || !strings.HasPrefix(got[1].Text, ":white_check_mark: provider a") {
		t.Errorf("second event %+v; want a recovered", got[1])
	}

	// Cooldown over, then one successful trial.
	proxytest.Get(t, c, ts.URL+"/providers/b/x")
	bTrip := hook.waitEvents(t, 3, 10*time.Second)[2]
	if bTrip.Event.Type != "unavailable" || bTrip.Event.Key != "b" || bTrip.Event.Upstream != upB.URL {
		t.Errorf("third event %+v; want b unavailable", bTrip)
	}
	upB.Code.Store(200)
	until := parseStamp(t, "b cooldown_until", fetchProvider(t, ts.URL, "b").CooldownUntil)
	proxytest.Eventually(t, 5*time.Second, "b's cooldown to end", func() bool { return time.Now().After(until) })
	if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/b/x"); resp.StatusCode != 200 {
		t.Fatalf("trial to b: got %d; want 200", resp.StatusCode)
	}
	got = hook.waitEvents(t, 4, 10*time.Second)
	if got[3].Event.Type != "recovered" || got[3].Event.Key != "b" || got[3].Event.To != "healthy" {
		t.Errorf("fourth event %+v; want b recovered", got[3])
	}
	var seq []string
	for _, e := range got {
		seq = append(seq, e.Event.Type+" "+e.Event.Key)
	}
	if want := []string{"unavailable a", "recovered a", "unavailable b", "recovered b"}; !slices.Equal(seq, want) {
		t.Errorf("events %q; want exactly %q", seq, want)
	}
	if ids := uniqueIDs(got); ids != len(got) {
		t.Errorf("%d events with %d distinct ids", len(got), ids)
	}
}

func uniqueIDs(evs []hookEvent) int {
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.ID] = true
	}
	return len(seen)
}

// TestAlertReinitFailed: a self-heal of a model whose command does not
// exist sends one "reinit_failed" event per failed attempt.
func TestAlertReinitFailed(t *testing.T) {
	hook := newHookReceiver(t)
	missing := t.TempDir() + "/no-such-plugin"
	m := config.Model{Key: "ghost", Name: "ghost", Command: []string{missing}, Timeout: time.Second, Health: reloadHealth}
	s, ts := startServer(t, &config.Config{Health: reloadHealth, Models: []config.Model{m}, Providers: []config.Provider{},
		Alerts: []config.Alert{webhookAlert(t, "reinit", hook.URL, []string{"reinit_failed"}, 0)}})
	proxytest.Eventually(t, 20*time.Second, "ghost's first start to fail", func() bool {
		d, ok := modelDocOf(s, "ghost")
		return ok && d.Status == "unavailable" && d.LastError != nil
	})

	heal := func() string {
		resp, body := proxytest.Do(t, ts.Client(), http.MethodPost, ts.URL+"/api/diagnostics/self-heal?model_key=ghost", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("self-heal: %d %s", resp.StatusCode, body)
		}
		return body
	}
	if body := heal(); !strings.Contains(body, `"status":"failed"`) {
		t.Fatalf("self-heal of ghost: %s; want a failed attempt", body)
	}
	ev := hook.waitEvents(t, 1, 10*time.Second)[0]
	if ev.Event.Type != "reinit_failed" || ev.Event.Kind != "model" || ev.Event.Key != "ghost" ||
		!strings.Contains(ev.Event.Message, "no-such-plugin") || !strings.Contains(ev.Event.Reason, "self-heal") {
		t.Errorf("event %+v; want reinit_failed for model ghost naming the command and the self-heal", ev)
	}
	if !strings.HasPrefix(ev.Text, ":rotating_light: model ghost could not be reinitialised") {
		t.Errorf("text %q", ev.Text)
	}

	// A second failed attempt (after the reinit cooldown) is a second event;
	// the first start's failure and the unavailable status sent none.
	proxytest.Eventually(t, 10*time.Second, "a second failed self-heal", func() bool { return strings.Contains(heal(), `"status":"failed"`) })
	got := hook.waitEvents(t, 2, 10*time.Second)
	if len(got) != 2 || got[1].Event.Type != "reinit_failed" || got[0].ID == got[1].ID {
		t.Errorf("events %v; want two reinit_failed", got)
	}
}

// TestAlertReceiverDownThenUp: events that happen while the webhook
// answers 503 arrive once it is back, once each and in order.
func TestAlertReceiverDownThenUp(t *testing.T) {
	hook := newHookReceiver(t)
	hook.mode.Store(hookDown)
	var providers []config.Provider
	for _, id := range []string{"a", "b", "c"} {
		p, _ := failing(t, id, time.Minute)
		providers = append(providers, p)
	}
	_, ts := startServer(t, &config.Config{Providers: providers,
		Alerts: []config.Alert{webhookAlert(t, "ops", hook.URL, nil, 0)}})
	for _, id := range []string{"a", "b", "c"} {
		proxytest.Get(t, ts.Client(), ts.URL+"/providers/"+id+"/x")
	}
	// Two refused attempts: the first event is being retried with backoff.
	proxytest.Eventually(t, 10*time.Second, "two refused deliveries", func() bool { return hook.refused.Load() >= 2 })
	if n := len(hook.events()); n != 0 {
		t.Fatalf("%d events accepted while the receiver was down", n)
	}
	var d alertsDoc
	proxytest.Eventually(t, 10*time.Second, "two failed attempts counted", func() bool {
		d, _ = fetchAlerts(t, ts)
		return d.Alerts[0].Failed >= 2
	})
	if a := d.Alerts[0]; a.Sent != 0 || a.GivenUp != 0 || a.Queued < 2 {
		t.Errorf("while down: %+v; want >= 2 failed attempts, nothing sent or given up, 2 or more queued", a)
	}

	hook.mode.Store(hookUp)
	hook.waitEvents(t, 3, 30*time.Second)
	selfHealProvider(t, ts, "a") // a later event: when it is in, nothing else is on its way
	got := hook.waitEvents(t, 4, 30*time.Second)
	var seq []string
	for _, e := range got {
		seq = append(seq, e.Event.Type+" "+e.Event.Key)
	}
	if want := []string{"unavailable a", "unavailable b", "unavailable c", "recovered a"}; !slices.Equal(seq, want) {
		t.Errorf("events %q; want exactly %q (in order, once each)", seq, want)
	}
	if uniqueIDs(got) != len(got) {
		t.Errorf("events delivered twice: %v", got)
	}
	// The receiver has the 4th event a moment before the notifier counts it.
	proxytest.Eventually(t, 5*time.Second, "the 4th delivery to be counted", func() bool {
		d, _ := fetchAlerts(t, ts)
		return d.Alerts[0].Sent >= 4
	})
	// The worker counts a delivery once it has the answer: just after the
	// receiver has the event.
	proxytest.Eventually(t, 10*time.Second, "4 deliveries counted", func() bool {
		d, _ = fetchAlerts(t, ts)
		return d.Alerts[0].Sent == 4
	})
	if a := d.Alerts[0]; a.Sent != 4 || a.Failed < 2 || a.GivenUp != 0 || a.Dropped != 0 || a.Queued != 0 {
		t.Errorf("after the receiver came back: %+v; want sent 4, >= 2 failed attempts, nothing given up, dropped or queued", a)
	}
}

// latencies runs n rounds of: trip provider flap (a status change, so an
// alert), a timed GET to provider ok, self-heal flap (another change). It
// returns the GETs' latencies and the wall time of all rounds.
func latencies(t *testing.T, ts *httptest.Server, n int) ([]time.Duration, time.Duration) {
	t.Helper()
	c := ts.Client()
	var lat []time.Duration
	start := time.Now()
	for i := range n {
		if resp, _ := proxytest.Get(t, c, ts.URL+"/providers/flap/x"); resp.StatusCode != 500 {
			t.Fatalf("round %d: flap answered %d; want its 500", i, resp.StatusCode)
		}
		t0 := time.Now()
		resp, _ := proxytest.Get(t, c, ts.URL+"/providers/ok/x")
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != 200 {
			t.Fatalf("round %d: ok answered %d; want 200", i, resp.StatusCode)
		}
		selfHealProvider(t, ts, "flap")
	}
	return lat, time.Since(start)
}

func percentile(lat []time.Duration, p float64) time.Duration {
	s := slices.Clone(lat)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestAlertHungReceiverDoesNotSlowProxy: while the webhook holds every
// request open, 50 rounds of proxied requests, each with two status
// changes to alert about, answer 200 as fast as without alerts.
func TestAlertHungReceiverDoesNotSlowProxy(t *testing.T) {
	const rounds = 50
	cfgFor := func(alerts []config.Alert) *config.Config {
		flap, _ := failing(t, "flap", time.Minute)
		return &config.Config{Providers: []config.Provider{proxytest.Provider(t, "ok", proxytest.NewUpstream(t).URL), flap}, Alerts: alerts}
	}

	_, plain := startServer(t, cfgFor(nil))
	latencies(t, plain, 5) // warm up connections
	base, baseWall := latencies(t, plain, rounds)

	hook := newHookReceiver(t)
	hook.Hold()
	s, ts := startServer(t, cfgFor([]config.Alert{webhookAlert(t, "ops", hook.URL, nil, 0)}))
	t.Cleanup(hook.Release) // before the server's Close, which delivers what is queued
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/flap/x")
	proxytest.Eventually(t, 10*time.Second, "the webhook to hold a delivery", func() bool { return hook.InFlight.Load() == 1 })
	selfHealProvider(t, ts, "flap")
	latencies(t, ts, 5)
	lat, wall := latencies(t, ts, rounds)
	if n := len(hook.events()); n != 0 {
		t.Fatalf("the webhook stopped hanging during the rounds: %d events delivered", n)
	}
	if st, _ := s.alerts.Load().Stats().Alert("ops"); st.Queued < 2*rounds {
		t.Errorf("%d events queued behind the hung delivery; want at least %d", st.Queued, 2*rounds)
	}
	t.Logf("GET latency over %d rounds: no alerts p50 %v p95 %v max %v (rounds %v); hung webhook p50 %v p95 %v max %v (rounds %v)",
		rounds, percentile(base, .5), percentile(base, .95), slices.Max(base), baseWall,
		percentile(lat, .5), percentile(lat, .95), slices.Max(lat), wall)
	if wall > 5*time.Second {
		t.Errorf("%d rounds took %v with a hung webhook; want under 5s", rounds, wall)
	}

	// Released, the webhook gets everything.
	hook.Release()
	hook.waitEvents(t, 1+1+2*(rounds+5), 30*time.Second)
}

// TestAlertCountersEndpoint: GET /api/diagnostics/alerts shows each
// alert's counters, and de-duplication within min_interval.
func TestAlertCountersEndpoint(t *testing.T) {
	hook, gone := newHookReceiver(t), newHookReceiver(t)
	gone.mode.Store(hookGone)
	p, _ := failing(t, "p", time.Minute)
	_, ts := startServer(t, &config.Config{Providers: []config.Provider{p},
		Alerts: []config.Alert{
			webhookAlert(t, "hourly", hook.URL, []string{"unavailable", "recovered"}, time.Hour),
			webhookAlert(t, "rejected", gone.URL, []string{"unavailable"}, 0),
		}})
	d, body := fetchAlerts(t, ts)
	if d.Status != "success" || len(d.Alerts) != 2 || d.Alerts[0].Name != "hourly" || d.Alerts[1].Name != "rejected" ||
		d.Alerts[0].Webhook != hook.URL || d.Alerts[1].Webhook != gone.URL || d.Alerts[0].Sent != 0 {
		t.Fatalf("alerts document before any event: %s", body)
	}

	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x") // unavailable: sent
	hook.waitEvents(t, 1, 10*time.Second)
	selfHealProvider(t, ts, "p")                           // recovered: sent
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x") // unavailable again within the hour: held back
	hook.waitEvents(t, 2, 10*time.Second)
	proxytest.Eventually(t, 10*time.Second, "the counters", func() bool {
		d, _ = fetchAlerts(t, ts)
		return d.Alerts[0].Deduplicated == 1 && d.Alerts[0].Sent == 2 && d.Alerts[1].GivenUp == 2
	})
	h, r := d.Alerts[0], d.Alerts[1]
	if h.Sent != 2 || h.Failed != 0 || h.GivenUp != 0 || h.Dropped != 0 || h.Queued != 0 {
		t.Errorf("hourly: %+v; want sent 2, deduplicated 1, nothing else", h)
	}
	if r.Sent != 0 || r.Failed != 2 || r.GivenUp != 2 || gone.Hits.Load() != 2 {
		t.Errorf("rejected: %+v after %d requests; want 2 failed and given up at once (a 404 is not retried)", r, gone.Hits.Load())
	}
	if n := len(hook.events()); n != 2 {
		t.Errorf("hourly got %d events; want 2", n)
	}
}

// TestAlertWebhookSecretNeverShown: the webhook's path and query reach the
// webhook and nothing else: not the log (debug level, with deliveries that
// fail, are refused and cannot connect), diagnostics, metrics, the report
// or the alerts endpoint.
func TestAlertWebhookSecretNeverShown(t *testing.T) {
	hook, gone := newHookReceiver(t), newHookReceiver(t)
	gone.mode.Store(hookGone)
	deadHook := proxytest.DeadURL(t)
	p, _ := failing(t, "p", time.Minute)
	log, logs := proxytest.CaptureLogs()
	cfg := &config.Config{Providers: []config.Provider{p}, Alerts: []config.Alert{
		webhookAlert(t, "live", hook.URL, nil, 0),
		webhookAlert(t, "rejected", gone.URL, nil, 0),
		webhookAlert(t, "dead", deadHook, nil, 0),
	}}
	s, err := New(proxytest.Normalized(cfg), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()

	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	hook.waitEvents(t, 1, 10*time.Second)
	proxytest.Eventually(t, 10*time.Second, "the rejected and the dead webhook to fail", func() bool {
		d, _ := fetchAlerts(t, ts)
		return d.Alerts[1].GivenUp == 1 && d.Alerts[2].Failed >= 1
	})
	reached := slices.ContainsFunc(hook.Requests(), func(r proxytest.Request) bool {
		return strings.Contains(r.RequestURI, hookSecretPath) && strings.Contains(r.RequestURI, hookSecretQuery)
	})
	if !reached {
		t.Fatalf("the webhook was not called on its secret path and query")
	}

	var shown strings.Builder
	for _, path := range []string{"/api/diagnostics/alerts", "/api/diagnostics/health", "/metrics",
		"/api/diagnostics/report?format=json", "/api/diagnostics/report?format=csv"} {
		resp, body := proxytest.Get(t, ts.Client(), ts.URL+path)
		fmt.Fprintf(&shown, "%s %d\n%s\n", path, resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Close(ctx) // gives up on the dead webhook's retries: may return ctx's error
	all := shown.String() + "\nLOG:\n" + logs.String()
	for _, secret := range []string{hookSecretPath, hookSecretQuery, "T000/B000", "/services/"} {
		if strings.Contains(all, secret) {
			t.Errorf("%q is shown:\n%s", secret, all)
		}
	}
	if !strings.Contains(logs.String(), "alert rejected by the webhook") || !strings.Contains(logs.String(), gone.URL) {
		t.Errorf("the log does not report the refusal with the webhook's host:\n%s", logs)
	}
}

// TestAlertReload: a reload that does not change the alerts keeps the
// notifier (and its de-duplication memory); one that changes them
// replaces it, closes the old one and sends to the new webhook.
func TestAlertReload(t *testing.T) {
	hook, other := newHookReceiver(t), newHookReceiver(t)
	p, _ := failing(t, "p", time.Minute)
	cfgWith := func(a config.Alert, extra ...config.Provider) *config.Config {
		return &config.Config{Providers: append([]config.Provider{p}, extra...), Alerts: []config.Alert{a}}
	}
	s, ts := startServer(t, cfgWith(webhookAlert(t, "ops", hook.URL, nil, time.Hour)))
	first := s.alerts.Load()

	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	hook.waitEvents(t, 1, 10*time.Second)
	selfHealProvider(t, ts, "p")
	hook.waitEvents(t, 2, 10*time.Second)

	// Same alerts (a fresh, equal config), another provider.
	res := s.Reload(proxytest.Normalized(cfgWith(webhookAlert(t, "ops", hook.URL, nil, time.Hour), proxytest.Provider(t, "q", proxytest.NewUpstream(t).URL))))
	if s.alerts.Load() != first || slices.Contains(res.Updated, "alerts") {
		t.Fatalf("a reload with the same alerts replaced the notifier (updated %v)", res.Updated)
	}
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x") // within the hour: still de-duplicated
	proxytest.Eventually(t, 10*time.Second, "the second trip to be de-duplicated", func() bool {
		d, _ := fetchAlerts(t, ts)
		return d.Alerts[0].Deduplicated == 1
	})

	// Another min_interval and webhook: a new notifier.
	res = s.Reload(proxytest.Normalized(cfgWith(webhookAlert(t, "ops", other.URL, nil, 0))))
	second := s.alerts.Load()
	if second == first || !slices.Contains(res.Updated, "alerts") {
		t.Fatalf("a reload with other alerts kept the notifier (updated %v)", res.Updated)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil { // waits for the reload's own Close of it
		t.Errorf("the replaced notifier did not close: %v", err)
	}
	if d, _ := fetchAlerts(t, ts); len(d.Alerts) != 1 || d.Alerts[0].Webhook != other.URL || d.Alerts[0].Sent != 0 {
		t.Errorf("alerts after the reload: %+v; want the new webhook's fresh counters", d.Alerts)
	}
	selfHealProvider(t, ts, "p")
	proxytest.Get(t, ts.Client(), ts.URL+"/providers/p/x")
	got := other.waitEvents(t, 2, 10*time.Second)
	if got[0].Event.Type != "recovered" || got[1].Event.Type != "unavailable" || got[1].Event.Key != "p" {
		t.Errorf("new webhook got %v; want recovered p, unavailable p", got)
	}
	// The old webhook got the first two events, and at its Close the
	// de-duplicated trip, its entry's latest state: nothing after.
	if got := hook.events(); len(got) != 3 || got[2].Event.Type != "unavailable" {
		t.Errorf("old webhook got %v; want unavailable, recovered, and at its close unavailable", got)
	}
}
