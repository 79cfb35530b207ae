package fault

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Fault // Kind, Status, Delay, Percent checked
		ttl  time.Duration
	}{
		{`{"kind": "error"}`, Fault{Kind: KindError, Status: 503, Percent: 100}, DefaultTTL},
		{`{"kind": "error", "status": 429, "percent": 50, "ttl": "5s"}`, Fault{Kind: KindError, Status: 429, Percent: 50}, 5 * time.Second},
		{`{"kind": "abort", "ttl": "10m"}`, Fault{Kind: KindAbort, Percent: 100}, MaxTTL},
		{`{"kind": "delay", "delay_ms": 2000}`, Fault{Kind: KindDelay, Delay: 2 * time.Second, Percent: 100}, DefaultTTL},
	} {
		req, f, err := Parse(strings.NewReader(tc.body))
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.body, err)
			continue
		}
		if f.Kind != tc.want.Kind || f.Status != tc.want.Status || f.Delay != tc.want.Delay || f.Percent != tc.want.Percent {
			t.Errorf("Parse(%s) = %+v; want %+v", tc.body, *f, tc.want)
		}
		if got := f.Until.Sub(f.At); got != tc.ttl || req.TTL != tc.ttl.String() {
			t.Errorf("Parse(%s): TTL %v (%q); want %v", tc.body, got, req.TTL, tc.ttl)
		}
	}
	for _, body := range []string{
		``, `{"kind": "slow"}`, `{"kind": "error", "status": 200}`, `{"kind": "error", "extra": 1}`,
		`{"kind": "delay"}`, `{"kind": "delay", "delay_ms": 600001}`, `{"kind": "delay", "delay_ms": 9223372036854775807}`,
		`{"kind": "abort", "percent": 0}`, `{"kind": "abort", "percent": 101}`,
		`{"kind": "abort", "ttl": "11m"}`, `{"kind": "abort", "ttl": "-1s"}`, `{"kind": "abort", "ttl": "soon"}`,
	} {
		if _, f, err := Parse(strings.NewReader(body)); !errors.Is(err, ErrBadRequest) || f != nil {
			t.Errorf("Parse(%s) = %v, %v; want an ErrBadRequest", body, f, err)
		}
	}
}

type countRT struct{ n int }

func (c *countRT) RoundTrip(*http.Request) (*http.Response, error) {
	c.n++
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestRoundTrip(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/x", strings.NewReader("body"))
	base := &countRT{}
	resp, err := (&Fault{Kind: KindError, Status: 502, Percent: 100}).RoundTrip(base, req)
	if err != nil || resp.StatusCode != 502 || resp.Header.Get("X-Healproxy-Fault") != KindError || base.n != 0 {
		t.Fatalf("error fault: %v, %v, sent %d; want a made-up 502 and nothing sent", resp, err, base.n)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "fault injected") {
		t.Errorf("error fault body %q", b)
	}
	if _, err := (&Fault{Kind: KindAbort, Percent: 100}).RoundTrip(base, req); err != ErrAbort || base.n != 0 {
		t.Errorf("abort fault: %v, sent %d; want ErrAbort, nothing sent", err, base.n)
	}
	if _, err := (&Fault{Kind: KindDelay, Delay: time.Millisecond, Percent: 100}).RoundTrip(base, req); err != nil || base.n != 1 {
		t.Errorf("delay fault: %v, sent %d; want sent once", err, base.n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Fault{Kind: KindDelay, Delay: time.Hour, Percent: 100}).RoundTrip(base, req.WithContext(ctx)); err != context.Canceled || base.n != 1 {
		t.Errorf("delay fault, request cancelled: %v, sent %d; want context.Canceled, not sent", err, base.n)
	}
	hit := 0
	for range 1000 {
		if _, err := (&Fault{Kind: KindAbort, Percent: 30}).RoundTrip(base, req); err != nil {
			hit++
		}
	}
	if hit < 200 || hit > 400 {
		t.Errorf("a 30%% fault hit %d of 1000 attempts", hit)
	}
}
