package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// This file holds the one way healproxy answers over HTTP with JSON, and
// the one rule that turns a failed call into a status code
// (docs/behaviour.md, "Error answers"). The provider proxy, the model
// endpoints and the diagnostics and admin handlers all answer through it.

// Kind says what sort of failure a call had (package breaker counts
// them; FailureStatus answers them).
type Kind string

// Failure kinds. Callers may use others.
const (
	KindConnect Kind = "connect" // could not reach the backend
	KindTimeout Kind = "timeout" // no answer in time
	KindStatus  Kind = "status"  // answered with a failure status (5xx, 429)
	KindCrash   Kind = "crash"   // the backend process died
	KindError   Kind = "error"   // any other failure
	KindStalled Kind = "stalled" // an answer's body went silent beyond its idle timeout
	KindCut     Kind = "cut"     // an answer's body broke off before its end
)

// StatusClientClosedRequest is nginx's 499: the client left before the answer.
const StatusClientClosedRequest = 499

// FailureStatus is the status of the answer to a call that the backend
// (a provider's upstream, a model's plugin) failed, for every kind of
// backend: 504 when it did not answer in time (or went silent), 503 when it is not there
// to call (a plugin process that exited; the caller adds Retry-After),
// 502 for any other failure.
func FailureStatus(k Kind) int {
	switch k {
	case KindTimeout, KindStalled:
		return http.StatusGatewayTimeout
	case KindCrash:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Status     string `json:"status"` // "error"
	ProviderID string `json:"provider_id,omitempty"`
	ModelKey   string `json:"model_key,omitempty"`
	Error      string `json:"error"`
	// Diagnostics are the lines of a refused configuration.
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// WriteJSON answers code with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status":"error","error":"cannot encode the answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// WriteError answers code with an ErrorBody holding msg.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorBody{Status: "error", Error: msg})
}

// SetRetryAfter sets Retry-After to d in whole seconds (rounded up, at
// least 1).
func SetRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds(d)))
}

// RetryAfterSeconds rounds up to whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// Seconds is d in seconds with millisecond precision, as documents show
// durations.
func Seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

// Stamp is t as documents show times (RFC 3339, UTC), or nil when zero.
func Stamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// StrOrNil is s, or nil when empty.
func StrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
