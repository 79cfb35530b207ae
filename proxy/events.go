package proxy

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
)

func (s *Server) publishChange(c Change) {
	if !s.events.Active() {
		return
	}
	ev := api.StatusEvent{Kind: c.Kind, Key: c.Key, Upstream: c.Upstream, From: c.From.String(), To: c.To.String(),
		Time: time.Now().UTC().Format(time.RFC3339Nano)}
	st := s.state.Load()
	switch c.Kind {
	case KindProvider:
		if p := st.providers[c.Key]; p != nil {
			ev.Entry = providerEntry(p)
		}
	case KindModel:
		if m := st.models[c.Key]; m != nil {
			ev.Entry = m.document()
		} else if m := s.llm.Model(c.Key); m != nil {
			ev.Entry = endpointModelDoc(m)
		}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.publishEvent("status", data)
}

// publishEvent sends one event of the given type, with data (JSON) as its
// data line, to every subscriber of the event stream.
func (s *Server) publishEvent(event string, data []byte) {
	s.events.Publish(append(append([]byte("event: "+event+"\ndata: "), data...), "\n\n"...))
}

// sseHeartbeat keeps idle streams alive through intermediaries.
const sseHeartbeat = 15 * time.Second

// serveEvents is GET /api/diagnostics/events: Server-Sent Events, one
// "status" event per status change. The stream opens with a "hello" event;
// a client that fell behind gets "resync" and should re-read
// /api/diagnostics/health.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return &api.Error{Status: http.StatusInternalServerError, Msg: "streaming unsupported"}
	}
	ch, ok := s.events.Subscribe()
	if !ok {
		return &api.Error{Status: http.StatusServiceUnavailable, Msg: "shutting down"}
	}
	defer s.events.Unsubscribe(ch)
	// The server's write timeout does not apply to an event stream.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("retry: 2000\nevent: hello\ndata: {\"time\":\"" + time.Now().UTC().Format(time.RFC3339Nano) + "\"}\n\n"))
	fl.Flush()

	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case msg, ok := <-ch:
			if !ok {
				w.Write([]byte("event: resync\ndata: {}\n\n"))
				fl.Flush()
				return nil
			}
			if _, err := w.Write(msg); err != nil {
				return nil
			}
			fl.Flush()
		case <-tick.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			fl.Flush()
		}
	}
}

func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) error {
	st := s.state.Load()
	doc := api.History{IntervalSeconds: breaker.HistoryInterval.Seconds(), Buckets: breaker.HistoryBuckets}
	// ?kind=provider|model&key=ID: one entry's history (the UI's timeline
	// of one row), not a fleet's.
	q := r.URL.Query()
	kind, key := q.Get("kind"), q.Get("key")
	if kind != "" && kind != KindProvider && kind != KindModel {
		return &api.Error{Status: http.StatusBadRequest, Msg: "kind must be provider or model"}
	}
	want := func(k, id string) bool { return (kind == "" || kind == k) && (key == "" || key == id) }
	for _, p := range st.providerList {
		if !want(KindProvider, p.ID) {
			continue
		}
		var sum []breaker.Point
		for _, u := range p.Upstreams {
			pts := u.Health.History()
			doc.Entries = append(doc.Entries, api.HistoryEntry{Kind: KindProvider, Key: p.ID, Upstream: u.Display, Points: pts})
			sum = addPoints(sum, pts)
		}
		doc.Entries = append(doc.Entries, api.HistoryEntry{Kind: KindProvider, Key: p.ID, Points: sum})
	}
	for _, m := range st.modelList {
		if want(KindModel, m.Key) {
			doc.Entries = append(doc.Entries, api.HistoryEntry{Kind: KindModel, Key: m.Key, Points: m.Health.History()})
		}
	}
	for _, m := range s.llm.Models() {
		if !want(KindModel, m.Key) {
			continue
		}
		var sum []breaker.Point
		for _, ep := range m.Endpoints() {
			pts := ep.Health.History()
			doc.Entries = append(doc.Entries, api.HistoryEntry{Kind: KindModel, Key: m.Key, Upstream: ep.URL, Points: pts})
			sum = addPoints(sum, pts)
		}
		doc.Entries = append(doc.Entries, api.HistoryEntry{Kind: KindModel, Key: m.Key, Points: sum})
	}
	if kind != "" && key != "" {
		doc.Marks = s.timeline.Of(kind, key, time.Now())
	}
	api.WriteJSON(w, http.StatusOK, doc)
	return nil
}

// addPoints sums b into a, interval by interval (latency weighted by calls).
func addPoints(a, b []breaker.Point) []breaker.Point {
	if a == nil {
		return append([]breaker.Point(nil), b...)
	}
	for i := range a {
		if i >= len(b) {
			break
		}
		n := a[i].Requests + b[i].Requests
		if n > 0 {
			a[i].LatencyMS = (a[i].LatencyMS*float64(a[i].Requests) + b[i].LatencyMS*float64(b[i].Requests)) / float64(n)
		}
		a[i].Requests = n
		a[i].Errors += b[i].Errors
	}
	return a
}
