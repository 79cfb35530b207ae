package quota

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/config/routecfg"
)

var now = time.Date(2026, 12, 2, 13, 0, 20, 0, time.UTC)

// hdr builds a header from "Name: value" lines.
func hdr(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(k, strings.TrimSpace(v))
	}
	return h
}

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		h           http.Header
		weightLimit int
		want        Reading
		wantOK      bool
	}{
		{"none", hdr("Content-Type: application/json"), 0, Reading{}, false},
		{"github: unix reset", hdr("X-RateLimit-Limit: 5000", "X-RateLimit-Remaining: 4999", "X-RateLimit-Reset: 1796216450"), 0,
			Reading{Remaining: 4999, Limit: 5000, Reset: time.Unix(1796216450, 0), Header: "X-RateLimit-Remaining"}, true},
		{"coingecko: seconds until reset", hdr("X-RateLimit-Limit: 30", "X-RateLimit-Remaining: 2", "X-RateLimit-Reset: 40"), 0,
			Reading{Remaining: 2, Limit: 30, Reset: now.Add(40 * time.Second), Header: "X-RateLimit-Remaining"}, true},
		{"unix milliseconds", hdr("X-RateLimit-Remaining: 0", "X-RateLimit-Reset: 1796216450500"), 0,
			Reading{Remaining: 0, Reset: time.UnixMilli(1796216450500), Header: "X-RateLimit-Remaining"}, true},
		{"reset in the past is now", hdr("X-RateLimit-Remaining: 1", "X-RateLimit-Reset: 1700000000"), 0,
			Reading{Remaining: 1, Reset: now, Header: "X-RateLimit-Remaining"}, true},
		{"no reset", hdr("X-RateLimit-Remaining: 7"), 0, Reading{Remaining: 7, Header: "X-RateLimit-Remaining"}, true},
		{"per-window list: the smallest", hdr("X-RateLimit-Remaining: 50, 3", "X-RateLimit-Limit: 100;w=60, 10;w=1"), 0,
			Reading{Remaining: 3, Limit: 10, Header: "X-RateLimit-Remaining"}, true},
		{"ietf structured", hdr(`RateLimit: "default";r=50;t=30`, `RateLimit-Policy: "default";q=100;w=60`), 0,
			Reading{Remaining: 50, Limit: 100, Reset: now.Add(30 * time.Second), Header: "RateLimit"}, true},
		{"ietf structured without policy", hdr(`RateLimit: "default";r=5;t=3`), 0,
			Reading{Remaining: 5, Reset: now.Add(3 * time.Second), Header: "RateLimit"}, true},
		{"ietf structured: the tightest policy", hdr(`RateLimit: "burst";r=90;t=1, "day";r=10;t=3600`,
			`RateLimit-Policy: "burst";q=100;w=1, "day";q=5000;w=86400`), 0,
			Reading{Remaining: 10, Limit: 5000, Reset: now.Add(time.Hour), Header: "RateLimit"}, true},
		{"ietf structured: token name, quoted comma", hdr(`RateLimit: "a,b";r=4;t=2, x;r=9`, `RateLimit-Policy: "a,b";q=8`), 0,
			Reading{Remaining: 4, Limit: 8, Reset: now.Add(2 * time.Second), Header: "RateLimit"}, true},
		{"ietf dictionary", hdr("RateLimit: limit=100, remaining=0, reset=12"), 0,
			Reading{Remaining: 0, Limit: 100, Reset: now.Add(12 * time.Second), Header: "RateLimit"}, true},
		{"ietf separate headers", hdr("RateLimit-Limit: 100", "RateLimit-Remaining: 4", "RateLimit-Reset: 9"), 0,
			Reading{Remaining: 4, Limit: 100, Reset: now.Add(9 * time.Second), Header: "RateLimit-Remaining"}, true},
		{"binance", hdr("X-MBX-USED-WEIGHT-1M: 5800"), 6000,
			Reading{Remaining: 200, Limit: 6000, Reset: time.Date(2026, 12, 2, 13, 1, 0, 0, time.UTC), Header: "X-MBX-USED-WEIGHT-1M"}, true},
		{"binance over the limit", hdr("X-MBX-USED-WEIGHT-1M: 7000"), 6000,
			Reading{Remaining: 0, Limit: 6000, Reset: time.Date(2026, 12, 2, 13, 1, 0, 0, time.UTC), Header: "X-MBX-USED-WEIGHT-1M"}, true},
		{"binance without a weight limit: unread", hdr("X-MBX-USED-WEIGHT-1M: 5800"), 0, Reading{}, false},
		{"the tightest of several", hdr("X-RateLimit-Limit: 1000", "X-RateLimit-Remaining: 900", "X-MBX-USED-WEIGHT-1M: 5900"), 6000,
			Reading{Remaining: 100, Limit: 6000, Reset: time.Date(2026, 12, 2, 13, 1, 0, 0, time.UTC), Header: "X-MBX-USED-WEIGHT-1M"}, true},
		{"garbage", hdr("X-RateLimit-Remaining: lots", `RateLimit: "x;r=`, "RateLimit-Remaining: -4"), 0, Reading{}, false},
		{"garbage reset ignored", hdr("X-RateLimit-Remaining: 3", "X-RateLimit-Reset: NaN"), 0,
			Reading{Remaining: 3, Header: "X-RateLimit-Remaining"}, true},
		{"nonsense reset ignored", hdr("X-RateLimit-Remaining: 3", "X-RateLimit-Reset: 1e300"), 0,
			Reading{Remaining: 3, Header: "X-RateLimit-Remaining"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.h, now, tt.weightLimit)
			if ok != tt.wantOK || got.Remaining != tt.want.Remaining || got.Limit != tt.want.Limit ||
				!got.Reset.Equal(tt.want.Reset) || got.Header != tt.want.Header {
				t.Errorf("Parse = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestTrackerSteersUntilReset: a quota at or below the reserve steers
// until the reset; none left also pauses; a later reading above the
// reserve ends it.
func TestTrackerSteersUntilReset(t *testing.T) {
	tr := NewTracker(routecfg.Quota{Reserve: 0.1})
	clock := now
	at := func() time.Time { return clock }

	if d, ok := tr.Observe(hdr("X-RateLimit-Limit: 100", "X-RateLimit-Remaining: 50", "X-RateLimit-Reset: 30"), clock); !ok || d.Steer {
		t.Fatalf("50 of 100 left: %+v, %v; want read, no steering", d, ok)
	}
	if tr.Steering(at) {
		t.Fatal("steering with half the quota left")
	}
	d, _ := tr.Observe(hdr("X-RateLimit-Limit: 100", "X-RateLimit-Remaining: 10", "X-RateLimit-Reset: 30"), clock)
	if !d.Steer || !d.Started || d.Pause || !d.Until.Equal(now.Add(30*time.Second)) {
		t.Fatalf("10 of 100 left (reserve 10%%): %+v; want a steering started until the reset, no pause", d)
	}
	if want := "X-RateLimit-Remaining: 10 of 100 left, resets in 30s"; d.Reason != want {
		t.Errorf("reason = %q; want %q", d.Reason, want)
	}
	clock = clock.Add(10 * time.Second)
	d, _ = tr.Observe(hdr("X-RateLimit-Limit: 100", "X-RateLimit-Remaining: 0", "X-RateLimit-Reset: 20"), clock)
	if !d.Steer || d.Started || !d.Pause {
		t.Fatalf("0 left while steering: %+v; want steering (not a new one) and a pause", d)
	}
	if !tr.Steering(at) {
		t.Fatal("not steering before the reset")
	}
	clock = now.Add(30 * time.Second)
	if tr.Steering(at) {
		t.Fatal("still steering at the reset")
	}
	// Early end: a reading above the reserve clears it.
	tr.Observe(hdr("RateLimit: limit=100, remaining=3, reset=60"), clock)
	if !tr.Steering(at) {
		t.Fatal("3 of 100 left does not steer")
	}
	tr.Observe(hdr("RateLimit: limit=100, remaining=100, reset=60"), clock)
	if tr.Steering(at) {
		t.Fatal("a full quota did not end the steering")
	}
	s, ok := tr.Snapshot(clock)
	if !ok || s.Remaining != 100 || s.Limit != 100 || s.Header != "RateLimit" || s.Steering || !s.Seen.Equal(clock) {
		t.Errorf("Snapshot = %+v, %v", s, ok)
	}
}

// TestTrackerNoResetNoLimit: without a limit only none left steers;
// without a reset it lasts DefaultWindow.
func TestTrackerNoResetNoLimit(t *testing.T) {
	tr := NewTracker(routecfg.Quota{Reserve: 0.5})
	if _, ok := tr.Snapshot(now); ok {
		t.Fatal("a snapshot before any reading")
	}
	if d, _ := tr.Observe(hdr("X-RateLimit-Remaining: 1"), now); d.Steer {
		t.Fatalf("1 left of an unknown limit: %+v; want no steering", d)
	}
	d, _ := tr.Observe(hdr("X-RateLimit-Remaining: 0"), now)
	if !d.Pause || !d.Until.Equal(now.Add(DefaultWindow)) {
		t.Fatalf("0 left, no reset: %+v; want a pause of DefaultWindow", d)
	}
	if d, ok := tr.Observe(hdr("Content-Type: text/plain"), now); ok || d.Steer {
		t.Fatalf("no quota header: %+v, %v; want nothing", d, ok)
	}
	if !tr.Steering(func() time.Time { return now }) {
		t.Fatal("an answer without quota headers ended the steering")
	}
}

// TestSteeringNoAllocs: the check on the pick path allocates nothing.
func TestSteeringNoAllocs(t *testing.T) {
	tr := NewTracker(routecfg.Quota{})
	clock := time.Now
	if a := testing.AllocsPerRun(1000, func() { tr.Steering(clock) }); a != 0 {
		t.Errorf("Steering allocates %v times; want 0", a)
	}
}

// FuzzParse: no header value makes Parse panic, and what it reads is sane.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`"default";r=50;t=30`, "limit=100, remaining=0, reset=12", "5000", "1796216450500",
		`"a\"b";r=1`, `"unclosed;r=4`, ";;,,", "1e300", "-1", "NaN"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, h := range []http.Header{
			{hXRemaining: {a}, hXLimit: {b}, hXReset: {b}},
			{hRateLimit: {a}, hPolicy: {b}},
			{hRemaining: {a}, hLimit: {a}, hReset: {b}},
			{hMBXWeight: {a}},
		} {
			r, ok := Parse(h, now, 6000)
			if ok && (r.Remaining < 0 || r.Limit < 0 || (!r.Reset.IsZero() && r.Reset.Before(now))) {
				t.Errorf("Parse(%v) = %+v", h, r)
			}
			NewTracker(routecfg.Quota{Reserve: 0.05, WeightLimit: 6000}).Observe(h, now)
		}
	})
}

// TestObserveNoAllocs: reading an answer's quota, above the reserve,
// allocates nothing (it runs on every answer of a provider with a quota
// block).
func TestObserveNoAllocs(t *testing.T) {
	tr := NewTracker(routecfg.Quota{Reserve: 0.05, WeightLimit: 6000})
	for _, h := range []http.Header{
		hdr("X-RateLimit-Limit: 100", "X-RateLimit-Remaining: 50", "X-RateLimit-Reset: 30"),
		hdr(`RateLimit: "default";r=50;t=30`, `RateLimit-Policy: "default";q=100;w=60`),
		hdr("RateLimit: limit=100, remaining=50, reset=30"),
		hdr("X-MBX-USED-WEIGHT-1M: 10"),
		hdr("Content-Type: text/plain"),
	} {
		if a := testing.AllocsPerRun(100, func() { tr.Observe(h, now) }); a != 0 {
			t.Errorf("Observe(%v) allocates %v times; want 0", h, a)
		}
	}
}
