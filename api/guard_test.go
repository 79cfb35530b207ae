package api

import (
	"strings"
	"testing"
)

// TestAdminTokenMatches: the comparison behind the Bearer check, which is
// constant-time in content and length (both sides hashed first).
func TestAdminTokenMatches(t *testing.T) {
	tests := []struct {
		got, want string
		match     bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cre", "s3cret", false},
		{"s3cret!", "s3cret", false},
		{"", "s3cret", false},
		{"S3CRET", "s3cret", false},
		{strings.Repeat("x", 1<<16), "s3cret", false},
	}
	for _, tt := range tests {
		if g := tokenMatches(tt.got, tt.want); g != tt.match {
			t.Errorf("tokenMatches(%.10q…, %q) = %v; want %v", tt.got, tt.want, g, tt.match)
		}
	}
}
