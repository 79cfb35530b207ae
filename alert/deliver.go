package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// payload is the JSON body of one POST.
type payload struct {
	// Text is one human line in Slack's mrkdwn, shown by Slack-compatible
	// incoming webhooks.
	Text      string       `json:"text"`
	ID        string       `json:"id"` // unique per event and process: tells a retried delivery apart
	Alert     string       `json:"alert"`
	Event     payloadEvent `json:"event"`
	Healproxy meta         `json:"healproxy"`
}

type payloadEvent struct {
	Event
	// Suppressed is how many events like this one were not sent since
	// SuppressedSince, the time the one before them was.
	Suppressed      int        `json:"suppressed,omitempty"`
	SuppressedSince *time.Time `json:"suppressed_since,omitempty"`
}

type meta struct {
	Version string `json:"version,omitempty"`
}

func (w *worker) body(q queued) ([]byte, error) {
	p := payload{
		Text:      Text(q.ev, q.suppressed, q.since),
		ID:        q.id,
		Alert:     w.alert.Name,
		Event:     payloadEvent{Event: q.ev, Suppressed: q.suppressed},
		Healproxy: meta{Version: w.n.opts.Version},
	}
	p.Event.Time = p.Event.Time.UTC()
	if q.suppressed > 0 {
		since := q.since.UTC()
		p.Event.SuppressedSince = &since
	}
	return json.Marshal(p)
}

// deliver posts one event, retrying as the package documentation says.
func (w *worker) deliver(q queued) {
	ctx := w.n.ctx
	logger := w.n.log.With("alert", w.alert.Name, "webhook", w.webhook,
		"event", q.ev.Type, "kind", q.ev.Kind, "key", q.ev.Key)
	body, err := w.body(q)
	if err != nil { // cannot happen with these types
		w.givenUp.Add(1)
		logger.Error("alert: cannot encode the event", "error", err)
		return
	}
	maxAttempts := w.n.opts.MaxAttempts
	for attempt := 1; ; attempt++ {
		res := w.post(ctx, body)
		if res.err == nil {
			w.sent.Add(1)
			if attempt > 1 {
				logger.Info("alert delivered", "attempts", attempt)
			}
			return
		}
		if ctx.Err() != nil {
			// Close gave up during the attempt: not the webhook's failure.
			w.dropped.Add(1)
			return
		}
		w.failed.Add(1)
		if !res.retry {
			w.givenUp.Add(1)
			logger.Warn("alert rejected by the webhook; not retrying", "status", res.status, "error", res.err)
			return
		}
		if attempt >= maxAttempts {
			w.givenUp.Add(1)
			logger.Warn("alert not delivered; giving up", "attempts", attempt, "status", res.status, "error", res.err)
			return
		}
		wait := w.backoff(attempt)
		if res.retryAfter > 0 {
			wait = min(res.retryAfter, w.n.opts.MaxBackoff)
		}
		logger.Debug("alert delivery failed; will retry", "attempt", attempt, "status", res.status, "error", res.err, "retry_in", wait)
		if err := w.n.opts.Sleep(ctx, wait); err != nil || ctx.Err() != nil {
			w.dropped.Add(1)
			return
		}
	}
}

// backoff is the wait after the attempt-th failed attempt: full jitter
// over min(MaxBackoff, Backoff·2^(attempt-1)).
func (w *worker) backoff(attempt int) time.Duration {
	ceil, maxB := w.n.opts.Backoff, w.n.opts.MaxBackoff
	for i := 1; i < attempt && ceil < maxB; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxB)
	return rand.N(ceil + 1)
}

type result struct {
	err        error // nil: delivered
	status     int   // 0 when there was no answer
	retry      bool
	retryAfter time.Duration
}

// post makes one attempt. Its error never contains the webhook URL.
func (w *worker) post(ctx context.Context, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return result{err: errors.New("cannot build the request")}
	}
	req.Header.Set("Content-Type", "application/json")
	ua := "healproxy"
	if v := w.n.opts.Version; v != "" {
		ua += "/" + v
	}
	req.Header.Set("User-Agent", ua)
	resp, err := w.n.opts.Client.Do(req)
	if err != nil {
		return result{err: w.scrub(err), retry: true}
	}
	// The body is drained for connection reuse but never logged: some
	// servers echo the request path, which is the secret.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return result{status: code}
	case code == http.StatusTooManyRequests || code >= 500:
		return result{err: fmt.Errorf("answered %d", code), status: code, retry: true,
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), w.n.opts.Now())}
	default:
		return result{err: fmt.Errorf("answered %d", code), status: code}
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. 0 means
// none or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// scrub turns a client error into one without the webhook URL: url.Error
// quotes the whole URL, path and query included.
func (w *worker) scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		msg = "timeout: " + msg
	}
	// Belt and braces: no error text we know of quotes the path or query,
	// but the secret must not get out through one we do not know.
	msg = w.secrets.Scrub(msg)
	return errors.New(msg)
}

// maxMessage bounds the reason and message in the text.
const maxMessage = 300

// Text is the human line of an event, in Slack's mrkdwn, e.g.
//
//	:x: provider binance upstream https://api1.binance.com/api/v3 is unavailable: error_count reached 3 (connection refused) (3 more since 12:01:05 UTC)
//
// suppressed and since say how many events like it were not sent since
// when; 0 leaves that out.
func Text(e Event, suppressed int, since time.Time) string {
	var sb strings.Builder
	icon, what := ":information_source:", e.Type
	switch e.Type {
	case Unavailable:
		icon, what = ":x:", "is unavailable"
	case Degraded:
		icon, what = ":warning:", "is degraded"
	case Recovered:
		icon, what = ":white_check_mark:", "recovered"
	case ReinitFailed:
		icon, what = ":rotating_light:", "could not be reinitialised"
	}
	sb.WriteString(icon)
	sb.WriteString(" ")
	sb.WriteString(e.Kind)
	sb.WriteString(" ")
	sb.WriteString(e.Key)
	if e.Upstream != "" {
		sb.WriteString(" upstream ")
		sb.WriteString(e.Upstream)
	}
	sb.WriteString(" ")
	sb.WriteString(what)
	reason, msg := shorten(e.Reason), shorten(e.Message)
	switch {
	case reason != "" && msg != "":
		sb.WriteString(": " + reason + " (" + msg + ")")
	case reason != "":
		sb.WriteString(": " + reason)
	case msg != "":
		sb.WriteString(": " + msg)
	}
	if suppressed > 0 {
		fmt.Fprintf(&sb, " (%d more since %s UTC)", suppressed, since.UTC().Format(time.TimeOnly))
	}
	return slackEscape(sb.String())
}

// shorten makes s one line of at most maxMessage bytes.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
