package llm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// apiError is OpenAI's error document.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    any     `json:"code"`
	} `json:"error"`
}

// writeError answers an error in OpenAI's shape. message must be free of
// secrets.
func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	var e apiError
	e.Error.Message, e.Error.Type = message, typ
	if code != "" {
		e.Error.Code = code
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// errorCode reads the code (or type) of an OpenAI-style error body, "" when
// it has none.
func errorCode(body []byte) (code, message string) {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return "", ""
	}
	var d struct {
		Code    any    `json:"code"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Error, &d) != nil {
		var s string
		if json.Unmarshal(e.Error, &s) == nil {
			return "", s
		}
		return "", ""
	}
	switch c := d.Code.(type) {
	case string:
		code = c
	case float64:
		code = strconv.FormatFloat(c, 'f', -1, 64)
	}
	if code == "" {
		code = d.Type
	}
	return code, d.Message
}

// isContextLength reports a 400 that says the prompt is too long for the
// model (OpenAI's code, and the wording vLLM and others use).
func isContextLength(body []byte) bool {
	code, msg := errorCode(body)
	if code == "context_length_exceeded" {
		return true
	}
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "maximum context length") || strings.Contains(msg, "context length exceeded") ||
		strings.Contains(msg, "context_length_exceeded")
}

// isContentPolicy reports a 400 that refuses the request on content
// grounds (OpenAI's and Azure's codes).
func isContentPolicy(body []byte) bool {
	code, _ := errorCode(body)
	switch code {
	case "content_policy_violation", "content_filter", "content_filtered", "ResponsibleAIPolicyViolation":
		return true
	}
	return false
}

// chunk is what the gateway reads of one streamed event: the text of the
// first choice, its finish reason, the usage, and whether the event holds
// anything it cannot follow (another choice, a tool call), which makes the
// answer impossible to recover by its text.
type chunk struct {
	Model   string          `json:"model"`
	Usage   *usage          `json:"usage"`
	Error   json.RawMessage `json:"error"`
	Choices []struct {
		Index        int     `json:"index"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
		Delta        *struct {
			Content      *string         `json:"content"`
			ToolCalls    json.RawMessage `json:"tool_calls"`
			FunctionCall json.RawMessage `json:"function_call"`
		} `json:"delta"`
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// text is the first choice's text and finish reason; opaque reports
// content the gateway cannot follow by its text.
func (c *chunk) text() (text string, finish bool, opaque bool) {
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			opaque = true
			continue
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			finish = true
		}
		switch {
		case ch.Text != nil:
			text += *ch.Text
		case ch.Delta != nil:
			if ch.Delta.Content != nil {
				text += *ch.Delta.Content
			}
			if isSet(ch.Delta.ToolCalls) || isSet(ch.Delta.FunctionCall) {
				opaque = true
			}
		}
	}
	return text, finish, opaque
}

func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// withText returns the event data doc with its first choice's text
// replaced by text (a replay's chunk that straddles the part already
// delivered).
func withText(doc []byte, text string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, err
	}
	var choices []map[string]json.RawMessage
	if err := json.Unmarshal(obj["choices"], &choices); err != nil {
		return nil, err
	}
	t, _ := json.Marshal(text)
	for _, ch := range choices {
		if string(ch["index"]) != "0" && len(choices) > 1 {
			continue
		}
		if _, ok := ch["text"]; ok {
			ch["text"] = t
			continue
		}
		var delta map[string]json.RawMessage
		if err := json.Unmarshal(ch["delta"], &delta); err != nil || delta == nil {
			delta = map[string]json.RawMessage{}
		}
		delta["content"] = t
		ch["delta"], _ = json.Marshal(delta)
	}
	obj["choices"], _ = json.Marshal(choices)
	return json.Marshal(obj)
}
