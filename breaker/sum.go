package breaker

// Sum is the status of a pool of n equivalent entries (a provider's
// upstreams, an endpoint model's endpoints), status(i) being entry i's
// (docs/behaviour.md, "The health document"): entries never called are
// left out unless all are; healthy when every other one is, unavailable
// when all are, degraded otherwise. healthy counts the healthy ones.
func Sum(n int, status func(i int) Status) (sum Status, healthy int) {
	var called, unavailable int
	for i := range n {
		switch status(i) {
		case Unknown:
			continue
		case Healthy:
			healthy++
		case Unavailable:
			unavailable++
		}
		called++
	}
	switch {
	case called == 0:
		return Unknown, healthy
	case healthy == called:
		return Healthy, healthy
	case unavailable == called:
		return Unavailable, healthy
	}
	return Degraded, healthy
}
