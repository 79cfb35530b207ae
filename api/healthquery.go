package api

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HealthQuery narrows GET /api/diagnostics/health to one page of the
// entries that match a filter, in a chosen order (README, "API"): what a
// view of a large fleet needs, without the whole document. Its zero value
// matches every entry, in configuration order, without a limit.
type HealthQuery struct {
	// Status keeps the entries of one status: "problems" (unavailable
	// or degraded), "unavailable", "degraded", "healthy" or "unknown";
	// "" or "all" keeps every entry.
	Status string
	// Q keeps the entries whose id, name or an upstream URL contains it,
	// ignoring case.
	Q string
	// Sort orders the matches: "problems" (unavailable, then degraded,
	// then the rest), "name" (name, or id when unnamed) or "last_error"
	// (newest first, never failed last); "" keeps configuration order.
	// Ties keep configuration order.
	Sort string
	// Offset skips that many matches of each kind; Limit keeps at most
	// that many after them (0: no limit).
	Offset, Limit int
}

// HealthPage is the health document's "page" field, present when the
// document was asked for with a HealthQuery: the query as applied and
// how many entries of each kind matched it. The summaries still count
// the whole fleet.
type HealthPage struct {
	Status    string    `json:"status"` // "all" when not filtered
	Q         string    `json:"q"`
	Sort      string    `json:"sort"` // "" for configuration order
	Offset    int       `json:"offset"`
	Limit     int       `json:"limit"` // 0: no limit
	Providers PageCount `json:"providers"`
	Models    PageCount `json:"models"`
}

// PageCount is how many entries of a kind matched a HealthQuery, and how
// many of them the page holds.
type PageCount struct {
	Matched  int `json:"matched"`
	Returned int `json:"returned"`
}

// Bounds of a HealthQuery's values.
const (
	MaxHealthQueryText = 200     // bytes of q
	MaxHealthOffset    = 1 << 30 // far beyond any fleet
)

var (
	healthStatuses = []string{"all", "problems", "unavailable", "degraded", "healthy", "unknown"}
	healthSorts    = []string{"problems", "name", "last_error"}
	healthParams   = []string{"status", "q", "sort", "offset", "limit"}
)

// ParseHealthQuery reads a HealthQuery from the query parameters status,
// q, sort, offset and limit. ok is false when none of them is present:
// the whole document is wanted. A bad value is an *Error with status 400
// that names the parameter and what it accepts.
func ParseHealthQuery(v url.Values) (q HealthQuery, ok bool, err error) {
	for _, p := range healthParams {
		if v.Has(p) {
			ok = true
			if len(v[p]) > 1 {
				return q, ok, badQuery(p + " is given " + strconv.Itoa(len(v[p])) + " times; give it once")
			}
		}
	}
	if !ok {
		return q, false, nil
	}
	q.Status, q.Q, q.Sort = v.Get("status"), v.Get("q"), v.Get("sort")
	if q.Status != "" && !slices.Contains(healthStatuses, q.Status) {
		return q, ok, badQuery("status " + strconv.Quote(q.Status) + " is not one of " + strings.Join(healthStatuses, ", "))
	}
	if q.Sort != "" && !slices.Contains(healthSorts, q.Sort) {
		return q, ok, badQuery("sort " + strconv.Quote(q.Sort) + " is not one of " + strings.Join(healthSorts, ", "))
	}
	if len(q.Q) > MaxHealthQueryText {
		return q, ok, badQuery("q is " + strconv.Itoa(len(q.Q)) + " bytes long; at most " + strconv.Itoa(MaxHealthQueryText) + " are allowed")
	}
	if q.Offset, err = intParam(v, "offset", 0, MaxHealthOffset); err != nil {
		return q, ok, err
	}
	if q.Limit, err = intParam(v, "limit", 1, MaxHealthOffset); err != nil {
		return q, ok, err
	}
	return q, ok, nil
}

func badQuery(msg string) *Error { return &Error{Status: 400, Msg: msg} }

