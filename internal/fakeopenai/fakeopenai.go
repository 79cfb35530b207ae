// Package fakeopenai is a fake OpenAI-compatible model server for tests:
// POST /v1/chat/completions and POST /v1/completions, streamed (Server-Sent
// Events) or not, answering a known answer of numbered tokens ("t1 t2 …
// tN") so that a truncated or duplicated answer is detectable, with the
// faults of a real provider scripted per request number or per time.
//
// It continues an answer the way providers that accept a prefill do: a
// chat request whose last message is the assistant's, holding a prefix of
// the answer (a completion request whose prompt ends with one), gets the
// rest of the answer.
package fakeopenai

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what the server does to one request.
type Fault string

// The faults. OK answers normally.
const (
	OK Fault = ""
	// RateLimitRetryAfter answers 429 with Retry-After (Options.RetryAfter).
	RateLimitRetryAfter Fault = "429-retry-after"
	// RateLimit answers 429 without Retry-After.
	RateLimit Fault = "429"
	// ServerError answers 500.
	ServerError Fault = "500"
	// Overloaded answers 503 without Retry-After.
	Overloaded Fault = "503"
	// Reset resets the connection before any byte of an answer.
	Reset Fault = "reset"
	// NoResponse accepts the request and never answers (until the client
	// leaves or the server is closed).
	NoResponse Fault = "no-response"
	// SlowFirstToken sends the headers at once and the first token after
	// Options.Delay (a non-streamed answer: the whole answer after it).
	SlowFirstToken Fault = "slow-first-token"
	// Cut breaks the connection after Options.CutAfter tokens, without the
	// stream's end (a non-streamed answer: after 60 % of its body).
	Cut Fault = "cut"
	// Stall goes silent after Options.StallAfter tokens for Options.Delay
	// (or until the client leaves), then breaks the connection (a
	// non-streamed answer: silent after its headers).
	Stall Fault = "stall"
	// Malformed sends an event of invalid JSON before token
	// Options.MalformedAt; the stream is otherwise complete (a
	// non-streamed answer: its body is invalid JSON).
	Malformed Fault = "malformed"
	// NoDone ends a complete stream (finish_reason, usage if asked)
	// without the "data: [DONE]" sentinel.
	NoDone Fault = "no-done"
	// ContextLength answers 400 with code context_length_exceeded.
	ContextLength Fault = "context-length"
	// ContentFilter answers 400 with code content_policy_violation.
	ContentFilter Fault = "content-filter"
	// RejectPrefill answers 400 (code invalid_prefill) to a request that
	// ends with an assistant message, and normally to any other.
	RejectPrefill Fault = "reject-prefill"
)

// Faults lists every fault but OK.
var Faults = []Fault{RateLimitRetryAfter, RateLimit, ServerError, Overloaded, Reset, NoResponse,
	SlowFirstToken, Cut, Stall, Malformed, NoDone, ContextLength, ContentFilter, RejectPrefill}

// Script picks the fault of the n-th request (from 1), received since
// after the server started (or was last reset).
type Script func(n int, since time.Duration) Fault

// Always is the script of a server that always does f.
func Always(f Fault) Script { return func(int, time.Duration) Fault { return f } }

// First does f to the first k requests, then answers normally.
func First(k int, f Fault) Script {
	return func(n int, _ time.Duration) Fault {
		if n <= k {
			return f
		}
		return OK
	}
}

// During does f to requests received within d of the start, then answers
// normally.
func During(d time.Duration, f Fault) Script {
	return func(_ int, since time.Duration) Fault {
		if since < d {
			return f
		}
		return OK
	}
}

// Options configure a Server. Zero values take the defaults given.
type Options struct {
	Name          string        // the "model" of answers when the request has none; default "fake"
	Tokens        int           // tokens of the answer; default 60
	Word          string        // the tokens' prefix: Word+"1", Word+"2", …; default "t"
	TokenInterval time.Duration // pause between streamed tokens; default 0
	Delay         time.Duration // SlowFirstToken's and Stall's pause; default 10s
	CutAfter      int           // default 40
	StallAfter    int           // default 20
	MalformedAt   int           // default 10
	RetryAfter    string        // RateLimitRetryAfter's header; default "1"
	Script        Script        // default: always OK
}

// Request is what the server saw of one request.
type Request struct {
	N        int
	Since    time.Duration // after the start (or last Reset)
	Path     string
	Model    string
	Stream   bool
	LastRole string // the last message's role (chat)
	Prefill  string // the answer prefix it was asked to continue; "" for none
	Fault    Fault
	Header   http.Header
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	opts Options

	mu     sync.Mutex
	start  time.Time
	script Script
	reqs   []Request
	done   chan struct{}
	once   sync.Once
}

