package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAlerts(t *testing.T) {
	cfg := mustParse(t, "/etc/hp/proxy.hcl", `
alert "ops" {
  webhook      = env("SLACK_WEBHOOK")
  on           = ["unavailable", "recovered", "reinit_failed"]
  min_interval = "5m"
}
alert "all-defaults" {
  webhook = "http://127.0.0.1:9000/hook"
}
alert "noisy" {
  webhook      = "https://user:pw@alerts.example:8443/in?token=abc"
  on           = ["degraded"]
  min_interval = "0s"
}
`, map[string]string{"SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/SECRET"})
	want := []Alert{
		{
			Name:        "ops",
			Webhook:     mustURL(t, "https://hooks.slack.com/services/T0/B0/SECRET"),
			On:          []string{"unavailable", "recovered", "reinit_failed"},
			MinInterval: 5 * time.Minute,
		},
		{
			Name:        "all-defaults",
			Webhook:     mustURL(t, "http://127.0.0.1:9000/hook"),
			On:          AlertEvents,
			MinInterval: DefaultAlertMinInterval,
		},
		{
			Name:        "noisy",
			Webhook:     mustURL(t, "https://user:pw@alerts.example:8443/in?token=abc"),
			On:          []string{"degraded"},
			MinInterval: 0,
		},
	}
	if !reflect.DeepEqual(cfg.Alerts, want) {
		t.Errorf("got\n%#v\nwant\n%#v", cfg.Alerts, want)
	}
	// The default On is a copy: changing it cannot change AlertEvents.
	cfg.Alerts[1].On[0] = "changed"
	if AlertEvents[0] != "unavailable" {
		t.Errorf("got AlertEvents[0] = %q after changing an alert's On; want it unchanged", AlertEvents[0])
	}

	// No alert block: no alerts.
	if cfg := mustParse(t, "x.hcl", "", nil); cfg.Alerts != nil {
		t.Errorf("got Alerts %v for an empty file; want nil", cfg.Alerts)
	}
}

func TestAlertRedacted(t *testing.T) {
	cfg := mustParse(t, "x.hcl", `alert "ops" { webhook = "https://u:SECRET1@hooks.example:8443/services/SECRET2?k=SECRET3" }`, nil)
	a := cfg.Alerts[0]
	if got, want := a.RedactedWebhook(), "https://hooks.example:8443"; got != want {
		t.Errorf("got RedactedWebhook %q; want %q", got, want)
	}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "alert", a)
	//lint:ignore S1025 the %s verb is one of the ways of printing tested here
	for _, shown := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%s", a), logs.String()} {
		if strings.Contains(shown, "SECRET") {
			t.Errorf("got %q; want the webhook redacted", shown)
		}
		if !strings.Contains(shown, "https://hooks.example:8443") {
			t.Errorf("got %q; want the redacted webhook shown", shown)
		}
	}
	if got := (Alert{}).RedactedWebhook(); got != "" {
		t.Errorf("got %q for no webhook; want empty", got)
	}
}

