package proxytest

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestUpstreamDefaultAnswerAndRecord(t *testing.T) {
	u := NewUpstream(t)
	resp, body := Do(t, http.DefaultClient, http.MethodPost, u.URL+"/a/b?q=1", strings.NewReader("hello"), http.Header{"X-Test": {"1"}})
	if resp.StatusCode != http.StatusOK || body != "upstream body for /a/b?q=1" || resp.Header.Get("X-Upstream-Header") != "from-upstream" {
		t.Fatalf("got %d %q (X-Upstream-Header %q); want 200 naming the request", resp.StatusCode, body, resp.Header.Get("X-Upstream-Header"))
	}
	u.Code.Store(http.StatusTeapot)
	if resp, _ := Get(t, http.DefaultClient, u.URL+"/c"); resp.StatusCode != http.StatusTeapot {
		t.Errorf("got %d after Code 418; want 418", resp.StatusCode)
	}
	first := u.Requests()[0]
	if first.Method != http.MethodPost || first.RequestURI != "/a/b?q=1" || first.Body != "hello" || first.Header.Get("X-Test") != "1" {
		t.Errorf("recorded %+v; want the POST with its URI, body and header", first)
	}
	if got := u.Last(t).RequestURI; got != "/c" {
		t.Errorf("Last = %q; want /c", got)
	}
	if u.Hits.Load() != 2 || u.Count("") != 2 || u.Count("/a/") != 1 || u.Count("/x") != 0 {
		t.Errorf("Hits %d, Count(\"\") %d, Count(/a/) %d, Count(/x) %d; want 2, 2, 1, 0",
			u.Hits.Load(), u.Count(""), u.Count("/a/"), u.Count("/x"))
	}
	if got := u.Take(); len(got) != 2 {
		t.Errorf("Take gave %d requests; want 2", len(got))
	}
	if got := u.Take(); len(got) != 0 || len(u.Requests()) != 0 || u.Hits.Load() != 2 {
		t.Errorf("after Take: Take %d, Requests %d, Hits %d; want 0, 0 and the hits kept", len(got), len(u.Requests()), u.Hits.Load())
	}
}

func TestUpstreamSetSeesTheBody(t *testing.T) {
	u := NewScriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("echo " + string(b)))
	})
	if resp, body := Do(t, http.DefaultClient, http.MethodPut, u.URL, strings.NewReader("x"), nil); resp.StatusCode != http.StatusAccepted || body != "echo x" {
		t.Errorf("got %d %q; want the handler's 202 with the body it read", resp.StatusCode, body)
	}
	u.Set(nil)
	if resp, _ := Get(t, http.DefaultClient, u.URL); resp.StatusCode != http.StatusOK {
		t.Errorf("got %d after Set(nil); want the default 200", resp.StatusCode)
	}
}

func TestUpstreamHoldRelease(t *testing.T) {
	u := NewUpstream(t)
	u.Hold()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			resp, err := http.Get(u.URL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	Eventually(t, 5*time.Second, "3 requests held", func() bool { return u.InFlight.Load() == 3 })
	u.Release()
	wg.Wait()
	if u.InFlight.Load() != 0 || u.MaxInFlight.Load() != 3 {
		t.Errorf("InFlight %d, MaxInFlight %d after Release; want 0 and 3", u.InFlight.Load(), u.MaxInFlight.Load())
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and
// ends the goroutine, as testing's does, without failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times; want 3", n)
	}
	fr := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(fr, 20*time.Millisecond, "the impossible", func() bool { return false })
	}()
	<-done
	if !strings.Contains(fr.msg, "the impossible") {
		t.Errorf("Eventually of a condition that never holds: failure %q; want one naming it", fr.msg)
	}
}

func TestDeadURLRefuses(t *testing.T) {
	if _, err := http.Get(DeadURL(t)); err == nil {
		t.Error("GET of DeadURL succeeded; want connection refused")
	}
}

func TestConfigAndProvider(t *testing.T) {
	cfg := Config(t, `provider "p" { upstreams = ["http://127.0.0.1:1/api"] }`)
	if len(cfg.Providers) != 1 || cfg.Providers[0].ID != "p" || cfg.Providers[0].Timeout == 0 {
		t.Fatalf("Config gave %+v; want provider p with its defaults", cfg.Providers)
	}
	pc := WithHealth(Provider(t, "q", "http://a.test/x"), 7, time.Second, 4)
	if pc.Health.ErrorThreshold != 7 || pc.Health.Cooldown != time.Second || pc.Health.RecoveryCount != 4 || pc.Upstreams[0].Host != "a.test" {
		t.Errorf("WithHealth(Provider) = %+v", pc)
	}
	bare := Provider(t, "r", "http://a.test/x")
	bare.Timeout, bare.Health.MaxConcurrentReinit = 0, 0
	if n := NormalizedProvider(bare); n.Timeout == 0 || n.Health.MaxConcurrentReinit == 0 {
		t.Errorf("NormalizedProvider left the defaults unset: timeout %v, max_concurrent_reinit %d", n.Timeout, n.Health.MaxConcurrentReinit)
	}
}

func TestMetricValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "h"}, []string{"a", "b"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "t_seconds", Help: "h"}, []string{"a"})
	reg.MustRegister(c, h)
	c.WithLabelValues("x", "1").Add(2)
	c.WithLabelValues("x", "2").Add(3)
	c.WithLabelValues("y", "1").Add(5)
	h.WithLabelValues("x").Observe(1)
	h.WithLabelValues("x").Observe(2)
	for _, tt := range []struct {
		name string
		want map[string]string
		sum  float64
	}{
		{"t_total", nil, 10},
		{"t_total", map[string]string{"a": "x"}, 5},
		{"t_total", map[string]string{"a": "x", "b": "2"}, 3},
		{"t_total", map[string]string{"a": "z"}, 0},
		{"t_seconds", map[string]string{"a": "x"}, 2},
	} {
		if got := MetricValue(t, reg, tt.name, tt.want); got != tt.sum {
			t.Errorf("MetricValue(%s, %v) = %v; want %v", tt.name, tt.want, got, tt.sum)
		}
	}
}

func TestCaptureLogs(t *testing.T) {
	log, buf := CaptureLogs()
	log.Debug("quiet detail", "k", "v")
	if !strings.Contains(buf.String(), "quiet detail") || !strings.Contains(buf.String(), "k=v") {
		t.Errorf("captured %q; want the debug line", buf.String())
	}
}
