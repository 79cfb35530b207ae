// Package redact removes known secrets from text: an error message that
// quotes what an upstream or a webhook server sent back (an echoed request
// line, a URL) must not carry a configured API key into logs, diagnostics,
// alerts or the state file.
//
// A Scrubber is built once from the secrets a component holds (header
// values, query strings and values, URL user info and paths); Scrub then
// replaces every occurrence of each, in the forms an error text may quote
// it (as is, percent-decoded or -encoded, Go-quoted), with "[redacted]".
package redact

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces a secret in scrubbed text.
const Mask = "[redacted]"

// MinLen is the shortest secret scrubbed: shorter values ("1", "en") are
// not secrets a key could be guessed from, and replacing them would
// garble every message.
const MinLen = 4

// Scrubber replaces known secrets in text. The zero value and nil scrub
// nothing. It is safe for concurrent use.
type Scrubber struct {
	secrets []string // longest first, so that a secret inside another is replaced with it
}

// New returns a Scrubber for secrets; values shorter than MinLen and
// duplicates are left out.
func New(secrets ...string) *Scrubber {
	s := &Scrubber{}
	for _, v := range secrets {
		s.add(v)
	}
	s.sort()
	return s
}

// ForURL adds the secrets a URL may carry: its user info, its raw query,
// every query value, and with path its path.
func ForURL(u *url.URL, path bool) []string {
	if u == nil {
		return nil
	}
	var out []string
	if u.User != nil {
		out = append(out, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
		for _, vs := range u.Query() {
			out = append(out, vs...)
		}
	}
	if path && u.Path != "" && u.Path != "/" {
		out = append(out, u.EscapedPath(), u.Path)
	}
	return out
}

// add adds v and the forms an error message may quote it in.
func (s *Scrubber) add(v string) {
	if len(v) < MinLen {
		return
	}
	forms := []string{v, url.QueryEscape(v), url.PathEscape(v)}
	if q := strconv.Quote(v); len(q) > 2 {
		forms = append(forms, q[1:len(q)-1])
	}
	if u, err := url.QueryUnescape(v); err == nil {
		forms = append(forms, u)
	}
	for _, f := range forms {
		if len(f) >= MinLen && !slices.Contains(s.secrets, f) {
			s.secrets = append(s.secrets, f)
		}
	}
}

func (s *Scrubber) sort() {
	slices.SortStableFunc(s.secrets, func(a, b string) int { return len(b) - len(a) })
}

// Scrub returns msg with every known secret replaced by Mask.
func (s *Scrubber) Scrub(msg string) string {
	if s == nil {
		return msg
	}
	for _, v := range s.secrets {
		if strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, Mask)
		}
	}
	return msg
}

// Empty says whether s scrubs nothing.
func (s *Scrubber) Empty() bool { return s == nil || len(s.secrets) == 0 }

// URL is u as it may be shown: without query string, user info and
// fragment, which may hold secrets.
func URL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	return c.String()
}

// Input is a URL given by a client, as it may be shown: without its user
// info and query string; a value that does not parse is cut.
func Input(s string) string {
	if u, err := url.Parse(s); err == nil {
		return URL(u)
	}
	s, _, _ = strings.Cut(s, "?")
	if _, after, ok := strings.Cut(s, "@"); ok {
		return after
	}
	return s
}
