package gctune

import "testing"

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},             // nothing measured yet: the default
		{4 * mb, 1500},       // grows to a 64 MB floor: 4 MB + 15 × 4 MB
		{16 * mb, 300},       // 16 + 48 = 64
		{31 * mb, 106},       // just under half the floor
		{32 * mb, 100},       // half the floor and up: the default
		{500 * mb, 100},      // a big heap is left alone
		{1 * mb / 100, 2000}, // capped
	} {
		if got := Percent(tc.live, 64*mb); got != tc.want {
			t.Errorf("Percent(%d MB live) = %d; want %d", tc.live/mb, got, tc.want)
		}
	}
}
