package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/systemd/healproxy.service with
// systemd-analyze verify (which reports unknown keys and bad values as
// warnings, so any line about the unit fails the test), its commands
// pointing at a real healproxy binary, and that the hardening the README
// promises is there.
func TestSystemdUnit(t *testing.T) {
	t.Parallel() // each waits mostly (scrapes, cooldowns): run them side by side
	unit, err := os.ReadFile("systemd/healproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{
		`(?m)^DynamicUser=yes$`, `(?m)^User=healproxy$`,
		`(?m)^ProtectSystem=strict$`, `(?m)^NoNewPrivileges=yes$`,
		`(?m)^StateDirectory=healproxy$`, `(?m)^ExecReload=/bin/kill -HUP \$MAINPID$`,
		`(?m)^ExecStart=/usr/local/bin/healproxy run -config /etc/healproxy/proxy.hcl`,
		`(?m)^ExecStartPre=/usr/local/bin/healproxy validate -config /etc/healproxy/proxy.hcl$`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("the unit has no line matching %s", want)
		}
	}

	// Where there is no systemd-analyze (some CI images have no systemd),
	// the check is skipped, also in CI: the unit is an example there.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("SKIPPED: systemd-analyze not found (%v): the unit is NOT verified; install Debian's systemd to verify it", err)
	}
	bin := build(t, "cmd/healproxy")
	// The same unit, its commands on the binary just built (verify checks
	// that they are executable).
	dir := t.TempDir()
	path := filepath.Join(dir, "healproxy.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/local/bin/healproxy", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, "healproxy.service"):
			t.Errorf("systemd-analyze verify: %s", line)
		default:
			t.Logf("systemd-analyze verify (not about this unit): %s", line)
		}
	}
}
