// Package alert tells people about status changes: it posts one JSON event
// per change to the webhook of every configured alert (config.Alert), with
// a Slack-compatible "text" field, so an alert can point straight at a Slack
// (or Mattermost, Rocket.Chat, Discord /slack…) incoming webhook.
//
// Delivery is never on the caller's path. Notify only filters, de-duplicates
// and appends the event to a bounded in-memory queue; it never waits for the
// network and never blocks: when a queue is full the event is dropped and
// counted. Each alert has its own queue and its own worker goroutine, so one
// slow or dead webhook never delays another.
//
// Per alert, events are delivered one at a time in the order they were
// accepted. An event whose delivery fails is retried (connection errors,
// timeouts, 5xx and 429, with exponential backoff and full jitter, honouring
// Retry-After) and holds the events behind it until it is delivered or given
// up (after Options.MaxAttempts, or at once on any other non-2xx answer).
// Delivery is at least once: a webhook that handled a request but answered
// too late gets it again; the payload's "id" tells such repeats apart.
//
// De-duplication: the same event (type, kind, key, upstream) is sent at most
// once per the alert's MinInterval; the ones suppressed are counted and the
// next one sent says how many there were ("(3 more since 12:01:05 UTC)").
// So that a flapping entry cannot end up reported in a state it has left, an
// entry's latest suppressed event is sent when its interval is over if it
// differs from what the alert last sent for that entry. A "recovered" event
// is sent only when it follows "unavailable" or when the alert was told
// that the entry was in trouble; an entry that was only degraded, for an
// alert that does not listen to "degraded", recovers silently.
//
// The webhook URL may be a secret (Slack's are): it is never logged; logs
// and Stats show scheme://host only.
package alert

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/redact"
)

// Event types: config.AlertEvents.
const (
	Unavailable  = "unavailable"
	Degraded     = "degraded"
	Recovered    = "recovered"
	ReinitFailed = "reinit_failed"
)

// Event kinds.
const (
	KindProvider = "provider"
	KindModel    = "model"
)

// Event is one thing to tell people about.
type Event struct {
	Type     string    `json:"type"`               // Unavailable, Degraded, Recovered or ReinitFailed
	Kind     string    `json:"kind"`               // KindProvider or KindModel
	Key      string    `json:"key"`                // provider id or model key
	Upstream string    `json:"upstream,omitempty"` // display URL (already redacted) or ""
	From     string    `json:"from,omitempty"`     // status before
	To       string    `json:"to,omitempty"`       // status after
	Reason   string    `json:"reason,omitempty"`   // why, already free of secrets
	Message  string    `json:"message,omitempty"`  // last error or reinit message, already free of secrets
	Time     time.Time `json:"time"`               // when it happened; zero: when Notify is called
}

// TypeOf is the event type of a status change from → to (breaker status
// names), or "" when the change is not worth telling anyone about:
//
//	→ unavailable                       unavailable
//	healthy or unknown → degraded       degraded
//	unavailable → degraded              "" (cooldown over: recovery trials)
//	degraded or unavailable → healthy   recovered
//	unknown → healthy, anything else    ""
func TypeOf(from, to string) string {
	switch {
	case to == "unavailable" && from != "unavailable":
		return Unavailable
	case to == "degraded" && (from == "healthy" || from == "unknown"):
		return Degraded
	case to == "healthy" && (from == "degraded" || from == "unavailable"):
		return Recovered
	}
	return ""
}

// Defaults of Options.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultQueueSize   = 1024
	DefaultMaxAttempts = 6
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
)

// Options tunes New. The zero value is usable.
type Options struct {
	// Logger receives delivery problems (never the webhook URL). nil means
	// slog.Default().
	Logger *slog.Logger
	// Client posts the events. nil means one with a DefaultTimeout timeout
	// that does not follow redirects. A Client without a Timeout can hold
	// an alert's queue for as long as a webhook keeps a request open.
	Client *http.Client
	// QueueSize bounds each alert's queue. Default DefaultQueueSize.
	QueueSize int
	// MaxAttempts is how many times one event is tried. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the base of the exponential backoff between attempts
	// (full jitter: a random wait in [0, min(MaxBackoff, Backoff·2ⁿ))).
	// MaxBackoff caps it and caps Retry-After. Defaults DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Now is the clock of de-duplication and of events without a Time.
	// nil means time.Now.
	Now func() time.Time
	// Sleep waits d between attempts, or returns ctx's error when ctx ends
	// first. nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Version is sent as healproxy.version in every payload when not empty.
	Version string
}

