// Package feed holds what the diagnostics API streams and remembers in
// memory, bounded: the hub that fans events out to Server-Sent Events
// subscribers, each entry's own timeline marks, and the audit log of
// operators' actions (docs/behaviour.md, "The UI with a fleet" and
// "Admin endpoints").
package feed

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/healproxy/healproxy/api"
)

// Hub fans status-change events out to Server-Sent Events subscribers.
// Publishing never blocks: a subscriber whose buffer is full is dropped
// (its stream ends with a "resync" event and the browser reconnects and
// re-reads the health document), so a slow client cannot slow the proxy.
type Hub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	closed bool
}

// SubscriberBuffer is how many messages a subscriber may fall behind
// before it is dropped.
const SubscriberBuffer = 64

// NewHub returns a hub without subscribers.
func NewHub() *Hub { return &Hub{subs: map[chan []byte]struct{}{}} }

// Subscribe adds a subscriber; false once the hub is closed.
func (h *Hub) Subscribe() (chan []byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	ch := make(chan []byte, SubscriberBuffer)
	h.subs[ch] = struct{}{}
	return ch, true
}

// Unsubscribe removes a subscriber and closes its channel.
func (h *Hub) Unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

// Active says whether anyone listens.
func (h *Hub) Active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// Publish sends msg to every subscriber, dropping those too slow to take it.
func (h *Hub) Publish(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- msg:
		default: // too slow: drop it; it will resync
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Close ends every stream; later subscribers are refused.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

const (
	// MarksPerEntry is how many marks an entry keeps, its newest.
	MarksPerEntry = 64
	// MarkAge is how long a mark is kept: the UI's timeline is an hour.
	MarkAge = time.Hour
	// PruneEvery: every this many marks, entries whose newest mark is
	// older than MarkAge are forgotten (entries a reload removed).
	PruneEvery = 4096
)

// Marks is the record of every entry; its zero value is ready.
type Marks struct {
	mu      sync.Mutex
	entries map[string]*entryMarks // kind + "\x00" + key
	added   int
}

// entryMarks is one entry's record: a ring of its newest marks, and the
// entry's status after the newest status change.
type entryMarks struct {
	ring   [MarksPerEntry]api.Mark
	next   int // where the next mark goes
	n      int // marks held
	status string
}

func key(kind, id string) string { return kind + "\x00" + id }

// Add records m for an entry. A status change's From is the To of the
// entry's change before, or from for its first.
func (tl *Marks) Add(kind, id string, m api.Mark, from string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.entries == nil {
		tl.entries = map[string]*entryMarks{}
	}
	k := key(kind, id)
	e := tl.entries[k]
	if e == nil {
		e = &entryMarks{}
		tl.entries[k] = e
	}
	if m.Type == "status" {
		if e.status == "" {
			e.status = from
		}
		m.From = e.status
		e.status = m.To
	}
	e.ring[e.next] = m
	e.next = (e.next + 1) % MarksPerEntry
	e.n = min(e.n+1, MarksPerEntry)
	tl.added++
	if tl.added%PruneEvery == 0 {
		old := m.Time.Add(-MarkAge)
		for k, e := range tl.entries {
			if e.ring[(e.next+MarksPerEntry-1)%MarksPerEntry].Time.Before(old) {
				delete(tl.entries, k)
			}
		}
	}
}

// Of is an entry's marks of the last MarkAge before now, oldest first.
func (tl *Marks) Of(kind, id string, now time.Time) []api.Mark {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := []api.Mark{}
	e := tl.entries[key(kind, id)]
	if e == nil {
		return out
	}
	old := now.Add(-MarkAge)
	for i := range e.n {
		m := e.ring[(e.next-e.n+i+MarksPerEntry)%MarksPerEntry]
		if !m.Time.Before(old) {
			out = append(out, m)
		}
	}
	return out
}

// Audit keeps the last MaxAudit records of operators' actions in memory,
// and hands each to Persist when set (the state store).
type Audit struct {
	mu      sync.Mutex
	records []api.AuditEntry
	Persist func([]byte) // may be nil; set before the first Add
}

// MaxAudit bounds the records kept.
const MaxAudit = 1000

// Add records r.
func (a *Audit) Add(r api.AuditEntry) {
	a.mu.Lock()
	a.records = append(a.records, r)
	if len(a.records) > MaxAudit {
		a.records = append(a.records[:0:0], a.records[len(a.records)-MaxAudit:]...)
	}
	persist := a.Persist
	a.mu.Unlock()
	if persist != nil {
		if b, err := json.Marshal(r); err == nil {
			persist(b)
		}
	}
}

// Last is the newest n records, oldest first ([] when none).
func (a *Audit) Last(n int) []api.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	n = min(n, len(a.records))
	return append([]api.AuditEntry{}, a.records[len(a.records)-n:]...) // [] not null when empty
}

// Restore puts records read back from the state store before the new ones.
func (a *Audit) Restore(rs []api.AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = append(append([]api.AuditEntry{}, rs...), a.records...)
	if len(a.records) > MaxAudit {
		a.records = a.records[len(a.records)-MaxAudit:]
	}
}
