package bytesize

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"2GiB", 2 << 30, ""},
		{"512MB", 512e6, ""},
		{"512 mib", 512 << 20, ""},
		{"1.5GiB", 3 << 29, ""},
		{"100", 100, ""},
		{"100B", 100, ""},
		{" 3kB ", 3000, ""},
		{"1TiB", 1 << 40, ""},
		{"", 0, "no number"},
		{"-1GiB", 0, "no number"},
		{"1.2.3MB", 0, "bad number"},
		{"1PB", 0, "unknown unit"},
		{"2000000TiB", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{
		{900, "900B"}, {2 << 30, "2GiB"}, {512 << 20, "512MiB"}, {144_075_571, "137.4MiB"}, {1536, "1.5KiB"},
	} {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%d) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