func TestAlertRejections(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string // prefixes of lines of FormatDiagnostics, in order
	}{
		{
			name: "missing webhook",
			src:  "alert \"ops\" {\n  on = [\"unavailable\"]\n}\n",
			want: []string{`x.hcl:1:13: Missing required argument; The argument "webhook" is required`},
		},
		{
			name: "webhook from an unset variable",
			src:  "alert \"ops\" {\n  webhook = env(\"SLACK_WEBHOOK\")\n}\n",
			want: []string{`x.hcl:2:13: Empty webhook; Alert "ops": webhook is empty;`},
		},
		{
			name: "webhook from an empty variable",
			src:  "alert \"ops\" {\n  webhook = env(\"SLACK_WEBHOOK\")\n}\n",
			env:  map[string]string{"SLACK_WEBHOOK": " "},
			want: []string{`x.hcl:2:13: Empty webhook; Alert "ops": webhook is empty;`},
		},
		{
			name: "bad webhook URLs",
			src: `alert "a" { webhook = "hooks.example/x" }
alert "b" { webhook = "ftp://hooks.example/x" }
alert "c" { webhook = "https:///x" }
alert "d" { webhook = "https://hooks.example/x#y" }
alert "e" { webhook = "https://hooks.example:0/x" }
alert "f" { webhook = "https://hooks.example/%zz" }
alert "g" { webhook = "https://ho oks.example/x" }
alert "h" { webhook = 42 }
`,
			want: []string{
				`x.hcl:1:23: Invalid webhook URL; Alert "a": want an absolute http:// or https:// URL.`,
				`x.hcl:2:23: Invalid webhook URL; Alert "b": want an absolute`,
				`x.hcl:3:23: Invalid webhook URL; Alert "c": the URL has no host.`,
				`x.hcl:4:23: Invalid webhook URL; Alert "d": the URL must not have a #fragment.`,
				`x.hcl:5:23: Invalid webhook URL; Alert "e": the port must be`,
				`x.hcl:6:23: Invalid webhook URL; Alert "f": not a URL.`,
				`x.hcl:7:23: Invalid webhook URL; Alert "g": not a URL.`,
				`x.hcl:8:23: Invalid webhook URL; Alert "h": want an absolute`,
			},
		},
		{
			name: "webhook not a string",
			src:  "alert \"ops\" {\n  webhook = [\"https://h\"]\n}\n",
			want: []string{`x.hcl:2:13: Unsuitable value type;`},
		},
		{
			name: "unknown and duplicate events",
			src: `alert "ops" {
  webhook = "https://h/x"
  on = [
    "unavailable",
    "recoverd",
    "unavailable",
    "down",
    null,
  ]
}
`,
			want: []string{
				`x.hcl:5:5: Unknown alert event; on[1]: "recoverd" is not an event; the events are "unavailable", "degraded", "recovered", "reinit_failed". Did you mean "recovered"?`,
				`x.hcl:6:5: Duplicate alert event; on[2]: "unavailable" is already listed.`,
				`x.hcl:7:5: Unknown alert event; on[3]: "down" is not an event;`,
				`x.hcl:8:5: Invalid on; Element 4: want a string, got null.`,
			},
		},
		{
			name: "empty on",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  on = []\n}\n",
			want: []string{`x.hcl:3:8: Empty on; Alert "ops": on lists no event;`},
		},
		{
			name: "on not a list",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  on = \"unavailable\"\n}\n",
			want: []string{`x.hcl:3:8: Invalid on; Want a list of strings, got string.`},
		},
		{
			name: "bad min_interval",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  min_interval = \"often\"\n}\n",
			want: []string{`x.hcl:3:18: Invalid min_interval; "often" is not a duration >= 0`},
		},
		{
			name: "negative min_interval",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  min_interval = \"-1m\"\n}\n",
			want: []string{`x.hcl:3:18: Invalid min_interval; "-1m" is not a duration >= 0`},
		},
		{
			name: "number as min_interval",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  min_interval = 60\n}\n",
			want: []string{`x.hcl:3:18: Invalid min_interval; "60" is not a duration`},
		},
		{
			name: "duplicate alert",
			src:  "alert \"ops\" { webhook = \"https://h/x\" }\n\nalert \"ops\" { webhook = \"https://h/y\" }\n",
			want: []string{`x.hcl:3:7: Duplicate alert name "ops"; previous definition at x.hcl:1`},
		},
		{
			name: "bad alert name",
			src:  "alert \"ops team\" { webhook = \"https://h/x\" }\n",
			want: []string{`x.hcl:1:7: Invalid alert name; "ops team" is not a valid alert name`},
		},
		{
			name: "missing label",
			src:  "alert { webhook = \"https://h/x\" }\n",
			want: []string{`x.hcl:1:7: Missing name for alert;`},
		},
		{
			name: "unknown attribute",
			src:  "alert \"ops\" {\n  webhook = \"https://h/x\"\n  channel = \"#ops\"\n}\n",
			want: []string{`x.hcl:3:3: Unsupported argument;`},
		},
		{
			name: "env error in webhook is reported once",
			src:  "alert \"ops\" {\n  webhook = env()\n}\n",
			want: []string{`x.hcl:2:17: Not enough function arguments;`},
		},
		{
			name: "every problem of one block",
			src:  "alert \"ops\" {\n  webhook      = env(\"NOPE\")\n  on           = [\"sometimes\"]\n  min_interval = \"soon\"\n}\n",
			want: []string{
				`x.hcl:2:18: Empty webhook;`,
				`x.hcl:3:19: Unknown alert event;`,
				`x.hcl:4:18: Invalid min_interval;`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustFail(t, "x.hcl", tt.src, tt.env)
			wantDiagnostics(t, out, tt.want)
		})
	}
}

func TestAlertWebhookNotEchoed(t *testing.T) {
	out := mustFail(t, "x.hcl", `
alert "a" { webhook = "https://h/services/SECRET1#x" }
alert "b" { webhook = "https://h/SECRET2/%zz" }
alert "c" { webhook = "https://hSECRET3 x/" }
alert "d" { webhook = "ftp://h/SECRET4" }
alert "e" { webhook = "https://h:SECRET5/" }
alert "f" { webhook = "https://[SECRET6/" }
`, nil)
	if strings.Contains(out, "SECRET") {
		t.Errorf("got diagnostics that show a secret:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 6 {
		t.Errorf("got %d diagnostics:\n%s\nwant 6", n, out)
	}
}