// Notifier delivers events to every configured alert. Its methods are safe
// for concurrent use, and safe on a nil *Notifier (which has no alerts).
type Notifier struct {
	workers   []*worker
	opts      Options
	log       *slog.Logger
	ownClient bool

	ctx     context.Context // delivery; cancelled when Close gives up
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close: drain, then stop
	once    sync.Once
	wg      sync.WaitGroup

	idPrefix string
	seq      atomic.Uint64
}

// New starts one worker goroutine per alert. Stop them with Close.
func New(alerts []config.Alert, opts Options) *Notifier {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := &Notifier{log: opts.Logger, closing: make(chan struct{})}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout: DefaultTimeout,
			// A webhook does not redirect; following one would turn the
			// POST into a GET. The 3xx is a permanent failure instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		n.ownClient = true
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	n.opts = opts
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.idPrefix = strconv.FormatInt(time.Now().UnixNano(), 36) + "-"

	for _, a := range alerts {
		if a.Webhook == nil {
			continue // config never gives one; nothing to post to
		}
		w := &worker{
			n:        n,
			alert:    a,
			webhook:  a.RedactedWebhook(),
			url:      a.Webhook.String(),
			secrets:  redact.New(redact.ForURL(a.Webhook, true)...),
			wake:     make(chan struct{}, 1),
			ring:     make([]queued, opts.QueueSize),
			types:    map[typeKey]*typeState{},
			entities: map[entityKey]*entityState{},
		}
		for _, t := range a.On {
			w.on |= typeBit(t)
		}
		n.workers = append(n.workers, w)
	}
	n.wg.Add(len(n.workers))
	for _, w := range n.workers {
		go w.run()
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func typeBit(t string) uint8 {
	switch t {
	case Unavailable:
		return 1
	case Degraded:
		return 2
	case Recovered:
		return 4
	case ReinitFailed:
		return 8
	}
	return 0
}

// Notify queues e for every alert that listens to its type. It never
// blocks and never waits for the network: when an alert's queue is full the
// event is dropped for that alert and counted (and logged at Warn at most
// once a minute). After Close it does nothing.
func (n *Notifier) Notify(e Event) {
	if n == nil || len(n.workers) == 0 {
		return
	}
	bit := typeBit(e.Type)
	if bit == 0 {
		return
	}
	now := n.opts.Now()
	if e.Time.IsZero() {
		e.Time = now
	}
	for _, w := range n.workers {
		if w.on&bit != 0 {
			w.offer(e, now)
		}
	}
}

// Seed tells the notifier, without sending anything, that an entry is
// already known to be in state typ (Unavailable or Degraded) — for entries
// restored after a restart, whose trouble was reported before it: no
// second "unavailable" goes out, and their recovery is still reported.
func (n *Notifier) Seed(kind, key, upstream, typ string) {
	if n == nil {
		return
	}
	ek := entityKey{kind, key, upstream}
	for _, w := range n.workers {
		w.mu.Lock()
		es := w.entities[ek]
		if es == nil {
			es = &entityState{}
			w.entities[ek] = es
		}
		es.told = typ
		w.mu.Unlock()
	}
}

// Close stops accepting events and delivers what is queued (including the
// last suppressed state of flapping entries) until ctx ends; then it
// abandons the rest, interrupting a request or a backoff in progress, and
// returns ctx's error. Every goroutine of the Notifier has ended when it
// returns. Calling it again waits for the same end.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	n.once.Do(func() {
		for _, w := range n.workers {
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
		}
		close(n.closing)
	})
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		n.cancel()
		<-done
	}
	n.cancel()
	if n.ownClient {
		n.opts.Client.CloseIdleConnections()
	}
	return err
}

// Stats are a Notifier's counters, for diagnostics and metrics.
type Stats struct {
	Alerts []AlertStats // in the order of the config
}

