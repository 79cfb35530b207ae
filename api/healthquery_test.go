package api

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseHealthQuery(t *testing.T) {
	if _, ok, err := ParseHealthQuery(url.Values{"scope": {"local"}}); ok || err != nil {
		t.Fatalf("no query parameters: ok=%v err=%v; want the whole document", ok, err)
	}
	q, ok, err := ParseHealthQuery(url.Values{"status": {"problems"}, "q": {"EU"}, "sort": {"last_error"}, "offset": {"50"}, "limit": {"25"}})
	if !ok || err != nil {
		t.Fatalf("good query: ok=%v err=%v", ok, err)
	}
	if want := (HealthQuery{Status: "problems", Q: "EU", Sort: "last_error", Offset: 50, Limit: 25}); q != want {
		t.Errorf("parsed %+v; want %+v", q, want)
	}
	if _, ok, err := ParseHealthQuery(url.Values{"q": {""}}); !ok || err != nil {
		t.Errorf("an empty q is a query (every entry): ok=%v err=%v", ok, err)
	}
	for _, c := range []struct {
		v    url.Values
		want string
	}{
		{url.Values{"status": {"sick"}}, `status "sick" is not one of all, problems`},
		{url.Values{"sort": {"age"}}, `sort "age" is not one of problems, name, last_error`},
		{url.Values{"offset": {"-1"}}, `offset "-1" is not a whole number from 0`},
		{url.Values{"offset": {"1e3"}}, `offset "1e3" is not a whole number`},
		{url.Values{"limit": {"0"}}, `limit "0" is not a whole number from 1`},
		{url.Values{"limit": {"99999999999999999999"}}, `limit "99999999999999999999"`},
		{url.Values{"q": {strings.Repeat("x", 201)}}, "q is 201 bytes long; at most 200"},
		{url.Values{"status": {"healthy", "degraded"}}, "status is given 2 times"},
	} {
		_, ok, err := ParseHealthQuery(c.v)
		var e *Error
		if !ok || !errors.As(err, &e) || e.Status != 400 || !strings.Contains(e.Msg, c.want) {
			t.Errorf("%v: ok=%v err=%v; want a 400 saying %q", c.v, ok, err, c.want)
		}
	}
}

func stamp(s string) *string { return &s }

// fleetDoc: p0..p5 in configuration order, of these statuses, names,
// upstreams and last errors.
func fleetDoc() Health {
	mk := func(id, name, status, url string, lastErr *string) Provider {
		return Provider{ProviderID: id, Name: name, Entry: Entry{Status: status, LastError: lastErr},
			Upstreams: []Upstream{{URL: url}}}
	}
	doc := Health{Status: "success", Replica: "r1"}
	doc.Providers.Entries = []Provider{
		mk("p0", "Zeta", "healthy", "http://eu-west.example/v1", stamp("2026-01-01T10:00:00Z")),
		mk("p1", "", "unavailable", "http://us-east.example/v1", stamp("2026-01-01T10:00:00.5Z")),
		mk("p2", "alpha", "degraded", "http://EU-west.example/v2", stamp("2026-01-01T09:00:00Z")),
		mk("p3", "Beta", "unknown", "http://us-east.example/v3", nil),
		mk("p4", "beta", "unavailable", "http://ap-south.example/v1", stamp("2026-01-01T11:00:00Z")),
		mk("p5", "gamma", "healthy", "http://eu-west.example/v5", nil),
	}
	doc.Providers.Summary = Summary{Total: 6, Healthy: 2, Degraded: 1, Unavailable: 2, Unknown: 1}
	doc.Models.Entries = []Model{
		{ModelKey: "m0", Name: "Sentiment", Entry: Entry{Status: "healthy"}},
		{ModelKey: "m1", Entry: Entry{Status: "unavailable"}, Upstreams: []Upstream{{URL: "http://eu-west.example/llm"}}},
	}
	doc.Models.Summary = Summary{Total: 2, Healthy: 1, Unavailable: 1}
	return doc
}

func ids(doc Health) (ps, ms []string) {
	for _, p := range doc.Providers.Entries {
		ps = append(ps, p.ProviderID)
	}
	for _, m := range doc.Models.Entries {
		ms = append(ms, m.ModelKey)
	}
	return ps, ms
}

