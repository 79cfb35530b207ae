package provider

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/clientbody"
)

// Causes of a failed provider request that the upstream did not cause:
// the labels of healproxy_provider_errors_not_upstream_total
// (internal/clientbody tells them).
const (
	CauseBodyMalformed = clientbody.CauseMalformed
	CauseBodyAborted   = clientbody.CauseAborted
	CauseBodySlow      = clientbody.CauseSlow
	CauseBodyTooLarge  = clientbody.CauseTooLarge
	CauseResources     = clientbody.CauseResources
	CauseClientGone    = clientbody.CauseClientGone
)

// proxyError is the provider's ReverseProxy ErrorHandler: the one place
// where a failed provider request becomes a status code and a JSON body.
func (p *Provider) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *cooldownError
	var ue *upstreamError
	var le *clientbody.Error
	switch {
	case errors.As(err, &ce):
		writeCooldown(w, p, ce.remaining)
	case err == clientbody.ErrTooLarge:
		p.m.notUpstream.WithLabelValues(p.ID, CauseBodyTooLarge).Inc()
		writeBodyTooLarge(w, p)
	case errors.As(err, &le) && (le == clientbody.ErrSlow || r.Context().Err() == nil):
		p.m.notUpstream.WithLabelValues(p.ID, le.Cause).Inc()
		switch le.Status {
		case http.StatusServiceUnavailable:
			api.SetRetryAfter(w, time.Second)
		case http.StatusBadRequest, http.StatusRequestTimeout:
			w.Header().Set("Connection", "close") // the rest of the body cannot be read
		}
		api.WriteJSON(w, le.Status, api.ErrorBody{Status: "error", ProviderID: p.ID, Error: le.Msg})
	case errors.Is(err, errClientGone) || r.Context().Err() != nil:
		p.m.notUpstream.WithLabelValues(p.ID, CauseClientGone).Inc()
		w.WriteHeader(api.StatusClientClosedRequest)
	case errors.As(err, &ue):
		api.WriteJSON(w, api.FailureStatus(ue.kind), api.ErrorBody{Status: "error", ProviderID: p.ID, Error: ue.msg})
	default:
		api.WriteJSON(w, http.StatusBadGateway, api.ErrorBody{Status: "error", ProviderID: p.ID,
			Error: "proxy error: " + p.secrets.Scrub(err.Error())})
	}
}

// writeBodyTooLarge answers 413 for a request body over the provider's
// max_request_body.
func writeBodyTooLarge(w http.ResponseWriter, p *Provider) {
	w.Header().Set("Connection", "close") // the rest of the body is not read
	api.WriteJSON(w, http.StatusRequestEntityTooLarge, api.ErrorBody{Status: "error", ProviderID: p.ID,
		Error: "request body larger than max_request_body (" + strconv.FormatInt(p.cfg.MaxRequestBody, 10) + " bytes)"})
}

// writeCooldown answers 503 for a provider none of whose upstreams admits
// requests, with Retry-After in whole seconds (rounded up, at least 1).
func writeCooldown(w http.ResponseWriter, p *Provider, remaining time.Duration) {
	api.SetRetryAfter(w, remaining)
	api.WriteJSON(w, http.StatusServiceUnavailable, struct {
		Status            string  `json:"status"`
		ProviderID        string  `json:"provider_id"`
		CooldownRemaining float64 `json:"cooldown_remaining"`
		Error             string  `json:"error"`
	}{"cooldown", p.ID, api.Seconds(remaining),
		"every upstream of provider " + strconv.Quote(p.ID) + " is unavailable (cooling down or drained); retry later"})
}
