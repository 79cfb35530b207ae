// Package quota reads the rate-limit quota an upstream announces in the
// headers of its answers, and decides from it when to prefer the
// upstream's peers and when to pause it, before it answers 429 (README,
// "Rate-limit steering"; docs/behaviour.md, "Balancing and quota
// steering").
//
// Headers read (Parse), the tightest quota of those present winning:
//
//   - X-RateLimit-Remaining, with X-RateLimit-Limit and X-RateLimit-Reset
//     (seconds until the reset, or a Unix time in seconds or
//     milliseconds), as GitHub, Twitter and CoinGecko send them;
//   - the IETF draft's RateLimit and RateLimit-Policy in their
//     structured-field form (RateLimit: "default";r=50;t=30 and
//     RateLimit-Policy: "default";q=100;w=60), its dictionary form
//     (RateLimit: limit=100, remaining=50, reset=30) and its older
//     separate headers (RateLimit-Limit, RateLimit-Remaining,
//     RateLimit-Reset, the reset in seconds);
//   - Binance's X-MBX-USED-WEIGHT-1M, the weight used in the current
//     minute, against a configured limit; it resets at the next full
//     minute.
//
// Parsing never panics and ignores what it cannot read.
package quota

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reading is the quota one answer announced.
type Reading struct {
	Remaining int64     // requests (or weight) left in the window
	Limit     int64     // the window's quota; 0: not announced
	Reset     time.Time // when the window resets; zero: not announced
	Header    string    // the header it was read from, e.g. "X-RateLimit-Remaining"
}

// Header names, canonical, read directly from the map (no
// canonicalisation per answer).
const (
	hXRemaining = "X-Ratelimit-Remaining"
	hXLimit     = "X-Ratelimit-Limit"
	hXReset     = "X-Ratelimit-Reset"
	hRateLimit  = "Ratelimit"
	hPolicy     = "Ratelimit-Policy"
	hRemaining  = "Ratelimit-Remaining"
	hLimit      = "Ratelimit-Limit"
	hReset      = "Ratelimit-Reset"
	hMBXWeight  = "X-Mbx-Used-Weight-1m"
)

// maxResetSeconds bounds a reset given in seconds (about 68 years):
// larger values are nonsense, and would overflow a time.Duration.
const maxResetSeconds = 1 << 31

// Parse reads the quota announced in h at now. weightLimit is the
// per-minute limit X-MBX-USED-WEIGHT-1M counts against; 0 leaves that
// header unread. ok is false when no quota header could be read. When
// several are present, the tightest wins: none left first, then the
// smallest share of its limit left.
func Parse(h http.Header, now time.Time, weightLimit int) (r Reading, ok bool) {
	consider := func(c Reading, cok bool) {
		if cok && (!ok || tighter(c, r)) {
			r, ok = c, true
		}
	}
	if len(h) == 0 {
		return r, false
	}
	consider(parseX(h, now))
	consider(parseIETF(h, now))
	consider(parseIETFSeparate(h, now))
	if weightLimit > 0 {
		consider(parseMBX(h, now, int64(weightLimit)))
	}
	return r, ok
}

// tighter: a leaves less than b.
func tighter(a, b Reading) bool {
	if (a.Remaining == 0) != (b.Remaining == 0) {
		return a.Remaining == 0
	}
	if a.Limit > 0 && b.Limit > 0 {
		return float64(a.Remaining)/float64(a.Limit) < float64(b.Remaining)/float64(b.Limit)
	}
	return a.Remaining < b.Remaining
}

// parseX reads X-RateLimit-Remaining, -Limit and -Reset.
func parseX(h http.Header, now time.Time) (Reading, bool) {
	rem, ok := count(h[hXRemaining])
	if !ok {
		return Reading{}, false
	}
	r := Reading{Remaining: rem, Header: "X-RateLimit-Remaining"}
	r.Limit, _ = count(h[hXLimit])
	if vs := h[hXReset]; len(vs) > 0 {
		r.Reset = resetTime(vs[0], now, true)
	}
	return r, true
}

// parseIETFSeparate reads the draft's older RateLimit-Remaining,
// -Limit and -Reset (seconds until the reset).
func parseIETFSeparate(h http.Header, now time.Time) (Reading, bool) {
	rem, ok := count(h[hRemaining])
	if !ok {
		return Reading{}, false
	}
	r := Reading{Remaining: rem, Header: "RateLimit-Remaining"}
	r.Limit, _ = count(h[hLimit])
	if vs := h[hReset]; len(vs) > 0 {
		r.Reset = resetTime(vs[0], now, false)
	}
	return r, true
}

// parseMBX reads Binance's used weight of the current minute.
func parseMBX(h http.Header, now time.Time, limit int64) (Reading, bool) {
	used, ok := count(h[hMBXWeight])
	if !ok {
		return Reading{}, false
	}
	return Reading{Remaining: max(limit-used, 0), Limit: limit,
		Reset: now.Truncate(time.Minute).Add(time.Minute), Header: "X-MBX-USED-WEIGHT-1M"}, true
}