func TestHealthQueryApply(t *testing.T) {
	for _, c := range []struct {
		q                HealthQuery
		providers        []string
		models           []string
		matchP, matchM   int
		wantStatusInPage string
	}{
		{HealthQuery{}, []string{"p0", "p1", "p2", "p3", "p4", "p5"}, []string{"m0", "m1"}, 6, 2, "all"},
		{HealthQuery{Status: "problems"}, []string{"p1", "p2", "p4"}, []string{"m1"}, 3, 1, "problems"},
		{HealthQuery{Status: "unavailable"}, []string{"p1", "p4"}, []string{"m1"}, 2, 1, "unavailable"},
		{HealthQuery{Status: "unknown"}, []string{"p3"}, nil, 1, 0, "unknown"},
		{HealthQuery{Status: "healthy", Q: "EU-WEST"}, []string{"p0", "p5"}, []string{"m0"}[:0], 2, 0, "healthy"},
		// q: id, name, upstream URL, any case
		{HealthQuery{Q: "eu-west"}, []string{"p0", "p2", "p5"}, []string{"m1"}, 3, 1, "all"},
		{HealthQuery{Q: "BETA"}, []string{"p3", "p4"}, nil, 2, 0, "all"},
		{HealthQuery{Q: "m0"}, nil, []string{"m0"}, 0, 1, "all"},
		{HealthQuery{Q: "sentiment"}, nil, []string{"m0"}, 0, 1, "all"},
		// problems first; ties in configuration order
		{HealthQuery{Sort: "problems"}, []string{"p1", "p4", "p2", "p0", "p3", "p5"}, []string{"m1", "m0"}, 6, 2, "all"},
		// name (id when unnamed), any case; ties in configuration order
		{HealthQuery{Sort: "name"}, []string{"p2", "p3", "p4", "p5", "p1", "p0"}, []string{"m1", "m0"}, 6, 2, "all"},
		// last error, newest first, never failed last
		{HealthQuery{Sort: "last_error"}, []string{"p4", "p1", "p0", "p2", "p3", "p5"}, []string{"m0", "m1"}, 6, 2, "all"},
		// pages
		{HealthQuery{Sort: "problems", Offset: 2, Limit: 2}, []string{"p2", "p0"}, nil, 6, 2, "all"},
		{HealthQuery{Offset: 5, Limit: 10}, []string{"p5"}, nil, 6, 2, "all"},
		{HealthQuery{Offset: 100}, nil, nil, 6, 2, "all"},
		{HealthQuery{Limit: 1}, []string{"p0"}, []string{"m0"}, 6, 2, "all"},
	} {
		doc := fleetDoc()
		c.q.Apply(&doc)
		ps, ms := ids(doc)
		if !slices.Equal(ps, c.providers) || !slices.Equal(ms, c.models) {
			t.Errorf("%+v: providers %v, models %v; want %v, %v", c.q, ps, ms, c.providers, c.models)
		}
		pg := doc.Page
		if pg == nil {
			t.Fatalf("%+v: no page field", c.q)
		}
		if pg.Providers != (PageCount{c.matchP, len(c.providers)}) || pg.Models != (PageCount{c.matchM, len(c.models)}) {
			t.Errorf("%+v: counts %+v %+v; want matched %d and %d", c.q, pg.Providers, pg.Models, c.matchP, c.matchM)
		}
		if pg.Status != c.wantStatusInPage || pg.Offset != c.q.Offset || pg.Limit != c.q.Limit || pg.Q != c.q.Q || pg.Sort != c.q.Sort {
			t.Errorf("%+v: page echoes %+v", c.q, pg)
		}
		// the summaries count the whole fleet, whatever the page
		full := fleetDoc()
		if doc.Providers.Summary != full.Providers.Summary || doc.Models.Summary != full.Models.Summary || doc.Replica != "r1" {
			t.Errorf("%+v: summaries or other fields changed: %+v %+v", c.q, doc.Providers.Summary, doc.Models.Summary)
		}
	}
}

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		s, lower string
		want     bool
	}{
		{"Exchange 4", "exchange 4", true}, {"HTTP://EU-WEST/x", "eu-west", true}, {"abc", "abcd", false},
		{"abc", "", true}, {"abc", "bd", false}, {"Zürich-EU", "zürich", true}, {"ÜBER", "über", true}, {"über", "x", false},
	} {
		if got := containsFold(c.s, c.lower); got != c.want {
			t.Errorf("containsFold(%q, %q) = %v; want %v", c.s, c.lower, got, c.want)
		}
	}
}

// BenchmarkHealthQueryApply: a filtered page of 10,000 providers.
func BenchmarkHealthQueryApply(b *testing.B) {
	base := fleetDoc()
	var list []Provider
	for i := range 10000 {
		p := base.Providers.Entries[i%6]
		list = append(list, p)
	}
	q := HealthQuery{Status: "problems", Q: "east", Sort: "problems", Limit: 50}
	b.ReportAllocs()
	for b.Loop() {
		doc := Health{}
		doc.Providers.Entries = list
		q.Apply(&doc)
	}
}
