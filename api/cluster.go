package api

// ClusterHealth is GET /api/diagnostics/health?scope=cluster: every entry
// with each replica's view of it.
type ClusterHealth struct {
	Status      string         `json:"status"`
	Timestamp   string         `json:"timestamp"`
	Scope       string         `json:"scope"`
	Replica     string         `json:"replica"` // the replica that answered
	SharedState *SharedState   `json:"shared_state"`
	Complete    bool           `json:"complete"` // false: only this replica's view (Redis unreachable)
	Error       *string        `json:"error"`
	Replicas    []ClusterPeer  `json:"replicas"`
	Upstreams   []ClusterEntry `json:"upstreams"`
	Models      []ClusterModel `json:"models"`
}

// ClusterPeer is a replica whose view the cluster document holds.
type ClusterPeer struct {
	Replica   string `json:"replica"`
	UpdatedAt string `json:"updated_at"`
}

// ClusterEntry is one provider upstream as each replica sees it.
type ClusterEntry struct {
	ProviderID string                  `json:"provider_id"`
	URL        string                  `json:"url"`
	Replicas   map[string]ReplicaEntry `json:"replicas"`
}

// ClusterModel is one model as each replica sees it.
type ClusterModel struct {
	ModelKey string                  `json:"model_key"`
	Replicas map[string]ReplicaModel `json:"replicas"`
}

// ReplicaView is what a replica publishes of itself to the others (and
// what scope=cluster merges).
type ReplicaView struct {
	Replica   string            `json:"replica"`
	UpdatedAt string            `json:"updated_at"`
	Upstreams []ReplicaUpstream `json:"upstreams"`
	Models    []ReplicaModel    `json:"models"`
}

// ReplicaEntry is one entry in a replica's compact view.
type ReplicaEntry struct {
	Status        string  `json:"status"`
	ErrorCount    int64   `json:"error_count"`
	InCooldown    bool    `json:"in_cooldown"`
	CooldownUntil *string `json:"cooldown_until"`
	Reason        string  `json:"reason"`
}

// ReplicaUpstream is a provider upstream in a replica's view.
type ReplicaUpstream struct {
	ProviderID string `json:"provider_id"`
	URL        string `json:"url"`
	ReplicaEntry
}

// ReplicaModel is a model in a replica's view.
type ReplicaModel struct {
	ModelKey string `json:"model_key"`
	Loaded   bool   `json:"loaded"`
	ReplicaEntry
}
