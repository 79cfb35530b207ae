package provider

// Fault injection (admin): the fault model is internal/fault's; here is
// where a fault is kept (one per upstream, an atomic pointer) and applied:
// where an attempt is sent (Upstream.send), inside the upstream's breaker
// call, so the breaker, retries, failover, metrics and logs see it exactly
// as they would see the real failure. Faults live in memory only: a
// restart clears them; a reload keeps them on the upstreams it keeps.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/internal/fault"
)

// send sends one attempt to u through base, unless an injected fault
// answers it. With no fault set it costs one atomic load.
func (u *Upstream) send(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if f := u.fault.Load(); f != nil {
		return u.faulted(f, base, req)
	}
	return base.RoundTrip(req)
}

// faulted applies f to one attempt; an expired f is cleared and the
// attempt sent as usual.
func (u *Upstream) faulted(f *fault.Fault, base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if f.Expired(time.Now()) {
		u.fault.CompareAndSwap(f, nil)
		return base.RoundTrip(req)
	}
	return f.RoundTrip(base, req)
}

// activeFault is u's fault if one is in force now.
func (u *Upstream) activeFault(now time.Time) *fault.Fault {
	f := u.fault.Load()
	if f == nil || f.Expired(now) {
		return nil
	}
	return f
}

// FaultDocument shows u's fault in force, or nil.
func (u *Upstream) FaultDocument() *api.Fault {
	f := u.activeFault(time.Now())
	if f == nil {
		return nil
	}
	return f.Document()
}

// UpstreamsNamed are the upstreams of p an admin request's upstream
// names: a display URL, a 0-based index in diagnostics order, or, when
// empty, all of them.
func (p *Provider) UpstreamsNamed(which string) []*Upstream {
	if which == "" {
		return p.Upstreams
	}
	if i, err := strconv.Atoi(which); err == nil {
		if i < 0 || i >= len(p.Upstreams) {
			return nil
		}
		return p.Upstreams[i : i+1]
	}
	for _, u := range p.Upstreams {
		if strings.TrimRight(which, "/") == strings.TrimRight(u.Display, "/") {
			return []*Upstream{u}
		}
	}
	return nil
}

// InjectFault sets f (from fault.Parse) on u, replacing any other, until
// f.Until; ExpireFault clears it then.
func (u *Upstream) InjectFault(f *fault.Fault) { u.fault.Store(f) }

// ClearFault clears u's fault and returns it, if one was in force.
func (u *Upstream) ClearFault(now time.Time) *fault.Fault {
	if old := u.fault.Swap(nil); old != nil && now.Before(old.Until) {
		return old
	}
	return nil
}

// ExpireFault clears f from u when its TTL ends, unless it was cleared
// or replaced before; it says whether it did.
func (u *Upstream) ExpireFault(f *fault.Fault) bool { return u.fault.CompareAndSwap(f, nil) }
