package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/cluster"
	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/config/statecfg"
)

// Health shared between replicas (state { redis = … }): the wiring of
// package cluster into the server. Every provider upstream's entry is a
// cluster member under the key its state is persisted under (a hash of its
// URL, never the URL); models stay per replica, but every replica's view
// of all its entries is published for GET /api/diagnostics/health?scope=cluster.

// startupPull bounds how long New waits for the first pull of the shared
// state, so that a replica starting next to tripped ones does not send
// them its first requests; Redis down costs at most this once.
const startupPull = time.Second

// startCluster names the replica and, with state.redis, connects it.
func (s *Server) startCluster(cfg *config.Config, st *state) {
	s.replica = cfg.Replica
	if s.replica == "" {
		s.replica = statecfg.DefaultReplicaID()
	}
	if cfg.Shared == nil {
		return
	}
	c, err := cluster.New(cluster.Options{
		URL:       cfg.Shared.RedisURL,
		KeyPrefix: cfg.Shared.KeyPrefix,
		Quorum:    cfg.Shared.Quorum,
		Replica:   s.replica,
		Logger:    s.log,
		View:      func() any { return s.replicaView() },
	})
	if err != nil { // config.Load checked the URL: not expected
		s.log.Error("health will not be shared", "redis", cfg.Shared.Redacted, "error", err)
		return
	}
	s.cluster = c
	s.metrics.reg.MustRegister(&clusterCollector{c: c}, c.QuorumCollector())
	s.syncClusterMembers(st)
	c.Start()
	c.WaitConnected(startupPull)
}

// syncClusterMembers hands the cluster the current upstream entries, when
// a reload changed them (the poll loop calls it every second).
func (s *Server) syncClusterMembers(st *state) {
	if s.cluster == nil || s.clusterState.Swap(st) == st {
		return
	}
	var ms []cluster.Member
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			r := u.Health.Settings().RecoveryCount
			ms = append(ms, cluster.Member{Key: upstreamKey(p.ID, u), Upstream: u.Display, Entry: u.Health,
				TrialTTL: max(3*time.Second, time.Duration(r)*p.Timeout()+2*time.Second)})
		}
	}
	s.cluster.SetMembers(ms)
}

func (s *Server) closeCluster(ctx context.Context) {
	if s.cluster == nil {
		return
	}
	if err := s.cluster.Close(ctx); err != nil {
		s.log.Debug("closing the redis link", "error", err)
	}
}

// sharedStateDoc is the health document's "shared_state".
func (s *Server) sharedStateDoc() *api.SharedState {
	if s.cluster == nil {
		return nil
	}
	st := s.cluster.Status()
	return &st
}

// viewOf is one entry in a replica's compact view.
func viewOf(snap breaker.Snapshot) api.ReplicaEntry {
	v := api.ReplicaEntry{Status: snap.Status.String(), ErrorCount: snap.ErrorCount, InCooldown: snap.InCooldown, Reason: snap.Reason}
	if snap.InCooldown {
		v.CooldownUntil = api.Stamp(snap.CooldownUntil)
	}
	return v
}

// replicaView is what a replica publishes of itself (and what
// scope=cluster merges).
func (s *Server) replicaView() api.ReplicaView {
	st := s.state.Load()
	v := api.ReplicaView{Replica: s.replica, UpdatedAt: time.Now().UTC().Format(time.RFC3339Nano),
		Upstreams: []api.ReplicaUpstream{}, Models: []api.ReplicaModel{}}
	for _, p := range st.providerList {
		for _, u := range p.Upstreams {
			v.Upstreams = append(v.Upstreams, api.ReplicaUpstream{ProviderID: p.ID, URL: u.Display, ReplicaEntry: viewOf(u.Health.Snapshot())})
		}
	}
	for _, m := range st.modelList {
		d := m.document()
		v.Models = append(v.Models, api.ReplicaModel{ModelKey: m.Key, Loaded: d.Loaded, ReplicaEntry: viewOf(m.Health.Snapshot())})
	}
	return v
}