// AlertStats are the counters of one alert. The counters only grow.
type AlertStats struct {
	Name    string
	Webhook string // redacted: scheme://host

	Sent         uint64 // events delivered (2xx)
	Failed       uint64 // failed attempts, retried or not
	GivenUp      uint64 // events abandoned: MaxAttempts reached or a non-retryable answer
	Dropped      uint64 // events lost: queue full, or still queued when Close gave up
	Deduplicated uint64 // events not sent because of min_interval
	Queued       int    // events waiting now (not counting one being delivered)
}

// Stats returns the counters of every alert.
func (n *Notifier) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	s := Stats{Alerts: make([]AlertStats, len(n.workers))}
	for i, w := range n.workers {
		w.mu.Lock()
		queued := w.count
		w.mu.Unlock()
		s.Alerts[i] = AlertStats{
			Name:         w.alert.Name,
			Webhook:      w.webhook,
			Sent:         w.sent.Load(),
			Failed:       w.failed.Load(),
			GivenUp:      w.givenUp.Load(),
			Dropped:      w.dropped.Load(),
			Deduplicated: w.deduped.Load(),
			Queued:       queued,
		}
	}
	return s
}

// Alert returns the counters of the alert with that name.
func (s Stats) Alert(name string) (AlertStats, bool) {
	for _, a := range s.Alerts {
		if a.Name == name {
			return a, true
		}
	}
	return AlertStats{}, false
}

// worker is one alert: its queue, its de-duplication state and the
// goroutine that delivers.
type worker struct {
	n       *Notifier
	alert   config.Alert
	on      uint8            // typeBit of each event type in alert.On
	webhook string           // redacted, for logs
	url     string           // the secret one, for requests only
	secrets *redact.Scrubber // the webhook's path, query and user info, scrubbed from errors
	wake    chan struct{}

	mu       sync.Mutex
	closed   bool
	ring     []queued // the queue: count items from head
	head     int
	count    int
	types    map[typeKey]*typeState
	entities map[entityKey]*entityState
	pending  int // entities with a pending event

	sent, failed, givenUp, dropped, deduped atomic.Uint64
	lastDropLog                             atomic.Int64 // UnixNano of the last "queue full" log
}

type entityKey struct{ kind, key, upstream string }

type typeKey struct {
	typ string
	entityKey
}

// typeState de-duplicates one event of one entry.
type typeState struct {
	sentAt     time.Time // when the last one was accepted
	suppressed int       // how many were suppressed since
}

// entityState is what an alert knows of one entry.
type entityState struct {
	told       string    // type of the last event accepted for it
	pending    Event     // its latest suppressed event, when hasPending
	due        time.Time // when pending's interval is over
	hasPending bool
}

// troubled reports whether the alert was told, or was about to be told,
// that the entry is in trouble.
func (es *entityState) troubled() bool {
	return es != nil && (es.told != "" && es.told != Recovered ||
		es.hasPending && es.pending.Type != Recovered)
}

// queued is one accepted event.
type queued struct {
	ev         Event
	suppressed int       // events like it suppressed before it
	since      time.Time // when the one before them was accepted
	id         string
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// offer filters, de-duplicates and queues e.
func (w *worker) offer(e Event, now time.Time) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.promoteDue(now, false)
	ek := entityKey{e.Kind, e.Key, e.Upstream}
	es := w.entities[ek]
	if e.Type == Recovered && e.From != "unavailable" && !es.troubled() {
		// Nothing this alert was told about to recover from.
		w.clearPending(es)
		w.mu.Unlock()
		return
	}
	tk := typeKey{e.Type, ek}
	ts := w.types[tk]
	if ts != nil && now.Sub(ts.sentAt) < w.alert.MinInterval {
		ts.suppressed++
		if es == nil {
			es = &entityState{}
			w.entities[ek] = es
		}
		if !es.hasPending {
			w.pending++
		}
		es.pending, es.due, es.hasPending = e, ts.sentAt.Add(w.alert.MinInterval), true
		w.mu.Unlock()
		w.deduped.Add(1)
		w.signal() // the worker may need to set its timer for es.due
		return
	}
	if w.count == len(w.ring) {
		w.clearPending(es) // a newer state was lost: the pending one is stale
		w.mu.Unlock()
		w.dropped.Add(1)
		w.logDrop(now)
		return
	}
	if es == nil {
		es = &entityState{}
		w.entities[ek] = es
	}
	w.accept(e, tk, ts, es, now, 0)
	w.mu.Unlock()
	w.signal()
}