// parseIETF reads the RateLimit header: its structured-field list of
// policies ("name";r=R;t=T, the limit q from RateLimit-Policy's item of
// the same name) or its dictionary form (limit=L, remaining=R, reset=T).
// The tightest policy wins.
func parseIETF(h http.Header, now time.Time) (Reading, bool) {
	vs := h[hRateLimit]
	if len(vs) == 0 {
		return Reading{}, false
	}
	var best Reading
	found := false
	dict := Reading{Remaining: -1, Header: "RateLimit"}
	for _, v := range vs {
		for member := range splitQuoted(v, ',') {
			name, params := nameOf(member)
			if name == "" && params == "" {
				continue
			}
			if k, val, isDict := strings.Cut(name, "="); isDict && !strings.HasPrefix(name, `"`) {
				// dictionary form: limit=100, remaining=50, reset=30
				n, ok := number(val)
				if !ok {
					continue
				}
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "remaining":
					dict.Remaining = n
				case "limit":
					dict.Limit = n
				case "reset":
					dict.Reset = now.Add(time.Duration(min(n, maxResetSeconds)) * time.Second)
				}
				continue
			}
			r := Reading{Remaining: -1, Header: "RateLimit"}
			for p := range splitQuoted(params, ';') {
				k, val, _ := strings.Cut(p, "=")
				n, ok := number(val)
				if !ok {
					continue
				}
				switch strings.TrimSpace(k) {
				case "r":
					r.Remaining = n
				case "t":
					r.Reset = now.Add(time.Duration(min(n, maxResetSeconds)) * time.Second)
				}
			}
			if r.Remaining < 0 {
				continue
			}
			r.Limit = policyLimit(h[hPolicy], name)
			if !found || tighter(r, best) {
				best, found = r, true
			}
		}
	}
	if dict.Remaining >= 0 && (!found || tighter(dict, best)) {
		best, found = dict, true
	}
	return best, found
}

// policyLimit is the quota q of the RateLimit-Policy item named name; 0
// when there is none.
func policyLimit(vs []string, name string) int64 {
	for _, v := range vs {
		for member := range splitQuoted(v, ',') {
			n, params := nameOf(member)
			if n != name {
				continue
			}
			for p := range splitQuoted(params, ';') {
				if k, val, _ := strings.Cut(p, "="); strings.TrimSpace(k) == "q" {
					if q, ok := number(val); ok {
						return q
					}
				}
			}
		}
	}
	return 0
}

// nameOf splits a list member into its item (a quoted string unquoted,
// or a token) and the parameters after it (from the first ';' outside
// quotes, without it).
func nameOf(member string) (name, params string) {
	member = strings.TrimSpace(member)
	for i := 0; i < len(member); i++ {
		switch member[i] {
		case '"':
			j := closingQuote(member, i)
			if j < 0 {
				return "", ""
			}
			i = j
		case ';':
			return unquote(strings.TrimSpace(member[:i])), member[i+1:]
		}
	}
	return unquote(member), ""
}

// splitQuoted yields the parts of s between the separators sep that are
// outside double quotes.
func splitQuoted(s string, sep byte) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		start := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '"':
				j := closingQuote(s, i)
				if j < 0 {
					yield(s[start:])
					return
				}
				i = j
			case sep:
				if !yield(s[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(s[start:])
	}
}

// closingQuote is the index of the quote that closes the one at s[open],
// skipping backslash escapes; -1 when it is not closed.
func closingQuote(s string, open int) int {
	for i := open + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// unquote is a structured-field string's content, or s itself when it
// is not quoted.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(strings.ReplaceAll(s[1:len(s)-1], `\"`, `"`), `\\`, `\`)
	}
	return s
}

// count reads a header's non-negative count: the smallest of a
// comma-separated list (some APIs send one per window), each maybe with
// parameters ("100;w=60"). ok is false when none can be read.
func count(vs []string) (n int64, ok bool) {
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			part, _, _ = strings.Cut(part, ";")
			if c, cok := number(part); cok && (!ok || c < n) {
				n, ok = c, true
			}
		}
	}
	return n, ok
}

// number is a non-negative integer, blanks around it allowed.
func number(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// ResetAt reads a rate limit's reset: seconds until it, or (with unix) a
// Unix time in seconds (over 10⁹) or milliseconds (over 10¹²), told apart
// by size, as X-RateLimit-Reset is sent. A reset already past is now; ok
// is false when v is unreadable. retry.RateLimitPause reads a 429's
// X-RateLimit-Reset with it too.
func ResetAt(v string, now time.Time, unix bool) (t time.Time, ok bool) {
	t = resetTime(v, now, unix)
	return t, !t.IsZero()
}

// resetTime is ResetAt's time, zero when unreadable.
func resetTime(v string, now time.Time, unix bool) time.Time {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return time.Time{}
	}
	var t time.Time
	switch {
	case unix && f > 1e15: // nonsense
		return time.Time{}
	case unix && f > 1e12: // a Unix time in milliseconds
		t = time.UnixMilli(int64(f))
	case unix && f > 1e9: // a Unix time in seconds
		t = time.Unix(0, int64(f*1e9))
	case f > maxResetSeconds:
		return time.Time{}
	default:
		t = now.Add(time.Duration(f * float64(time.Second)))
	}
	if t.Before(now) {
		return now
	}
	return t
}
