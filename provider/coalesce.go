package provider

import (
	"net/http"

	"github.com/healproxy/healproxy/internal/coalesce"
)

// newCoalescer makes p's identical concurrent GET and HEAD requests share
// one exchange (config coalesce = true; README, "Request coalescing";
// docs/behaviour.md). The shared exchange is p's own serve, run for the
// first request under a context no client's departure ends; each client
// is written to within p's write budget, as serve's own answers are.
func newCoalescer(p *Provider, m *Metrics) *coalesce.Handler {
	joined := m.hedging.coalesced.WithLabelValues(p.ID)
	return coalesce.New(http.HandlerFunc(p.serve), coalesce.Options{
		WriteTimeout: p.writeBudget(),
		OnJoin:       joined.Inc,
	})
}
