package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/internal/testplugins"
)

// pluginCheck runs `healproxy plugin-check ARGS` in process and returns
// its exit code and stdout.
func pluginCheck(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"plugin-check"}, args...), &out, &errOut)
	t.Logf("plugin-check %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String()
}

// stepRE matches one passed step: "ok     start       1.04s  ...".
var stepRE = regexp.MustCompile(`(?m)^ok +(start|info|health|predict) +[0-9.]+(µs|ms|s) `)

func wantSteps(t *testing.T, out string) {
	t.Helper()
	var got []string
	for _, m := range stepRE.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, ",") != "start,info,health,predict" {
		t.Errorf("got passed steps %q; want start, info, health, predict, each with its time", got)
	}
	if !regexp.MustCompile(`plugin-check: ok \(first prediction [0-9.]+(ms|s) after spawn\)`).MatchString(out) {
		t.Errorf("no time to first prediction in:\n%s", out)
	}
}

func TestPluginCheckGoBuiltin(t *testing.T) {
	// /proc/self/exe is this test binary, which serves `plugin NAME` (TestMain).
	code, out := pluginCheck(t, "-input", "SOL rallies hard", "--", "/proc/self/exe", "plugin", "sentiment")
	if code != 0 {
		t.Fatalf("got exit %d; want 0", code)
	}
	wantSteps(t, out)
	if !strings.Contains(out, `"SOL rallies hard" → bullish`) {
		t.Errorf("want the prediction of the given input, bullish first, in:\n%s", out)
	}
}

func TestPluginCheckPythonExample(t *testing.T) {
	testplugins.RequirePython(t, "sklearn")
	code, out := pluginCheck(t, append([]string{"--"}, testplugins.PythonExample()...)...)
	if code != 0 {
		t.Fatalf("got exit %d; want 0", code)
	}
	wantSteps(t, out)
	// The default inputs: one bullish, one bearish text.
	for _, want := range []string{`all-time high, very bullish" → bullish`, `withdrawals halted" → bearish`} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

func TestPluginCheckFailures(t *testing.T) {
	py := testplugins.PythonTestModel
	tests := []struct {
		name     string
		python   bool
		args     []string
		wantCode int
		wantStep string
		wantMsg  []string
	}{
		{name: "no command", args: nil, wantCode: 2},
		{name: "bad -env", args: []string{"-env", "NOEQUALS", "--", "/bin/true"}, wantCode: 2},
		{name: "handshake variable in -env", args: []string{"-env", "PLUGIN_CLIENT_CERT=x", "--", "/bin/true"}, wantCode: 2},
		{name: "command not found", args: []string{"--", "/nonexistent/model-plugin"}, wantCode: 1, wantStep: "spawn", wantMsg: []string{"not found"}},
		{name: "not a plugin", args: []string{"--", "sh", "-c", "echo hello"}, wantCode: 1, wantStep: "handshake", wantMsg: []string{"hello"}},
		{name: "python crashes at import", python: true, args: append([]string{"--"}, py("crash-import")...), wantCode: 1,
			wantStep: "handshake", wantMsg: []string{"ModuleNotFoundError", "healproxy_no_such_module"}},
		{name: "python prints before the handshake", python: true, args: append([]string{"--"}, py("garbage")...), wantCode: 1,
			wantStep: "handshake", wantMsg: []string{"loading weights from /models"}},
		{name: "python never prints the handshake", python: true, args: append([]string{"-start-timeout", "700ms", "--"}, py("silent")...), wantCode: 1,
			wantStep: "handshake", wantMsg: []string{"timeout"}},
		{name: "python unhealthy", python: true, args: append([]string{"--"}, py("unhealthy")...), wantCode: 1,
			wantStep: "health", wantMsg: []string{"weights missing"}},
		{name: "python predict raises", python: true, args: append([]string{"-input", "boom", "--"}, py("ok")...), wantCode: 1,
			wantStep: "predict", wantMsg: []string{"RuntimeError: the model fell over"}},
		{name: "python predict too slow", python: true, args: append([]string{"-input", "sleep:5", "-timeout", "300ms", "--"}, py("ok")...), wantCode: 1,
			wantStep: "predict", wantMsg: []string{"timed out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.python {
				testplugins.RequirePython(t)
			}
			code, out := pluginCheck(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("got exit %d; want %d", code, tt.wantCode)
			}
			if tt.wantStep == "" {
				return
			}
			if want := `plugin-check: failed at step "` + tt.wantStep + `"`; !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
			if !regexp.MustCompile(`(?m)^FAIL +` + tt.wantStep + ` `).MatchString(out) {
				t.Errorf("want a FAIL line for step %s in:\n%s", tt.wantStep, out)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
		})
	}
}
