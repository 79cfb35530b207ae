package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/fakeopenai"
	"github.com/healproxy/healproxy/internal/sse"
)

// env is a gateway in front of fake model servers, served on loopback.
type env struct {
	t      *testing.T
	g      *Gateway
	srv    *httptest.Server
	reg    *prometheus.Registry
	mu     sync.Mutex
	events []any // Change, Fallback and Recovery, in order
}

// newEnv parses src (an HCL file of model blocks) and serves a gateway
// for it. Endpoint URLs in src are the fakes' base URLs, substituted for
// "{name}".
func newEnv(t *testing.T, src string, fakes map[string]*fakeopenai.Server) *env {
	t.Helper()
	for name, f := range fakes {
		src = strings.ReplaceAll(src, "{"+name+"}", f.BaseURL())
	}
	cfg, diags := config.Parse("test.hcl", []byte(src), config.LoadOptions{Getenv: func(string) (string, bool) { return "", false }})
	if diags.HasErrors() {
		t.Fatalf("config: %s", config.FormatDiagnostics(diags))
	}
	e := &env{t: t, reg: prometheus.NewRegistry()}
	e.g = New(cfg.Models, Options{
		Registerer:    e.reg,
		PreciseStamps: true,
		Backoff:       5 * time.Millisecond,
		MaxBackoff:    10 * time.Millisecond,
		Hooks: Hooks{
			OnChange:   func(c Change) { e.record(c) },
			OnFallback: func(f Fallback) { e.record(f) },
			OnRecovery: func(r Recovery) { e.record(r) },
		},
	})
	e.srv = httptest.NewServer(e.g)
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		e.g.Close()
	})
	return e
}

func (e *env) record(v any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, v)
}

func (e *env) recoveries() []Recovery {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Recovery
	for _, v := range e.events {
		if r, ok := v.(Recovery); ok {
			out = append(out, r)
		}
	}
	return out
}

func (e *env) fallbacks() []Fallback {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Fallback
	for _, v := range e.events {
		if f, ok := v.(Fallback); ok {
			out = append(out, f)
		}
	}
	return out
}

// fake starts a fake model server, closed at the end of the test.
func fake(t *testing.T, opts fakeopenai.Options) *fakeopenai.Server {
	t.Helper()
	f := fakeopenai.New(opts)
	t.Cleanup(f.Close)
	return f
}

// entry is the health entry of a model's endpoint i.
func (e *env) entry(model string, i int) *breaker.Entry {
	e.t.Helper()
	m := e.g.Model(model)
	if m == nil || i >= len(m.Endpoints()) {
		e.t.Fatalf("no endpoint %d of model %q", i, model)
	}
	return m.Endpoints()[i].Health
}

// answer is what a client made of a call.
type answer struct {
	status   int
	header   http.Header
	body     []byte // a non-streamed answer, or an error
	text     string // the streamed or non-streamed answer's text
	done     bool   // "[DONE]" arrived
	errEvent *sse.ErrorBody
	readErr  error // how the stream ended: nil, or the read error (a cut connection)
	model    string
	usage    *usage
	took     time.Duration
}

// post sends a chat completion for model.
func (e *env) post(model string, stream bool) answer {
	e.t.Helper()
	req := map[string]any{"model": model, "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": "Say the tokens."}}}
	if stream {
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	return e.do("/v1/chat/completions", req)
}

func (e *env) do(path string, req map[string]any) answer {
	e.t.Helper()
	b, _ := json.Marshal(req)
	start := time.Now()
	resp, err := http.Post(e.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		a.body, a.readErr = io.ReadAll(resp.Body)
		a.took = time.Since(start)
		var ck chunk
		if json.Unmarshal(a.body, &ck) == nil {
			a.model, a.usage = ck.Model, ck.Usage
			for _, ch := range ck.Choices {
				if ch.Message != nil && ch.Message.Content != nil {
					a.text += *ch.Message.Content
				}
				if ch.Text != nil {
					a.text += *ch.Text
				}
			}
		}
		return a
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			if err != io.EOF {
				a.readErr = err
			}
			break
		}
		if a.done {
			e.t.Errorf("an event after [DONE]: %q", ev.Raw)
		}
		if ev.Type == "error" {
			var eb sse.ErrorBody
			if err := json.Unmarshal(ev.Data, &eb); err != nil {
				e.t.Errorf("error event data is not JSON: %q", ev.Data)
			}
			a.errEvent = &eb
			continue
		}
		if string(ev.Data) == "[DONE]" {
			a.done = true
			continue
		}
		var ck chunk
		if err := json.Unmarshal(ev.Data, &ck); err != nil {
			e.t.Errorf("the client got a malformed event: %q", ev.Raw)
			continue
		}
		if ck.Model != "" {
			a.model = ck.Model
		}
		if ck.Usage != nil {
			a.usage = ck.Usage
		}
		text, _, _ := ck.text()
		a.text += text
	}
	a.took = time.Since(start)
	return a
}

// wantComplete checks a streamed answer is whole, once, and ended cleanly.
func wantComplete(t *testing.T, a answer, want string) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("got status %d (%s); want 200", a.status, a.body)
	}
	if a.text != want {
		t.Errorf("got text\n%q\nwant\n%q", a.text, want)
	}
	if a.errEvent != nil || a.readErr != nil {
		t.Errorf("got error event %+v, read error %v; want a clean end", a.errEvent, a.readErr)
	}
	if strings.HasPrefix(a.header.Get("Content-Type"), "text/event-stream") && !a.done {
		t.Error("the stream ended without [DONE]")
	}
}

// wantIncomplete checks a streamed answer is marked incomplete: an error
// event, then a broken connection, never [DONE].
func wantIncomplete(t *testing.T, a answer, code string) {
	t.Helper()
	if a.done {
		t.Error("a broken answer ended with [DONE]")
	}
	if a.errEvent == nil {
		t.Fatal("no error event")
	}
	if a.errEvent.Error.Code != code {
		t.Errorf("got error event %+v; want code %q", a.errEvent.Error, code)
	}
	if a.readErr == nil || errors.Is(a.readErr, io.EOF) {
		t.Errorf("got read error %v; want the connection cut (no last chunk)", a.readErr)
	}
}

// counter sums a collector's counters (or histograms' sample counts).
func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	sum := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Histogram != nil:
			sum += float64(d.Histogram.GetSampleCount())
		}
	}
	return sum
}

// recent is the kinds of an entry's recent failures, newest first.
func recent(e *breaker.Entry) []breaker.Kind {
	var out []breaker.Kind
	for _, f := range e.Export().RecentFailures {
		out = append(out, f.Kind)
	}
	return out
}
