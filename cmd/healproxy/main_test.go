package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte(`provider "a" { upstreams = ["http://127.0.0.1:9"] }`+"\n"), 0o644)
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("provider \"a\" {\n  upstreams = []\n  colour = 1\n}\n"), 0o644)

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErr    []string
		notWantErr string
	}{
		{name: "version", args: []string{"version"}, wantOut: "healproxy "},
		{name: "validate ok", args: []string{"validate", "-config", good}, wantOut: "ok"},
		{name: "validate reports every problem with its position", args: []string{"validate", "-config", bad}, wantCode: 1,
			wantErr: []string{"bad.hcl:2:", "bad.hcl:3:3: Unsupported argument"}, notWantErr: "panic"},
		{name: "validate missing file", args: []string{"validate", "-config", filepath.Join(dir, "nope.hcl")}, wantCode: 1, wantErr: []string{"nope.hcl"}},
		{name: "run refuses a bad config", args: []string{"run", "-config", bad, "-listen", "127.0.0.1:0"}, wantCode: 1, wantErr: []string{"bad.hcl:3:3"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{"unknown command"}},
		{name: "bad flag", args: []string{"validate", "-nope"}, wantCode: 2},
		{name: "validate refuses a file given without -config", args: []string{"validate", bad}, wantCode: 2, wantErr: []string{"unexpected argument", "-config FILE"}},
		{name: "run refuses a stray argument", args: []string{"run", "-listen", "127.0.0.1:0", bad}, wantCode: 2, wantErr: []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("got exit %d; want %d (stdout %q, stderr %q)", code, tt.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("got stdout %q; want it to contain %q", out.String(), tt.wantOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("got stderr %q; want it to contain %q", errOut.String(), w)
				}
			}
			if tt.notWantErr != "" && strings.Contains(errOut.String(), tt.notWantErr) {
				t.Errorf("stderr %q contains %q", errOut.String(), tt.notWantErr)
			}
		})
	}
}