// New starts a server on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "fake"
	}
	if opts.Tokens <= 0 {
		opts.Tokens = 60
	}
	if opts.Word == "" {
		opts.Word = "t"
	}
	if opts.Delay <= 0 {
		opts.Delay = 10 * time.Second
	}
	if opts.CutAfter <= 0 {
		opts.CutAfter = 40
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = 20
	}
	if opts.MalformedAt <= 0 {
		opts.MalformedAt = 10
	}
	if opts.RetryAfter == "" {
		opts.RetryAfter = "1"
	}
	if opts.Script == nil {
		opts.Script = Always(OK)
	}
	s := &Server{opts: opts, start: time.Now(), script: opts.Script, done: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// BaseURL is the API's base URL, ".../v1", as an endpoint is configured.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Close ends requests waiting in NoResponse or Stall and stops the server.
func (s *Server) Close() {
	s.once.Do(func() { close(s.done) })
	s.Server.CloseClientConnections()
	s.Server.Close()
}

// SetScript replaces the script and starts counting requests and time
// afresh.
func (s *Server) SetScript(sc Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.reqs, s.start = sc, nil, time.Now()
}

// Requests returns what the server saw, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Answer is the full answer of a server with n tokens of the default
// word: "t1 t2 … tn".
func Answer(n int) string { return answer("t", n) }

func answer(word string, n int) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			sb.WriteByte(' ')
		}
		sb.WriteString(word + strconv.Itoa(i))
	}
	return sb.String()
}

// Answer is this server's full answer.
func (s *Server) Answer() string { return answer(s.opts.Word, s.opts.Tokens) }

type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	} `json:"messages"`
	Prompt        any `json:"prompt"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	chat := r.URL.Path == "/v1/chat/completions"
	if r.Method != http.MethodPost || (!chat && r.URL.Path != "/v1/completions") {
		writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path, "invalid_request_error")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var req chatRequest
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "request body is not valid JSON", "invalid_request_error")
		return
	}
	answer := s.Answer()
	rec := Request{Path: r.URL.Path, Model: req.Model, Stream: req.Stream, Header: r.Header.Clone()}
	promptTokens := 0
	if chat {
		for _, m := range req.Messages {
			promptTokens += len(strings.Fields(fmt.Sprint(m.Content))) + 4
		}
		if n := len(req.Messages); n > 0 {
			last := req.Messages[n-1]
			rec.LastRole = last.Role
			if c, ok := last.Content.(string); ok && last.Role == "assistant" && c != "" && strings.HasPrefix(answer, c) {
				rec.Prefill = c
			}
		}
	} else {
		p, _ := req.Prompt.(string)
		promptTokens = len(strings.Fields(p))
		rec.Prefill = answerSuffix(p, answer)
	}

	s.mu.Lock()
	rec.N = len(s.reqs) + 1
	rec.Since = time.Since(s.start)
	rec.Fault = s.script(rec.N, rec.Since)
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()

	model := req.Model
	if model == "" {
		model = s.opts.Name
	}
	rest := answer[len(rec.Prefill):]
	tokens := splitTokens(rest)
	a := &answerWriter{s: s, w: w, r: r, chat: chat, model: model, id: "cmpl-" + strconv.Itoa(rec.N),
		tokens: tokens, fault: rec.Fault, promptTokens: promptTokens,
		usage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}

	switch rec.Fault {
	case RateLimitRetryAfter:
		w.Header().Set("Retry-After", s.opts.RetryAfter)
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Rate limit reached for "+model+". Please retry after "+s.opts.RetryAfter+" seconds.", "rate_limit_error")
		return
	case RateLimit:
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "Rate limit reached for "+model+".", "rate_limit_error")
		return
	case ServerError:
		writeError(w, http.StatusInternalServerError, "", "The server had an error while processing your request.", "server_error")
		return
	case Overloaded:
		writeError(w, http.StatusServiceUnavailable, "overloaded", "The engine is currently overloaded. Please try again later.", "server_error")
		return
	case Reset:
		resetConnection(w)
		return
	case NoResponse:
		s.wait(r, time.Hour)
		panic(http.ErrAbortHandler)
	case ContextLength:
		writeError(w, http.StatusBadRequest, "context_length_exceeded", "This model's maximum context length is 8192 tokens. However, your messages resulted in 9631 tokens. Please reduce the length of the messages.", "invalid_request_error")
		return
	case ContentFilter:
		writeError(w, http.StatusBadRequest, "content_policy_violation", "Your request was rejected as a result of our safety system.", "invalid_request_error")
		return
	case RejectPrefill:
		if rec.LastRole == "assistant" || (!chat && rec.Prefill != "") {
			writeError(w, http.StatusBadRequest, "invalid_prefill", "This model does not support assistant message prefill. The conversation must end with a user message.", "invalid_request_error")
			return
		}
	}
	if req.Stream {
		a.stream()
	} else {
		a.plain()
	}
}

// wait pauses for d, or until the client left or the server is closing.
func (s *Server) wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.done:
	}
}

// answerSuffix is the longest prefix of answer, ending at a token, that
// prompt ends with; "" for none.
func answerSuffix(prompt, answer string) string {
	for k := len(answer); k >= 2; k-- {
		if (k == len(answer) || answer[k] == ' ') && strings.HasSuffix(prompt, answer[:k]) {
			return answer[:k]
		}
	}
	return ""
}

// splitTokens splits text before each space, so that every token but the
// first keeps its leading space, as model servers stream them.
func splitTokens(text string) []string {
	var out []string
	for text != "" {
		i := strings.IndexByte(text[1:], ' ')
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	return out
}

func writeError(w http.ResponseWriter, status int, code, message, typ string) {
	var c any
	if code != "" {
		c = code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": c}})
}

// resetConnection closes the connection with a TCP reset, before any byte
// of an answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

type answerWriter struct {
	s            *Server
	w            http.ResponseWriter
	r            *http.Request
	chat         bool
	model, id    string
	tokens       []string
	fault        Fault
	promptTokens int
	usage        bool
}

func (a *answerWriter) usageDoc(completion int) map[string]int {
	return map[string]int{"prompt_tokens": a.promptTokens, "completion_tokens": completion, "total_tokens": a.promptTokens + completion}
}

func (a *answerWriter) plain() {
	text := strings.Join(a.tokens, "")
	choice := map[string]any{"index": 0, "finish_reason": "stop"}
	object := "text_completion"
	if a.chat {
		choice["message"] = map[string]any{"role": "assistant", "content": text}
		object = "chat.completion"
	} else {
		choice["text"] = text
	}
	body, _ := json.Marshal(map[string]any{"id": a.id, "object": object, "created": 1700000000, "model": a.model,
		"choices": []any{choice}, "usage": a.usageDoc(len(a.tokens))})
	h := a.w.Header()
	h.Set("Content-Type", "application/json")
	rc := http.NewResponseController(a.w)
	switch a.fault {
	case SlowFirstToken:
		a.s.wait(a.r, a.s.opts.Delay)
	case Cut:
		h.Set("Content-Length", strconv.Itoa(len(body)))
		a.w.WriteHeader(http.StatusOK)
		a.w.Write(body[:len(body)*6/10])
		rc.Flush()
		panic(http.ErrAbortHandler)
	case Stall:
		h.Set("Content-Length", strconv.Itoa(len(body)))
		a.w.WriteHeader(http.StatusOK)
		rc.Flush()
		a.s.wait(a.r, a.s.opts.Delay)
		panic(http.ErrAbortHandler)
	case Malformed:
		body = append(body[:len(body)/2:len(body)/2], `"oops`...)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	a.w.WriteHeader(http.StatusOK)
	a.w.Write(body)
}

