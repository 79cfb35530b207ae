package retry

import (
	"testing"
	"time"
)

// TestNewBudget: a share of the requests counted, and at least
// minPerSecond a second of the window.
func TestNewBudget(t *testing.T) {
	b := NewBudget(0.1, 10*time.Second, 0)
	for range 100 {
		b.Request()
	}
	n := 0
	for b.Take() {
		n++
		if n > 1000 {
			break
		}
	}
	// a second boundary may pass during the loop; the window holds both
	if n != 10 {
		t.Errorf("took %d of a 10%% budget of 100 requests; want 10", n)
	}
	m := NewBudget(0.1, 5*time.Second, 2)
	n = 0
	for m.Take() && n < 1000 {
		n++
	}
	if n != 10 {
		t.Errorf("took %d with no requests and a minimum of 2/s over 5s; want 10", n)
	}
	if u := NewBudget(1, time.Second, 0); !u.Take() {
		t.Error("a budget of share 1 refused")
	}
}
