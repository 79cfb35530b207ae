package cluster

import (
	"encoding/json"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Record is the shared state of one provider upstream, as stored under
// <prefix>gobreaker:state:<key> and published on <prefix>events. It is
// gobreaker's SharedState (state, generation, counts, expiry = the end of
// the cooldown), so gobreaker's own DistributedCircuitBreaker named <key>
// on the same Store reads it, plus what healproxy needs: who changed it,
// when, and why.
type Record struct {
	gobreaker.SharedState
	// Key names the upstream: provider/<id>/<hash of its URL>, the same on
	// every replica with the same config (never the URL: it may hold a
	// secret).
	Key string `json:"key"`
	// CooldownUntil is the end of the cooldown while open (as Expiry).
	CooldownUntil *time.Time `json:"cooldown_until"`
	Reason        string     `json:"reason,omitempty"`
	Replica       string     `json:"replica"` // the replica that tripped or recovered it
	At            time.Time  `json:"at"`      // when, by that replica's clock
	ErrorCount    int64      `json:"error_count"`
	// Vote marks a trip not confirmed by the quorum yet, published on
	// <prefix>votes: it is never applied (quorum.go).
	Vote bool `json:"vote,omitempty"`
	// Votes is how many replicas had tripped the upstream within its
	// cooldown when the record was written (with a quorum only).
	Votes int `json:"votes,omitempty"`
}

// Open reports a trip (cooling down or waiting for recovery trials).
func (r *Record) Open() bool { return r.State != gobreaker.StateClosed }

func tripRecord(key, replica string, at, until time.Time, reason string, errorCount int64) *Record {
	u := until.UTC()
	r := &Record{Key: key, CooldownUntil: &u, Reason: reason, Replica: replica, At: at.UTC(), ErrorCount: errorCount}
	r.State = gobreaker.StateOpen
	r.Expiry = u
	r.Start = r.At
	r.Counts.TotalFailures = uint32(min(max(errorCount, 0), 1<<31))
	r.Counts.ConsecutiveFailures = r.Counts.TotalFailures
	return r
}

func closeRecord(key, replica string, at time.Time) *Record {
	r := &Record{Key: key, Reason: "recovered", Replica: replica, At: at.UTC()}
	r.State = gobreaker.StateClosed
	r.Start = r.At
	return r
}

func encodeRecord(r *Record) ([]byte, error) { return json.Marshal(r) }

func decodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Open() && r.CooldownUntil == nil { // written by gobreaker itself
		u := r.Expiry
		r.CooldownUntil = &u
	}
	return &r, nil
}