func (a *answerWriter) chunk(token *string, finish string, usage map[string]int) []byte {
	obj := map[string]any{"id": a.id, "created": 1700000000, "model": a.model}
	var fr any
	if finish != "" {
		fr = finish
	}
	choice := map[string]any{"index": 0, "finish_reason": fr}
	if a.chat {
		obj["object"] = "chat.completion.chunk"
		delta := map[string]any{}
		if token == nil && finish == "" {
			delta["role"], delta["content"] = "assistant", ""
		} else if token != nil {
			delta["content"] = *token
		}
		choice["delta"] = delta
	} else {
		obj["object"] = "text_completion"
		t := ""
		if token != nil {
			t = *token
		}
		choice["text"] = t
	}
	obj["choices"] = []any{choice}
	if usage != nil {
		obj["choices"] = []any{}
		obj["usage"] = usage
	}
	b, _ := json.Marshal(obj)
	return b
}

func (a *answerWriter) stream() {
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	a.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(a.w)
	rc.Flush()
	send := func(data []byte) {
		a.w.Write([]byte("data: "))
		a.w.Write(data)
		a.w.Write([]byte("\n\n"))
		rc.Flush()
	}
	if a.fault == SlowFirstToken {
		a.s.wait(a.r, a.s.opts.Delay)
	}
	if a.chat {
		send(a.chunk(nil, "", nil))
	}
	paceStart := time.Now()
	for i, tok := range a.tokens {
		switch {
		case a.fault == Cut && i == a.s.opts.CutAfter:
			panic(http.ErrAbortHandler)
		case a.fault == Stall && i == a.s.opts.StallAfter:
			a.s.wait(a.r, a.s.opts.Delay)
			panic(http.ErrAbortHandler)
		case a.fault == Malformed && i == a.s.opts.MalformedAt-1:
			send([]byte(`{"id": "` + a.id + `", "object": "chat.completion.chunk", "choices": [{"delta": {"content": `))
		}
		send(a.chunk(&tok, "", nil))
		if d := a.s.opts.TokenInterval; d > 0 {
			// A steady rate: token i+1 is due at paceStart + (i+1)·d,
			// however late this goroutine ran.
			t := time.NewTimer(time.Until(paceStart.Add(time.Duration(i+1) * d)))
			select {
			case <-t.C:
			case <-a.r.Context().Done():
				t.Stop()
				return
			}
		}
	}
	send(a.chunk(nil, "stop", nil))
	if a.usage {
		send(a.chunk(nil, "", a.usageDoc(len(a.tokens))))
	}
	if a.fault != NoDone {
		send([]byte("[DONE]"))
	}
}
