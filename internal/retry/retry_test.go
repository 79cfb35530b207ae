package retry

import (
	"net/http"
	"testing"
	"time"
)

func TestRateLimitPause(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"retry-after seconds", "Retry-After", "30", 30 * time.Second, true},
		{"retry-after date", "Retry-After", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"retry-after in the past", "Retry-After", now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"retry-after garbage", "Retry-After", "soon", 0, false},
		{"reset delta seconds", "X-RateLimit-Reset", "12", 12 * time.Second, true},
		{"reset fractional", "X-RateLimit-Reset", "1.5", 1500 * time.Millisecond, true},
		{"reset unix seconds", "X-RateLimit-Reset", "1795867260", time.Unix(1795867260, 0).Sub(now), true},
		{"reset unix milliseconds", "X-RateLimit-Reset", "1795867260000", time.UnixMilli(1795867260000).Sub(now), true},
		{"reset nonsense", "X-RateLimit-Reset", "1e300", 0, false},
		{"reset negative", "X-RateLimit-Reset", "-5", 0, false},
		{"none", "X-Other", "5", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(tt.header, tt.value)
			got, _, ok := RateLimitPause(h, now)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
