// Package corscfg builds a provider's cors block: which origins' pages
// may read the provider's answers. An origin is checked and normalised
// here, once, so that CORS.Allows compares it with a request's Origin
// without parsing or allocating.
package corscfg

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/healproxy/healproxy/internal/hclx"
)

// originExample is shown in the messages about an origin.
const originExample = `"https://app.example"`

// Build builds the cross-origin policy of provider id from its cors block.
func Build(b *hclx.Builder, fc *File, id string) *CORS {
	items, present, d := hclx.StringList(fc.AllowOrigins, b.Ectx, "allow_origins")
	b.Add(d)
	c := &CORS{}
	if !present {
		if !d.HasErrors() {
			b.Errorf(fc.DefRange, "Missing allow_origins",
				`Provider %s: cors needs allow_origins = [%s, …], the origins whose pages may read its answers, or ["*"] for any; leave the cors block out to allow none.`,
				hclx.Quote(id), originExample)
		}
		return c
	}
	if len(items) == 0 && !d.HasErrors() {
		b.Errorf(fc.AllowOrigins.Range(), "Empty allow_origins",
			"Provider %s: allow_origins lists no origin; list one or more such as [%s], or leave the cors block out to allow none.",
			hclx.Quote(id), originExample)
		return c
	}

	var wildcard *hclx.StringItem
	others := 0
	firstAt := map[string]int{} // normalised origin → index of its first listing
	for _, it := range items {
		if it.Value != "*" {
			others++
		}
		origin, problem := NormalizeOrigin(it.Value)
		if problem != "" {
			b.Errorf(it.Range, "Invalid origin", "allow_origins[%d]: %s", it.Index, problem)
			continue
		}
		if prev, dup := firstAt[origin]; dup {
			b.Errorf(it.Range, "Duplicate origin",
				"allow_origins[%d]: %s is already listed, at allow_origins[%d] (origins are compared without case and default port).",
				it.Index, hclx.Quote(origin), prev)
			continue
		}
		firstAt[origin] = it.Index
		if origin == "*" {
			wildcard = &it
		}
		c.AllowOrigins = append(c.AllowOrigins, origin)
	}
	if wildcard != nil && others > 0 {
		b.Errorf(wildcard.Range, "Invalid origin",
			`allow_origins[%d]: "*" allows every origin, so it cannot be listed with others; write ["*"] alone, or list the origins without it.`,
			wildcard.Index)
	}
	return c
}

// NormalizeOrigin checks a configured origin and returns it as a browser
// sends it in an Origin header: "scheme://host[:port]" with the scheme and
// host in lower case, without the default port (80 for http, 443 for
// https) and without a trailing "/" (tolerated in the file), or "*". A
// problem ends with a period; like an upstream URL, the value is not
// echoed (user info or a query could hold a secret), but a suggestion
// built from its scheme, host and port may be.
func NormalizeOrigin(s string) (origin, problem string) {
	switch {
	case s == "*":
		return "*", ""
	case s == "":
		return "", `the origin is empty; want one such as ` + originExample + `, or "*" for any.`
	case strings.EqualFold(s, "null"):
		return "", `"null" is not allowed: browsers send it from sandboxed frames and local files, which any site can make, so it would let any site read the answers.`
	}
	lower := strings.ToLower(s)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return "", `want an origin such as ` + originExample + ` (an http:// or https:// scheme and a host), or "*" for any.`
	}
	u, problem := hclx.HTTPURL(s)
	if problem != "" {
		return "", problem + "."
	}

	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port != "" {
		n, _ := strconv.Atoi(port) // checked by parseHTTPURL
		port = strconv.Itoa(n)
		if (u.Scheme == "http" && n == 80) || (u.Scheme == "https" && n == 443) {
			port = ""
		}
	}
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		switch {
		case err != nil || !a.Is6() || a.Zone() != "":
			return "", "the host is not an IPv6 address that a browser sends."
		case a.Is4In6():
			return "", "an IPv4-mapped IPv6 address is not supported; write the IPv4 address."
		}
		host = "[" + a.String() + "]"
	} else if problem := checkOriginHost(host); problem != "" {
		return "", problem
	}
	origin = u.Scheme + "://" + host
	if port != "" {
		origin += ":" + port
	}

	// The rest of the URL: an origin is only scheme, host and port.
	switch {
	case u.User != nil:
		return "", "an origin has no user info." + suggestOrigin(origin)
	case u.RawQuery != "" || u.ForceQuery:
		return "", "an origin has no ?query." + suggestOrigin(origin)
	case u.Path != "" && u.Path != "/" || u.RawPath != "":
		return "", "an origin has no path." + suggestOrigin(origin)
	}
	// What is left of s after the scheme must be the host as written, so
	// a %-escaped host (which url.Parse decodes) is refused.
	rest := strings.TrimSuffix(s[strings.Index(s, "://")+3:], "/")
	if rest != u.Host {
		return "", "the host must be written without %-escapes." + suggestOrigin(origin)
	}
	return origin, ""
}

func suggestOrigin(origin string) string {
	return " Did you mean " + hclx.Quote(origin) + "?"
}

// checkOriginHost returns "" for a host name or IPv4 address (in lower
// case) as browsers write it in an Origin, else the problem.
func checkOriginHost(host string) string {
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c == '*':
			return `wildcard hosts are not supported; list each origin, or write "*" alone for any.`
		case c >= 0x80:
			return "write the host in its ASCII (punycode) form, as browsers send it, such as \"xn--bcher-kva.example\"."
		default:
			return "the host is not a valid host name."
		}
	}
	// A host whose last label is a number is an IPv4 address to a
	// browser, which sends it in dotted decimal.
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if numericLabel(labels[len(labels)-1]) {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is4() || a.String() != host {
			return "the host ends in a number, so it must be an IPv4 address written as browsers send it, such as \"127.0.0.1\"."
		}
	}
	return ""
}

// numericLabel reports a label that makes a host an IPv4 address in a
// URL: decimal digits, or "0x" and hexadecimal digits.
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if strings.HasPrefix(l, "0x") {
		return strings.Trim(l[2:], "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// CORS is a provider's cross-origin policy (block cors): the upstream's
// Access-Control-* response headers pass through only for a request whose
// Origin is listed.
type CORS struct {
	// AllowOrigins are origins ("scheme://host[:port]", compared
	// case-insensitively) or "*" for any; at least one. Load normalises
	// them to the form browsers send in Origin: scheme and host in lower
	// case, no default port (80 for http, 443 for https), no trailing "/".
	// "*" is never listed with other origins.
	AllowOrigins []string
}

// Allows says whether a request with this Origin header value may read answers.
// It is false for a nil CORS, for no Origin ("") and for "null" (sent by
// sandboxed and file: pages, which any site can make); true for any other
// origin when "*" is listed; else true only for a listed origin, compared
// case-insensitively and otherwise exactly (an Origin with a path, a
// trailing "/" or a default port is not one a browser sends, and does not
// match). It does not allocate.
func (c *CORS) Allows(origin string) bool {
	if c == nil || origin == "" || strings.EqualFold(origin, "null") {
		return false
	}
	for _, o := range c.AllowOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// File is the cors block as decoded (gohcl).
type File struct {
	AllowOrigins hcl.Expression `hcl:"allow_origins,optional"` // required; checked by us to report it once

	DefRange hcl.Range `hcl:",def_range"`
}
