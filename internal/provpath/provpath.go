// Package provpath holds the path rules of a provider (docs/behaviour.md,
// "Provider paths"): which paths after /providers/{id} may be sent on to
// an upstream (Rest), and how a URL an upstream sends back (Location,
// Content-Location, Link) becomes one the client can follow through the
// proxy, free of the upstream's own query parameters (ClientURL,
// ClientLinks).
package provpath

import (
	"iter"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Upstreams yields a provider's upstreams (the last resort included) as
// their target URL and their escaped base path without a trailing slash.
type Upstreams = iter.Seq2[*url.URL, string]

// ClientLinks rewrites every URI reference of a Link header value
// ("<uri>; rel=next, <uri>; rel=prev") with ClientURL.
func ClientLinks(v string, req *http.Request, id string, ups Upstreams) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		b.WriteString(v[:i+1])
		b.WriteString(ClientURL(v[i+1:i+j], req, id, ups))
		b.WriteByte('>')
		v = v[i+j+1:]
	}
	b.WriteString(v)
	return b.String()
}

// ClientURL rewrites one URL an upstream of provider id sent, relative to
// the request it answers: on an upstream's host (any scheme or port) the
// upstream's own query parameters are dropped, and a URL into an
// upstream's base path becomes the provider's path. Other URLs are kept
// (the caller scrubs secrets from every one).
func ClientURL(v string, req *http.Request, id string, ups Upstreams) string {
	loc, err := url.Parse(v)
	if err != nil {
		return v
	}
	if req != nil && req.URL != nil {
		loc = req.URL.ResolveReference(loc)
	}
	host := loc.Hostname()
	for target, base := range ups {
		if !strings.EqualFold(host, target.Hostname()) {
			continue
		}
		q := loc.Query()
		secret := false
		for k := range target.Query() {
			secret = secret || q.Has(k)
			q.Del(k)
		}
		rest, ok := strings.CutPrefix(loc.EscapedPath(), base)
		if !strings.EqualFold(loc.Host, target.Host) || loc.Scheme != target.Scheme ||
			!ok || (rest != "" && rest[0] != '/') {
			if !secret {
				continue // the upstream's host, but not this upstream: another may map it
			}
			loc.RawQuery = q.Encode()
			return loc.String()
		}
		out := &url.URL{Path: "/providers/" + id}
		out.RawPath = out.Path + rest
		out.Path, _ = url.PathUnescape(out.RawPath)
		if out.RawPath == out.Path {
			out.RawPath = ""
		}
		out.RawQuery = q.Encode()
		out.Fragment = loc.Fragment
		return out.String()
	}
	return v
}

// Rest is the escaped path after /providers/{id}, starting with "/",
// and false when it could leave the upstream's base path, or be read so
// by some server behind it (docs/behaviour.md, "Provider paths"):
//   - a segment of dots only ("." and ".." and "..."), also percent-encoded,
//     with a path parameter (";x", which Tomcat and Spring cut off) or
//     trailing blanks;
//   - an encoded slash or backslash, a backslash, or a NUL;
//   - a double-encoded dot, slash, backslash or NUL ("%252e"), which a
//     server that decodes twice reads as one;
//   - an encoded control character, or bytes that are not UTF-8 once
//     decoded (overlong forms such as "%c0%ae" among them).
func Rest(r *http.Request, id string) (string, bool) {
	esc := r.URL.EscapedPath()
	prefix := "/providers/" + id
	if !strings.HasPrefix(esc, prefix) {
		return "", false
	}
	rest := esc[len(prefix):]
	if rest == "" {
		return "/", true
	}
	if rest[0] != '/' {
		return "", false
	}
	if strings.ContainsAny(rest, "\\\x00") {
		return "", false
	}
	if !strings.Contains(rest, "%") && !strings.Contains(rest, ".") {
		return rest, true // the common case: nothing to decode, no dots
	}
	lower := strings.ToLower(rest)
	for _, bad := range [...]string{"%2f", "%5c", "%00", "%252e", "%252f", "%255c", "%2500"} {
		if strings.Contains(lower, bad) {
			return "", false
		}
	}
	for seg := range strings.SplitSeq(rest[1:], "/") {
		if !strings.Contains(seg, "%") && !strings.Contains(seg, ".") {
			continue
		}
		s, err := url.PathUnescape(seg)
		if err != nil || !utf8.ValidString(s) || hasControl(s) {
			return "", false
		}
		s, _, _ = strings.Cut(s, ";")
		if s = strings.TrimRight(s, " \t"); s != "" && strings.Trim(s, ".") == "" {
			return "", false
		}
	}
	return rest, true
}

// hasControl: s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
