package proxy

import (
	"encoding/json"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/internal/fault"
	"github.com/healproxy/healproxy/provider"
)

// The timeline record: each entry's own last status changes and fault
// injections, for the UI's timeline of one entry (GET
// /api/diagnostics/history?kind=&key=, "marks"). The event stream cannot
// give them: a page opened later never saw them, and a subscriber that
// falls behind a fleet's burst of events is dropped. Each entry keeps its
// own, so 10,000 others talking cannot push an entry's marks out.

// noteChange records a status change c in its entry's timeline; reason is
// the changed entry's reason after it. Called by changed.
func (s *Server) noteChange(c Change, reason string) {
	m := api.Mark{Time: time.Now().UTC(), Type: "status", Upstream: c.Upstream, Reason: reason}
	var now, before func() breaker.Status
	switch {
	case c.Upstream == "": // a plugin model: the entry is the upstream
		m.To = c.To.String()
		before = func() breaker.Status { return c.From }
	case c.Kind == KindProvider:
		m.UpstreamFrom, m.UpstreamTo = c.From.String(), c.To.String()
		st := s.state.Load()
		if st == nil { // New restoring the state file: no state to read yet
			return
		}
		p := st.providers[c.Key]
		if p == nil {
			return
		}
		now = func() breaker.Status {
			return sumStatus(len(p.Upstreams), func(i int) breaker.Status { return p.Upstreams[i].Health.Status() })
		}
		before = func() breaker.Status {
			return sumStatus(len(p.Upstreams), func(i int) breaker.Status {
				if u := p.Upstreams[i]; u.Display != c.Upstream {
					return u.Health.Status()
				}
				return c.From
			})
		}
	default: // an endpoint model
		m.UpstreamFrom, m.UpstreamTo = c.From.String(), c.To.String()
		if s.llm == nil {
			return
		}
		em := s.llm.Model(c.Key)
		if em == nil {
			return
		}
		now = em.Status
		before = func() breaker.Status {
			eps := em.Endpoints()
			return sumStatus(len(eps), func(i int) breaker.Status {
				if eps[i].URL != c.Upstream {
					return eps[i].Health.Status()
				}
				return c.From
			})
		}
	}
	if now != nil {
		m.To = now().String()
	}
	// read here, not under the record's lock: it reads other entries'
	s.timeline.Add(c.Kind, c.Key, m, before().String())
}

// noteFault records a fault action on upstream u of provider p (typ
// "fault", "fault-clear" or "fault-expired"; f the fault) in p's timeline
// and sends it to the event stream as a "fault" event with p's entry
// after it: a fault changes no status, so no status event tells it.
func (s *Server) noteFault(p *provider.Provider, u *provider.Upstream, typ string, f *fault.Fault, by string) {
	m := api.Mark{Time: time.Now().UTC(), Type: typ, Upstream: u.Display, By: by, Reason: f.Kind}
	if f.Reason != "" {
		m.Reason += ": " + f.Reason
	}
	if typ == "fault" {
		m.Fault = u.FaultDocument()
	}
	s.timeline.Add(KindProvider, p.ID, m, "")
	if !s.events.Active() {
		return
	}
	data, err := json.Marshal(api.FaultEvent{Kind: KindProvider, Key: p.ID, Mark: m, Entry: providerEntry(p)})
	if err != nil {
		return
	}
	s.publishEvent("fault", data)
}

// sumStatus is breaker.Sum without the count.
func sumStatus(n int, status func(i int) breaker.Status) breaker.Status {
	s, _ := breaker.Sum(n, status)
	return s
}
