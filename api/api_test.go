package api

import (
	"encoding/json"
	"testing"
)

// TestDocumentKeys pins the keys, their order and the nulls of the health
// and self-heal documents: clients read them (docs/behaviour.md).
func TestDocumentKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  any
		want string
	}{
		{"health", Health{Providers: Providers{Entries: []Provider{{Upstreams: []Upstream{{}}}}}, Models: Models{Entries: []Model{{}}}},
			`{"status":"","timestamp":"","providers":{"summary":{"total":0,"healthy":0,"degraded":0,"unavailable":0,"unknown":0,"in_cooldown":0},"entries":[{"provider_id":"","name":"","status":"","error_count":0,"success_count":0,"last_success":null,"last_error":null,"last_error_message":null,"cooldown_until":null,"in_cooldown":false,"reason":"","next_trial_at":null,"upstreams":[{"url":"","status":"","error_count":0,"success_count":0,"last_success":null,"last_error":null,"last_error_message":null,"cooldown_until":null,"in_cooldown":false,"operator":null,"fault":null,"reason":"","next_trial_at":null,"paused_until":null,"recent_failures":null,"settings":{"error_threshold":0,"degraded_at":0,"cooldown_seconds":0,"success_recovery_count":0}}]}]},"models":{"summary":{"total":0,"healthy":0,"degraded":0,"unavailable":0,"unknown":0,"in_cooldown":0},"entries":[{"model_key":"","name":"","status":"","error_count":0,"success_count":0,"last_success":null,"last_error":null,"last_error_message":null,"cooldown_until":null,"in_cooldown":false,"loaded":false,"pid":null,"restarts":0,"last_reinit":null,"fallback":null,"reason":"","next_trial_at":null,"paused_until":null,"recent_failures":null,"settings":{"error_threshold":0,"degraded_at":0,"cooldown_seconds":0,"success_recovery_count":0}}]},"overall_health":{"providers_ok":false,"models_ok":false},"replica":""}`},
		{"self-heal", Heal{Results: []HealResult{{}}},
			`{"status":"","timestamp":"","results":[{"status":"","message":""}],"summary":{"total_attempts":0,"successful":0,"failed":0}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.doc)
		if err != nil || string(b) != tt.want {
			t.Errorf("%s: got %s (%v)\nwant %s", tt.name, b, err, tt.want)
		}
	}
}