// accept queues e, which the caller checked fits. already is how many of
// ts.suppressed are e itself (1 for a pending event, else 0).
func (w *worker) accept(e Event, tk typeKey, ts *typeState, es *entityState, now time.Time, already int) {
	q := queued{ev: e, id: w.n.idPrefix + strconv.FormatUint(w.n.seq.Add(1), 10)}
	switch {
	case ts != nil:
		q.suppressed, q.since = ts.suppressed-already, ts.sentAt
		ts.sentAt, ts.suppressed = now, 0
	case w.alert.MinInterval > 0:
		w.types[tk] = &typeState{sentAt: now}
	}
	w.clearPending(es)
	es.told = e.Type
	w.ring[(w.head+w.count)%len(w.ring)] = q
	w.count++
}

func (w *worker) clearPending(es *entityState) {
	if es != nil && es.hasPending {
		es.hasPending, es.pending = false, Event{}
		w.pending--
	}
}

// promoteDue queues the pending events whose interval is over (all of
// them when all is set), oldest first, unless the alert was already told
// the same thing.
func (w *worker) promoteDue(now time.Time, all bool) {
	if w.pending == 0 {
		return
	}
	var due []*entityState
	for _, es := range w.entities {
		if es.hasPending && (all || !now.Before(es.due)) {
			due = append(due, es)
		}
	}
	slices.SortFunc(due, func(a, b *entityState) int { return a.pending.Time.Compare(b.pending.Time) })
	for _, es := range due {
		e := es.pending
		w.clearPending(es)
		if e.Type == es.told {
			continue // its count goes out with the next one sent
		}
		if w.count == len(w.ring) {
			w.dropped.Add(1)
			continue
		}
		tk := typeKey{e.Type, entityKey{e.Kind, e.Key, e.Upstream}}
		w.accept(e, tk, w.types[tk], es, now, 1)
		w.deduped.Add(^uint64(0)) // it was counted as suppressed; it is sent after all
	}
}

// nextDue is the earliest time a pending event is due.
func (w *worker) nextDue() (time.Time, bool) {
	var first time.Time
	if w.pending == 0 {
		return first, false
	}
	for _, es := range w.entities {
		if es.hasPending && (first.IsZero() || es.due.Before(first)) {
			first = es.due
		}
	}
	return first, !first.IsZero()
}

func (w *worker) pop() (queued, bool) {
	if w.count == 0 {
		return queued{}, false
	}
	q := w.ring[w.head]
	w.ring[w.head] = queued{}
	w.head = (w.head + 1) % len(w.ring)
	w.count--
	return q, true
}

func (w *worker) logDrop(now time.Time) {
	last := w.lastDropLog.Load()
	if last != 0 && now.UnixNano()-last < int64(time.Minute) {
		return
	}
	if w.lastDropLog.CompareAndSwap(last, cmp.Or(now.UnixNano(), 1)) {
		w.n.log.Warn("alert queue full: dropping events until the webhook catches up",
			"alert", w.alert.Name, "webhook", w.webhook, "queue_size", len(w.ring), "dropped", w.dropped.Load())
	}
}

// run delivers queued events until Close.
func (w *worker) run() {
	defer w.n.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := w.n.opts.Now()
		w.mu.Lock()
		closing := w.closed
		w.promoteDue(now, closing)
		q, ok := w.pop()
		next, hasNext := w.nextDue()
		w.mu.Unlock()

		if w.n.ctx.Err() != nil {
			// Close gave up: what is left is lost.
			w.mu.Lock()
			lost := w.count
			if ok {
				lost++
			}
			w.count, w.head = 0, 0
			w.mu.Unlock()
			w.dropped.Add(uint64(lost))
			return
		}
		if ok {
			w.deliver(q)
			continue
		}
		if closing {
			return
		}
		var due <-chan time.Time
		if hasNext {
			timer.Reset(max(next.Sub(now), time.Millisecond))
			due = timer.C
		}
		select {
		case <-w.wake:
		case <-due:
		case <-w.n.closing:
		case <-w.n.ctx.Done():
		}
		timer.Stop()
	}
}
