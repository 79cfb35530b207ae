package hclx

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/net/http/httpguts"
)

// HeaderMap evaluates a map of headers to inject; their values are secrets.
func (b *Builder) HeaderMap(expr hcl.Expression) map[string]string {
	items, d := StringMap(expr, b.Ectx, "headers")
	b.Add(d)
	if items == nil {
		return nil
	}
	out := make(map[string]string, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		// Values are secrets: they are never echoed.
		switch {
		case !httpguts.ValidHeaderFieldName(it.Key):
			b.Errorf(it.Range, "Invalid header name",
				"%s is not a valid HTTP header name.", Quote(it.Key))
		case seen[strings.ToLower(it.Key)]:
			b.Errorf(it.Range, "Duplicate header",
				"Header %s is set more than once (names are case-insensitive).", Quote(it.Key))
		case !httpguts.ValidHeaderFieldValue(it.Value):
			b.Errorf(it.Range, "Invalid header value",
				"The value of header %s contains a control character such as a newline.", Quote(it.Key))
		case it.Value == "":
			// Typically env() of an unset variable: send no header at all.
		default:
			out[it.Key] = it.Value
		}
		seen[strings.ToLower(it.Key)] = true
	}
	return out
}
