package proxy

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
)

// reportOf is one entry of GET /api/diagnostics/report: its state now and
// its last hour.
func reportOf(kind, key, upstream string, e *breaker.Entry) api.ReportRow {
	snap := e.Snapshot()
	r := api.ReportRow{Kind: kind, Key: key, Upstream: upstream, Status: snap.Status.String(), Reason: snap.Reason,
		ErrorCount: snap.ErrorCount, SuccessCount: snap.SuccessCount,
		LastSuccess: api.Stamp(snap.LastSuccess), LastError: api.Stamp(snap.LastError),
		LastErrorMsg: api.StrOrNil(snap.LastErrorMessage), LastHour: e.LastHour()}
	if snap.InCooldown {
		r.CooldownUntil = api.Stamp(snap.CooldownUntil)
	}
	return r
}

// serveReport is GET /api/diagnostics/report?format=json|csv: every
// provider upstream and model with its state and its last hour (success
// rate, p50/p95 latency, time unavailable), for download.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) error {
	st := s.state.Load()
	var rows []api.ReportRow
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			rows = append(rows, reportOf(KindProvider, p.ID, u.Display, u.Health))
		}
	}
	for _, m := range st.modelList {
		rows = append(rows, reportOf(KindModel, m.Key, "", m.Health))
	}
	for _, m := range s.llm.Models() {
		for _, ep := range m.Endpoints() {
			rows = append(rows, reportOf(KindModel, m.Key, ep.URL, ep.Health))
		}
	}
	now := time.Now().UTC()
	name := "healproxy-report-" + now.Format("20060102T150405Z")
	switch format := r.URL.Query().Get("format"); format {
	case "", "json":
		if rows == nil {
			rows = []api.ReportRow{}
		}
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "success", "timestamp": now.Format(time.RFC3339),
			"window_seconds": 3600, "entries": rows})
	case "csv":
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		h.Set("Cache-Control", "no-store")
		cw := csv.NewWriter(w)
		cw.Write([]string{"kind", "key", "upstream", "status", "reason", "error_count", "success_count",
			"last_success", "last_error", "last_error_message", "cooldown_until",
			"requests_1h", "errors_1h", "success_rate_1h", "p50_latency_ms_1h", "p95_latency_ms_1h", "unavailable_seconds_1h"})
		for _, row := range rows {
			cw.Write([]string{row.Kind, row.Key, row.Upstream, row.Status, row.Reason,
				strconv.FormatInt(row.ErrorCount, 10), strconv.FormatInt(row.SuccessCount, 10),
				deref(row.LastSuccess), deref(row.LastError), deref(row.LastErrorMsg), deref(row.CooldownUntil),
				strconv.FormatInt(row.LastHour.Requests, 10), strconv.FormatInt(row.LastHour.Errors, 10),
				ftoa(row.LastHour.SuccessRate), ftoa(row.LastHour.P50MS), ftoa(row.LastHour.P95MS),
				ftoa(row.LastHour.UnavailableSecs)})
		}
		cw.Flush()
	default:
		return &api.Error{Status: http.StatusBadRequest, Msg: "format must be json or csv"}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
