package retry

import "time"

// NewBudget is a budget of share of requests over a sliding window
// (whole seconds, 1 to 63), and at least minPerSecond a second of the
// window, so that a quiet provider may still spend some. A share of 1 or
// more never refuses. Count requests with Request and spend with Take.
// It is the retry budget's shape for other extra attempts, such as
// hedges (provider/hedge.go).
func NewBudget(share float64, window time.Duration, minPerSecond int) *Budget {
	w := int64(window / time.Second)
	return &Budget{ratio: share, minPerSec: max(minPerSecond, 0), windowSecs: min(max(w, 1), budgetSlots-1)}
}
