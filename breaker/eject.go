package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// Reason codes of this file and rate.go, beside those of breaker.go and
// shared.go (reasonRemote).
const (
	reasonEjected int32 = 65 // ejected against its peers: Eject
	reasonRate    int32 = 66 // the failure rate reached failure_rate (rate.go)
)

// Eject makes the entry unavailable for a cooldown because it does much
// worse than its peers (outlier detection, docs/behaviour.md "Outlier
// ejection"): the cooldown is the one a trip would get, grown by the same
// backoff (Settings.CooldownMultiplier), and when it ends recovery trials
// decide as after any trip. reason names the rule and its numbers; the
// Snapshot's reason is "ejected: " + reason. The counters are left as
// they were.
//
// Only a closed entry that is not held is ejected: one cooling down or
// recovering is already judged by its trials. Eject reports whether it
// ejected the entry. An ejection is the entry's own: it is not reported
// to SharedHooks.Tripped, since peers differ between replicas.
func (e *Entry) Eject(reason string) bool {
	if e.held.Load() != nil || gobreaker.State(e.state.Load()) != gobreaker.StateClosed {
		return false
	}
	why := "ejected: " + reason
	e.tripDetail.Store(&why)
	e.trip(0, reasonEjected) // 0: the cooldown a trip gets now, which counts it for the backoff
	e.shared.trippedAt.Store(time.Now().UnixNano())
	e.publish()
	return true
}

// Ejected says whether the entry is cooling down after an ejection.
func (e *Entry) Ejected() bool {
	if e.tripReason.Load() != reasonEjected {
		return false
	}
	_, cooling := e.CooldownUntil()
	return cooling
}