// intParam is the integer parameter name, between lo and hi; 0 when absent.
func intParam(v url.Values, name string, lo, hi int) (int, error) {
	s := v.Get(name)
	if !v.Has(name) {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badQuery(name + " " + strconv.Quote(s) + " is not a whole number from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi))
	}
	return n, nil
}

// Apply narrows doc's entries to the page q asks for and sets doc.Page.
// The summaries and every other field are left as they are.
func (q HealthQuery) Apply(doc *Health) {
	status := q.Status
	if status == "" {
		status = "all"
	}
	page := &HealthPage{Status: status, Q: q.Q, Sort: q.Sort, Offset: q.Offset, Limit: q.Limit}
	needle := strings.ToLower(q.Q)
	doc.Providers.Entries, page.Providers = narrow(doc.Providers.Entries, q, status, needle, func(p *Provider) (string, string, *Entry, []Upstream) {
		return p.ProviderID, p.Name, &p.Entry, p.Upstreams
	})
	doc.Models.Entries, page.Models = narrow(doc.Models.Entries, q, status, needle, func(m *Model) (string, string, *Entry, []Upstream) {
		return m.ModelKey, m.Name, &m.Entry, m.Upstreams
	})
	doc.Page = page
}

// narrow is Apply for one kind; parts gives an entry's id, name, status
// fields and upstreams.
func narrow[T any](list []T, q HealthQuery, status, needle string, parts func(*T) (string, string, *Entry, []Upstream)) ([]T, PageCount) {
	type match struct {
		i    int
		rank int       // problems: 0 unavailable, 1 degraded, 2 the rest
		name string    // name: lower-cased name or id
		last time.Time // last_error
	}
	ms := make([]match, 0, len(list))
	for i := range list {
		id, name, e, ups := parts(&list[i])
		if !statusMatches(status, e.Status) || !textMatches(needle, id, name, ups) {
			continue
		}
		m := match{i: i}
		switch q.Sort {
		case "problems":
			m.rank = rankOf(e.Status)
		case "name":
			if name == "" {
				name = id
			}
			m.name = strings.ToLower(name)
		case "last_error":
			if e.LastError != nil {
				m.last, _ = time.Parse(time.RFC3339Nano, *e.LastError)
			}
		}
		ms = append(ms, m)
	}
	switch q.Sort {
	case "problems":
		slices.SortStableFunc(ms, func(a, b match) int { return a.rank - b.rank })
	case "name":
		slices.SortStableFunc(ms, func(a, b match) int { return strings.Compare(a.name, b.name) })
	case "last_error":
		slices.SortStableFunc(ms, func(a, b match) int { return b.last.Compare(a.last) })
	}
	count := PageCount{Matched: len(ms)}
	ms = ms[min(q.Offset, len(ms)):]
	if q.Limit > 0 && len(ms) > q.Limit {
		ms = ms[:q.Limit]
	}
	out := make([]T, len(ms))
	for j, m := range ms {
		out[j] = list[m.i]
	}
	count.Returned = len(out)
	return out, count
}

func rankOf(status string) int {
	switch status {
	case "unavailable":
		return 0
	case "degraded":
		return 1
	}
	return 2
}

func statusMatches(filter, status string) bool {
	switch filter {
	case "all":
		return true
	case "problems":
		return status == "unavailable" || status == "degraded"
	case "unknown":
		return status != "healthy" && status != "degraded" && status != "unavailable"
	}
	return status == filter
}

// textMatches: needle (lower case) is in the id, the name or an
// upstream's URL, ignoring case; an empty needle matches everything.
func textMatches(needle, id, name string, ups []Upstream) bool {
	if needle == "" || containsFold(id, needle) || containsFold(name, needle) {
		return true
	}
	for i := range ups {
		if containsFold(ups[i].URL, needle) {
			return true
		}
	}
	return false
}

// containsFold reports whether lower (lower case) is in s, ignoring
// case, without allocating for ASCII s.
func containsFold(s, lower string) bool {
	if len(lower) > len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.Contains(strings.ToLower(s), lower)
		}
	}
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	return false
}
