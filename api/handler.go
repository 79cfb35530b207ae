package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Error is an error answer: its status, its message and what the body
// and headers say beside it. Handlers return one; WriteErr answers it.
type Error struct {
	Status     int
	Msg        string
	ProviderID string        // for the body's provider_id
	ModelKey   string        // for the body's model_key
	RetryAfter time.Duration // > 0: a Retry-After header
	Allow      string        // with 405: the Allow header
	// Diagnostics are the lines of a refused configuration.
	Diagnostics []string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// WriteErr answers err. It is the one place where an error of a
// diagnostics, admin or model handler becomes a status code: an *Error
// has its own; a client that left gets 499 (nginx's); anything else is a
// bug, logged, and answered 500 without its text, which may hold what
// the client must not see.
func WriteErr(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
		if e.RetryAfter > 0 {
			SetRetryAfter(w, e.RetryAfter)
		}
		if e.Allow != "" {
			w.Header().Set("Allow", e.Allow)
		}
		WriteJSON(w, e.Status, ErrorBody{Status: "error", ProviderID: e.ProviderID, ModelKey: e.ModelKey, Error: e.Msg,
			Diagnostics: e.Diagnostics})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		w.WriteHeader(StatusClientClosedRequest)
	default:
		if log != nil {
			log.Error("handler failed", "method", r.Method, "path", r.URL.Path, "error", err)
		}
		WriteError(w, http.StatusInternalServerError, "internal error")
	}
}

// Handler is an http.Handler that returns its error answer instead of
// writing it; Serve turns it into an http.Handler.
type Handler func(w http.ResponseWriter, r *http.Request) error

// Serve is h as an http.Handler, answering its errors with WriteErr.
func Serve(log *slog.Logger, h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteErr(w, r, log, err)
		}
	}
}
