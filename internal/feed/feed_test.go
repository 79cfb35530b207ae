package feed

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/healproxy/healproxy/api"
)

// TestTimelineBounded: an entry keeps its own newest marks of the last
// hour, whatever the rest of the fleet does.
func TestTimelineBounded(t *testing.T) {
	var tl Marks
	now := time.Now()
	tl.Add("provider", "quiet", api.Mark{Time: now, Type: "status", To: "unavailable"}, "healthy")
	for i := range 3 * PruneEvery {
		tl.Add("provider", "p"+string(rune('a'+i%26))+strings.Repeat("x", i%500), api.Mark{Time: now, Type: "status", To: "healthy"}, "")
	}
	got := tl.Of("provider", "quiet", now)
	if len(got) != 1 || got[0].From != "healthy" || got[0].To != "unavailable" {
		t.Fatalf("quiet's marks after the fleet talked: %+v; want its one change, healthy → unavailable", got)
	}
	for i := range 100 {
		tl.Add("model", "busy", api.Mark{Time: now.Add(time.Duration(i) * time.Second), Type: "status", To: []string{"healthy", "degraded"}[i%2]}, "")
	}
	got = tl.Of("model", "busy", now.Add(time.Hour))
	if len(got) != MarksPerEntry || got[0].Time != now.Add(36*time.Second) || got[len(got)-1].Time != now.Add(99*time.Second) {
		t.Fatalf("busy keeps %d marks from %v to %v; want its newest %d, oldest first", len(got), got[0].Time, got[len(got)-1].Time, MarksPerEntry)
	}
	if got[1].From != got[0].To {
		t.Errorf("a mark's From is not the status the one before left: %+v then %+v", got[0], got[1])
	}
	if got := tl.Of("model", "busy", now.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("marks older than an hour are still listed: %d", len(got))
	}
	if got := tl.Of("provider", "busy", now); len(got) != 0 {
		t.Errorf("a provider named as a model has the model's marks: %d", len(got))
	}
}

// TestAuditLogBounded: the log keeps the newest MaxAudit records.
func TestAuditLogBounded(t *testing.T) {
	var a Audit
	for i := range MaxAudit + 10 {
		a.Add(api.AuditEntry{Action: fmt.Sprint(i)})
	}
	recs := a.Last(MaxAudit + 50)
	if len(recs) != MaxAudit || recs[0].Action != "10" || recs[len(recs)-1].Action != fmt.Sprint(MaxAudit+9) {
		t.Errorf("got %d records from %q to %q; want the newest %d", len(recs), recs[0].Action, recs[len(recs)-1].Action, MaxAudit)
	}
}

// TestHubDropsASlowSubscriber: publishing never blocks; a subscriber that
// falls SubscriberBuffer behind is dropped (its channel closed), the others
// keep theirs, and Close ends every stream and refuses new ones.
func TestHubDropsASlowSubscriber(t *testing.T) {
	h := NewHub()
	slow, _ := h.Subscribe()
	fast, _ := h.Subscribe()
	for i := range SubscriberBuffer + 1 {
		h.Publish([]byte(fmt.Sprint(i)))
		<-fast
	}
	n := 0
	for range slow {
		n++
	}
	if n != SubscriberBuffer {
		t.Errorf("the slow subscriber got %d messages before its channel closed; want %d", n, SubscriberBuffer)
	}
	if !h.Active() {
		t.Error("the fast subscriber was dropped too")
	}
	h.Close()
	if _, open := <-fast; open {
		t.Error("Close left a stream open")
	}
	if _, ok := h.Subscribe(); ok {
		t.Error("a closed hub took a subscriber")
	}
}
