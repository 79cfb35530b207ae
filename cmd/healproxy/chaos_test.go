package main

// `healproxy chaos` against the real binary: it breaks a
// provider upstream and a model plugin, and reports each by name with a
// time to detect and a time to recover; no fault is left behind.

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/internal/proctest"
)

func TestChaosCommand(t *testing.T) {
	a, b := newSwitchable(t), newSwitchable(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "chaos.hcl")
	writeConfig(t, config, fmt.Sprintf(`health {
  error_threshold        = 2
  cooldown               = "300ms"
  success_recovery_count = 1
  auto_reinit            = true
  reinit_cooldown        = "1s"
}

provider "pair" {
  upstreams = [%q, %q]
  timeout   = "2s"
}

model "s1" {
  plugin   = "sentiment"
  timeout  = "5s"
  fallback = "s2"
}

model "s2" {
  plugin  = "sentiment"
  timeout = "5s"
}
`, a.URL, b.URL))
	p := startBinary(t, config)
	waitFor(t, 30*time.Second, "both model plugins to run", func() bool {
		n := 0
		for _, m := range fetchHealth(t, p.base).Models.Entries {
			if m.Loaded && m.Status == "healthy" {
				n++
			}
		}
		return n == 2
	})
	oldPid := 0
	for _, m := range fetchHealth(t, p.base).Models.Entries {
		if m.ModelKey == "s1" {
			oldPid = *m.Pid
		}
	}

	var stdout, stderr proctest.Buffer
	code := run([]string{"chaos", "-url", p.base, "-only", "provider/pair/1, model/s1", "-duration", "1s",
		"-recover", "60s", "-rate", "40", "-poll", "20ms"}, &stdout, &stderr)
	out := stdout.String()
	t.Logf("healproxy chaos output:\n%s\nprogress:\n%s", out, stderr.String())
	if code != 0 {
		t.Fatalf("healproxy chaos: exit %d; want 0", code)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^provider/pair/1  ` + regexp.QuoteMeta(b.URL)),
		regexp.MustCompile(`(?m)^  fault: +error 503$`),
		regexp.MustCompile(`(?m)^  detected: +(degraded|unavailable) after \d`),
		regexp.MustCompile(`(?m)^  recovered: healthy \d[^ ]* after the fault was removed`),
		regexp.MustCompile(`(?m)^model/s1 `),
		regexp.MustCompile(`(?m)^  fault: +SIGKILL pid ` + fmt.Sprint(oldPid) + `$`),
		regexp.MustCompile(`(?m)^  recovered: healthy \d[^ ]* after the kill, by auto_reinit, new pid \d+$`),
		regexp.MustCompile(`(?m)^TARGET +FAULT +DETECTED +UNAVAILABLE +RECOVERED +PROBES +ERRORS$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the report does not match %s", want)
		}
	}
	// The model had a fallback and the provider a second upstream: no
	// probe saw an error.
	if !regexp.MustCompile(`(?m)^model/s1 +SIGKILL pid \d+ +\S+ +\S+ +\S+ +\d+ +0$`).MatchString(out) {
		t.Errorf("model/s1 row: want 0 errors (the fallback answers)")
	}
	// Nothing left behind: no fault in force, the plugin respawned.
	if _, body := httpGet(t, p.base+"/api/admin/fault"); !strings.Contains(body, `"faults":[]`) {
		t.Errorf("faults after the rehearsal: %s; want none", body)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `msg="fault injected"`) || !strings.Contains(logs, `msg="fault cleared"`) {
		t.Errorf("healproxy's log does not show the fault injected and cleared")
	}
}

// TestChaosCommandUsage: bad flags are usage errors (2); an unreachable
// proxy is a failure (1) with the reason.
func TestChaosCommandUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"chaos", "-bogus"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"chaos", "now"}, 2, "unexpected arguments"},
		{"bad url", []string{"chaos", "-url", "ftp://x"}, 1, "want the proxy's base URL"},
		{"bad heal", []string{"chaos", "-heal", "sometimes"}, 1, "want auto, always or never"},
		{"proxy down", []string{"chaos", "-url", "http://" + deadAddr(t)}, 1, "reading diagnostics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr proctest.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("got exit %d, stderr %q; want %d with %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestChaosCommandToken: with an admin token, chaos needs it (-token or
// HEALPROXY_ADMIN_TOKEN) to set a fault, and says so when it is wrong.
func TestChaosCommandToken(t *testing.T) {
	a, b := newSwitchable(t), newSwitchable(t)
	config := filepath.Join(t.TempDir(), "chaos-token.hcl")
	writeConfig(t, config, fmt.Sprintf(`admin {
  token = "chaos-t0ken"
}

health {
  error_threshold        = 2
  cooldown               = "200ms"
  success_recovery_count = 1
}

provider "pair" {
  upstreams = [%q, %q]
}
`, a.URL, b.URL))
	p := startBinary(t, config)
	args := []string{"chaos", "-url", p.base, "-only", "provider/pair/0", "-duration", "300ms", "-recover", "30s", "-rate", "40", "-poll", "20ms"}

	var stdout, stderr proctest.Buffer
	if code := run(append(args, "-token", "wrong"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "401") {
		t.Errorf("wrong token: exit %d, stderr %q; want 1 with the 401", code, stderr.String())
	}
	stdout, stderr = proctest.Buffer{}, proctest.Buffer{}
	t.Setenv("HEALPROXY_ADMIN_TOKEN", "chaos-t0ken")
	if code := run(args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "recovered: healthy") {
		t.Errorf("token from the environment: exit %d; want 0 and a recovery\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
