package fakeopenai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func post(t *testing.T, s *Server, path string, req map[string]any) (*http.Response, []byte, error) {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestAnswers(t *testing.T) {
	s := New(Options{Tokens: 5})
	defer s.Close()
	chat := map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	resp, body, err := post(t, s, "/v1/chat/completions", chat)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"content":"t1 t2 t3 t4 t5"`) {
		t.Errorf("non-streamed: %v %s", err, body)
	}
	chat["stream"] = true
	_, body, _ = post(t, s, "/v1/chat/completions", chat)
	if got := strings.Count(string(body), "data: "); got != 1+5+1+1 || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("streamed: %d events\n%s", got, body)
	}
	// A continuation gets the rest.
	chat["messages"] = []map[string]string{{"role": "user", "content": "hi"}, {"role": "assistant", "content": "t1 t2"}}
	_, body, _ = post(t, s, "/v1/chat/completions", chat)
	if !strings.Contains(string(body), `"content":" t3"`) || strings.Contains(string(body), `"content":"t1"`) {
		t.Errorf("continuation:\n%s", body)
	}
	_, body, _ = post(t, s, "/v1/completions", map[string]any{"model": "m", "prompt": "Go: t1 t2 t3"})
	if !strings.Contains(string(body), `"text":" t4 t5"`) {
		t.Errorf("completion continuation: %s", body)
	}
	reqs := s.Requests()
	if len(reqs) != 4 || reqs[2].Prefill != "t1 t2" || reqs[3].Prefill != "t1 t2 t3" || !reqs[1].Stream {
		t.Errorf("requests %+v", reqs)
	}
}

func TestFaults(t *testing.T) {
	s := New(Options{Tokens: 10, CutAfter: 4, Delay: 50 * time.Millisecond})
	defer s.Close()
	chat := map[string]any{"model": "m", "stream": true, "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	status := map[Fault]int{RateLimitRetryAfter: 429, RateLimit: 429, ServerError: 500, Overloaded: 503, ContextLength: 400, ContentFilter: 400}
	for f, want := range status {
		s.SetScript(Always(f))
		resp, body, err := post(t, s, "/v1/chat/completions", chat)
		if err != nil || resp.StatusCode != want {
			t.Errorf("%s: got %v %v %s; want %d", f, resp, err, body, want)
		}
		if f == RateLimitRetryAfter && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s: no Retry-After", f)
		}
	}
	s.SetScript(First(1, Reset))
	if _, _, err := post(t, s, "/v1/chat/completions", chat); !errors.Is(err, syscall.ECONNRESET) && err == nil {
		t.Errorf("reset: got %v; want a connection error", err)
	}
	if resp, _, err := post(t, s, "/v1/chat/completions", chat); err != nil || resp.StatusCode != 200 {
		t.Errorf("after First(1, Reset): %v", err)
	}
	s.SetScript(Always(Cut))
	_, body, err := post(t, s, "/v1/chat/completions", chat)
	if err == nil || strings.Contains(string(body), "[DONE]") || strings.Count(string(body), "data: ") != 1+4 {
		t.Errorf("cut: %v\n%s", err, body)
	}
	s.SetScript(Always(RejectPrefill))
	chat["messages"] = []map[string]string{{"role": "assistant", "content": "t1"}}
	if resp, body, _ := post(t, s, "/v1/chat/completions", chat); resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_prefill") {
		t.Errorf("reject prefill: %d %s", resp.StatusCode, body)
	}
}