// serveClusterHealth is GET /api/diagnostics/health?scope=cluster.
func (s *Server) serveClusterHealth(w http.ResponseWriter, r *http.Request) error {
	own := s.replicaView()
	views := []api.ReplicaView{own}
	doc := api.ClusterHealth{Status: "success", Timestamp: time.Now().UTC().Format(time.RFC3339), Scope: "cluster",
		Replica: s.replica, SharedState: s.sharedStateDoc(), Complete: true}
	if s.cluster != nil {
		raws, err := s.cluster.Views(r.Context())
		if err != nil {
			msg := "shared state unreachable: only this replica's view: " + err.Error()
			doc.Complete, doc.Error = false, &msg
		}
		for _, raw := range raws {
			var v api.ReplicaView
			if json.Unmarshal(raw, &v) == nil && validView(v) && v.Replica != s.replica {
				views = append(views, v)
			}
		}
	}
	type upKey struct{ provider, url string }
	ups := map[upKey]int{}
	models := map[string]int{}
	for _, v := range views {
		doc.Replicas = append(doc.Replicas, api.ClusterPeer{Replica: v.Replica, UpdatedAt: v.UpdatedAt})
		for _, u := range v.Upstreams {
			k := upKey{u.ProviderID, u.URL}
			i, ok := ups[k]
			if !ok {
				i = len(doc.Upstreams)
				ups[k] = i
				doc.Upstreams = append(doc.Upstreams, api.ClusterEntry{ProviderID: u.ProviderID, URL: u.URL, Replicas: map[string]api.ReplicaEntry{}})
			}
			doc.Upstreams[i].Replicas[v.Replica] = u.ReplicaEntry
		}
		for _, m := range v.Models {
			i, ok := models[m.ModelKey]
			if !ok {
				i = len(doc.Models)
				models[m.ModelKey] = i
				doc.Models = append(doc.Models, api.ClusterModel{ModelKey: m.ModelKey, Replicas: map[string]api.ReplicaModel{}})
			}
			doc.Models[i].Replicas[v.Replica] = m
		}
	}
	if doc.Upstreams == nil {
		doc.Upstreams = []api.ClusterEntry{}
	}
	if doc.Models == nil {
		doc.Models = []api.ClusterModel{}
	}
	api.WriteJSON(w, http.StatusOK, doc)
	return nil
}

// validView says whether every status in another replica's view is one
// of breaker.Status's names; a view that is not is left out, as one that
// does not decode.
func validView(v api.ReplicaView) bool {
	var st breaker.Status
	for _, u := range v.Upstreams {
		if st.UnmarshalText([]byte(u.Status)) != nil {
			return false
		}
	}
	for _, m := range v.Models {
		if st.UnmarshalText([]byte(m.Status)) != nil {
			return false
		}
	}
	return true
}

// clusterCollector exports the Redis link's state.
type clusterCollector struct{ c *cluster.Cluster }

var (
	sharedConnectedDesc = prometheus.NewDesc("healproxy_shared_state_connected",
		"1 while this replica is connected to the Redis holding the shared health state, else 0.", nil, nil)
	sharedErrorsDesc = prometheus.NewDesc("healproxy_shared_state_sync_errors_total",
		"Redis operations of the shared health state that failed (timeouts, connection errors).", nil, nil)
	sharedDroppedDesc = prometheus.NewDesc("healproxy_shared_state_dropped_total",
		"Local health changes not queued for Redis because the queue was full (a resync pushes them later).", nil, nil)
	sharedPublishedDesc = prometheus.NewDesc("healproxy_shared_state_published_total",
		"Local trips and recoveries written to Redis and published to the other replicas.", nil, nil)
	sharedAppliedDesc = prometheus.NewDesc("healproxy_shared_state_applied_total",
		"Other replicas' trips and recoveries applied here.", nil, nil)
)

func (cc *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sharedConnectedDesc
	ch <- sharedErrorsDesc
	ch <- sharedDroppedDesc
	ch <- sharedPublishedDesc
	ch <- sharedAppliedDesc
}

func (cc *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Status()
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(sharedConnectedDesc, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(sharedErrorsDesc, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(sharedDroppedDesc, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(sharedPublishedDesc, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(sharedAppliedDesc, prometheus.CounterValue, float64(st.Applied))
}

// Interface guards
var _ prometheus.Collector = (*clusterCollector)(nil)
