package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healproxy/healproxy/config"
)

func TestWriteConfigIsValid(t *testing.T) {
	for _, variant := range []int{0, 1} {
		var b bytes.Buffer
		if err := writeConfig(&b, "127.0.0.1:9207", 25, variant); err != nil {
			t.Fatal(err)
		}
		cfg, diags := config.Parse("scale.hcl", b.Bytes(), config.LoadOptions{})
		if diags.HasErrors() {
			t.Fatalf("generated config is invalid: %s", config.FormatDiagnostics(diags))
		}
		if g, e := len(cfg.Providers), 25; g != e {
			t.Fatalf("got %d providers; want %d", g, e)
		}
		p := cfg.Providers[24]
		if p.ID != "p00025" || len(p.Upstreams) != 1 || p.Upstreams[0].Host != "127.0.0.1:9" {
			t.Errorf("got provider %s with upstreams %v; want p00025 on 127.0.0.1:9", p.ID, p.Upstreams)
		}
		if g, e := p.Timeout.Seconds(), float64(10+variant); g != e {
			t.Errorf("variant %d: got timeout %vs; want %vs", variant, g, e)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct{ q, want float64 }{{0.5, 5}, {0.99, 10}, {0, 1}, {1, 10}} {
		if g := percentile(xs, tt.q); g != tt.want {
			t.Errorf("percentile(%v): got %v; want %v", tt.q, g, tt.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := markdown([]result{
		{Providers: 1, RSSReadyKB: 20000},
		{Providers: 1001, RSSReadyKB: 30000, HealthP50Ms: 12, HealthMaxMs: 60},
	})
	for _, s := range []string{"| 1001 | 0 | 29.3 |", "| 10.0 |"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	md = markdown([]result{{Providers: 1000, HealthP50Ms: 12, HealthMaxMs: 60}})
	if !strings.Contains(md, "**met**") {
		t.Errorf("a p50 of 12 ms should meet the target:\n%s", md)
	}
}

func TestReloadedSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	first := "time=x level=INFO msg=\"config reloaded\" unchanged=1\n"
	if err := os.WriteFile(path, []byte(first+"time=y level=INFO msg=other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		off  int64
		want bool
	}{{0, true}, {int64(len(first)), false}} {
		if g, err := reloadedSince(path, tt.off); err != nil || g != tt.want {
			t.Errorf("reloadedSince(%d): got %v, %v; want %v", tt.off, g, err, tt.want)
		}
	}
}
