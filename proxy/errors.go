package proxy

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/breaker"
)

// StatusClientClosedRequest is nginx's 499: the client left before the answer.
const StatusClientClosedRequest = 499

// proxyError is the provider's ReverseProxy ErrorHandler: the one place
// where a failed provider request becomes a status code and a JSON body.
func (p *Provider) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *cooldownError
	var ue *upstreamError
	var le *localError
	switch {
	case errors.As(err, &ce):
		writeCooldown(w, p, ce.remaining)
	case err == errBodyTooLarge:
		p.m.notUpstream.WithLabelValues(p.ID, causeBodyTooLarge).Inc()
		writeBodyTooLarge(w, p)
	case errors.As(err, &le) && (le == errBodySlow || r.Context().Err() == nil):
		p.m.notUpstream.WithLabelValues(p.ID, le.cause).Inc()
		switch le.status {
		case http.StatusServiceUnavailable:
			setRetryAfter(w, time.Second)
		case http.StatusBadRequest, http.StatusRequestTimeout:
			w.Header().Set("Connection", "close") // the rest of the body cannot be read
		}
		writeJSON(w, le.status, errorBody{Status: "error", ProviderID: p.ID, Error: le.msg})
	case errors.Is(err, errClientGone) || r.Context().Err() != nil:
		p.m.notUpstream.WithLabelValues(p.ID, causeClientGone).Inc()
		w.WriteHeader(StatusClientClosedRequest)
	case errors.As(err, &ue):
		writeJSON(w, failureAnswer(ue.kind), errorBody{Status: "error", ProviderID: p.ID, Error: ue.msg})
	default:
		writeJSON(w, http.StatusBadGateway, errorBody{Status: "error", ProviderID: p.ID,
			Error: "proxy error: " + p.secrets.Scrub(err.Error())})
	}
}

// failureAnswer is the status of the answer to a call that the backend
// (a provider's upstream, a model's plugin) failed, for both kinds of
// backend (docs/behaviour.md, "What counts as a failure"): 504 when it
// did not answer in time, 503 when it is not there to call (a plugin
// process that exited; the caller adds Retry-After), 502 for any other
// failure.
func failureAnswer(k breaker.Kind) int {
	switch k {
	case breaker.KindTimeout:
		return http.StatusGatewayTimeout
	case breaker.KindCrash:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// writeBodyTooLarge answers 413 for a request body over the provider's
// max_request_body.
func writeBodyTooLarge(w http.ResponseWriter, p *Provider) {
	w.Header().Set("Connection", "close") // the rest of the body is not read
	writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Status: "error", ProviderID: p.ID,
		Error: "request body larger than max_request_body (" + strconv.FormatInt(p.cfg.MaxRequestBody, 10) + " bytes)"})
}

type errorBody struct {
	Status     string `json:"status"`
	ProviderID string `json:"provider_id,omitempty"`
	ModelKey   string `json:"model_key,omitempty"`
	Error      string `json:"error"`
}

// writeCooldown answers 503 for a provider none of whose upstreams admits
// requests, with Retry-After in whole seconds (rounded up, at least 1).
func writeCooldown(w http.ResponseWriter, p *Provider, remaining time.Duration) {
	setRetryAfter(w, remaining)
	writeJSON(w, http.StatusServiceUnavailable, struct {
		Status            string  `json:"status"`
		ProviderID        string  `json:"provider_id"`
		CooldownRemaining float64 `json:"cooldown_remaining"`
		Error             string  `json:"error"`
	}{"cooldown", p.ID, seconds(remaining),
		"every upstream of provider " + strconv.Quote(p.ID) + " is unavailable (cooling down or drained); retry later"})
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
}

// retryAfterSeconds rounds up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// seconds is d in seconds with millisecond precision.
func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

func writeJSON(w http.ResponseWriter, code int, v any) {
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

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Status: "error", Error: msg})
}
