package hclx

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// HTTPURL parses an absolute http or https URL with a host and no
// fragment. problem is "" when it is acceptable and never contains the URL
// (URLs hold secrets).
func HTTPURL(s string) (u *url.URL, problem string) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		// Some parse errors quote a piece of the URL (an escape, a host
		// character), which could be part of a secret: name the problem only.
		if strings.ContainsAny(err.Error(), "\"'`") {
			return nil, "not a URL"
		}
		return nil, "not a URL: " + err.Error()
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "want an absolute http:// or https:// URL"
	case u.Opaque != "" || u.Hostname() == "":
		return nil, "the URL has no host"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, "the URL must not have a #fragment"
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, "the port must be a number from 1 to 65535"
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, "the port is empty"
	}
	return u, ""
}
