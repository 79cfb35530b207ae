package config

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/healproxy/healproxy/internal/hclx"
)

// alert validates one alert block. The webhook URL is never echoed in a
// diagnostic: it may hold a secret.
func (b *builder) alert(fa *fileAlert) Alert {
	a := Alert{
		Name:        fa.Name,
		MinInterval: DefaultAlertMinInterval,
	}
	if d := b.Duration(fa.MinInterval, fa.MinIntervalRange, "min_interval", false); d != nil {
		a.MinInterval = *d
	}
	// An empty range: the attribute is missing, which gohcl reported.
	if fa.WebhookRange.Filename != "" && b.Decoded(fa.WebhookRange) {
		switch u, problem := parseWebhook(fa.Webhook); {
		case strings.TrimSpace(fa.Webhook) == "":
			b.Errorf(fa.WebhookRange, "Empty webhook",
				"Alert %s: webhook is empty; when it is env(\"…\"), that variable is unset or empty.", hclx.Quote(fa.Name))
		case problem != "":
			b.Errorf(fa.WebhookRange, "Invalid webhook URL", "Alert %s: %s.", hclx.Quote(fa.Name), problem)
		default:
			a.Webhook = u
		}
	}

	items, present, d := hclx.StringList(fa.On, b.Ectx, "on")
	b.Add(d)
	if !present {
		return a
	}
	if len(items) == 0 {
		if !d.HasErrors() {
			b.Errorf(fa.On.Range(), "Empty on",
				"Alert %s: on lists no event; list some of %s, or leave on out to get them all.", hclx.Quote(fa.Name), eventList())
		}
		a.On = nil
		return a
	}
	a.On = nil
	for _, it := range items {
		switch {
		case !slices.Contains(AlertEvents, it.Value):
			b.Errorf(it.Range, "Unknown alert event",
				"on[%d]: %s is not an event; the events are %s.%s", it.Index, hclx.Quote(it.Value), eventList(), hclx.Suggest(it.Value, AlertEvents))
		case slices.Contains(a.On, it.Value):
			b.Errorf(it.Range, "Duplicate alert event",
				"on[%d]: %s is already listed.", it.Index, hclx.Quote(it.Value))
		default:
			a.On = append(a.On, it.Value)
		}
	}
	return a
}

func eventList() string {
	q := make([]string, len(AlertEvents))
	for i, e := range AlertEvents {
		q[i] = strconv.Quote(e)
	}
	return strings.Join(q, ", ")
}

// parseWebhook parses a webhook URL. problem is "" when it is acceptable
// and never contains the URL. User info is accepted (it is sent as basic
// authentication) and, like the path and query, never shown.
func parseWebhook(s string) (u *url.URL, problem string) { return hclx.HTTPURL(s) }
