package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/config/statecfg"
)

// Quorum trips (Options.Quorum = Q > 1). A replica's own trip is a vote:
// the writer adds it to the sorted set <prefix>votes:<key> (member: the
// replica, score: the end of its cooldown; votes whose cooldown ended are
// removed first) and counts the votes in one script. When the count
// reaches Q, the trip is written and published as a trip, which every
// replica applies (and the trial slot coordinates its recovery as
// before). Below Q, the vote is published on <prefix>votes (for the other
// replicas' diagnostics only, never applied) and the replica keeps its
// own view: it cools down alone, and says so (UnconfirmedTrips, the
// health document's shared_state, the metric). A later trip by another
// replica within the cooldown is the vote that confirms.
//
// A vote lost with a Redis fail-over is cast again: every reconcile (at
// each (re)connection and after a failed write) votes again for the
// entry's own trip while its cooldown runs.
//
// Recoveries need no quorum: a recovery is written and published as
// before, and clears this replica's unconfirmed trip.

// unconfirmed is an own trip the fleet has not confirmed yet.
type unconfirmed struct {
	at, until time.Time
	votes     int // replicas with a trip in their cooldown, this one included, as last counted
}

// UnconfirmedTrip is an upstream this replica tripped whose trip the
// fleet has not confirmed (fewer than Quorum replicas tripped it).
type UnconfirmedTrip = api.UnconfirmedTrip

// quorum is Options.Quorum, at least 1.
func (c *Cluster) quorum() int { return max(1, c.opts.Quorum) }

// UnconfirmedMessage is the diagnostics text of an unconfirmed trip:
// "tripped locally, not confirmed by the fleet (1 of 2)".
func UnconfirmedMessage(votes, quorum int) string {
	return fmt.Sprintf("tripped locally, not confirmed by the fleet (%d of %d)", votes, quorum)
}

// Unconfirmed reports whether member key's entry is tripped by this
// replica alone (or by fewer than Quorum replicas), and how many
// replicas tripped it as last counted. false with Quorum <= 1, when the
// entry is not open on its own trip, or when the fleet confirmed it.
func (c *Cluster) Unconfirmed(key string) (votes int, ok bool) {
	c.mu.RLock()
	m := c.members[key]
	c.mu.RUnlock()
	if m == nil {
		return 0, false
	}
	u := c.unconfirmedOf(m)
	if u == nil {
		return 0, false
	}
	return u.votes, true
}

func (c *Cluster) unconfirmedOf(m *member) *unconfirmed {
	if c.quorum() <= 1 {
		return nil
	}
	u := m.unconfirmed.Load()
	if u == nil {
		return nil
	}
	v := m.Entry.SharedView()
	if !v.Open || v.Remote != "" || v.Forced {
		return nil // recovered, or another replica's (confirmed) trip applies now
	}
	return u
}

// UnconfirmedTrips lists the upstreams this replica tripped that the
// fleet has not confirmed, by key.
func (c *Cluster) UnconfirmedTrips() []UnconfirmedTrip {
	q := c.quorum()
	if q <= 1 {
		return nil
	}
	var out []UnconfirmedTrip
	for _, m := range c.snapshotMembers() {
		u := c.unconfirmedOf(m)
		if u == nil {
			continue
		}
		out = append(out, UnconfirmedTrip{Key: m.Key, Upstream: m.Upstream, Votes: u.votes, Quorum: q,
			TrippedAt: u.at.UTC(), CooldownUntil: u.until.UTC(), Message: UnconfirmedMessage(u.votes, q)})
	}
	sortTrips(out)
	return out
}

func sortTrips(ts []UnconfirmedTrip) {
	for i := 1; i < len(ts); i++ { // a handful: insertion sort
		for j := i; j > 0 && ts[j].Key < ts[j-1].Key; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// voteScript adds a vote (ARGV[2], the replica) with the end of its
// cooldown (ARGV[3], unix ms) after removing the votes whose cooldown
// ended by ARGV[1] (now, unix ms), and counts the votes. The set expires
// a minute after its last cooldown.
var voteScript = redis.NewScript(`
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
if tonumber(ARGV[3]) > tonumber(ARGV[1]) then
	redis.call("ZADD", KEYS[1], ARGV[3], ARGV[2])
end
local top = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
if top[2] then
	redis.call("PEXPIREAT", KEYS[1], math.floor(tonumber(top[2])) + 60000)
end
return redis.call("ZCARD", KEYS[1])`)

// commit writes a local change: recoveries (and every change when Quorum
// <= 1) as before; with a quorum, a trip is a vote first.
func (c *Cluster) commit(m *member, rec *Record) error {
	q := c.quorum()
	if !rec.Open() || q <= 1 || rec.CooldownUntil == nil {
		return c.write(rec)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.OpTimeout)
	n, err := voteScript.Run(ctx, c.rdb, []string{c.opts.KeyPrefix + "votes:" + rec.Key},
		time.Now().UnixMilli(), c.replica, rec.CooldownUntil.UnixMilli()).Int()
	cancel()
	if err != nil {
		return err
	}
	c.votes.Add(1)
	if n >= q {
		rec.Votes = n
		rec.Reason += fmt.Sprintf(" (confirmed: %d of %d replicas tripped it)", n, q)
		if err := c.write(rec); err != nil {
			return err
		}
		c.confirmed.Add(1)
		if u := m.unconfirmed.Load(); u != nil && !u.at.After(rec.At) {
			m.unconfirmed.CompareAndSwap(u, nil)
		}
		return nil
	}
	if u := m.unconfirmed.Load(); u != nil && u.at.Equal(rec.At) && u.votes != n {
		m.unconfirmed.CompareAndSwap(u, &unconfirmed{at: u.at, until: u.until, votes: max(1, n)})
	} else if u == nil && rec.Replica == c.replica {
		// a trip pushed by a reconcile (restored, or voted again after a
		// fail-over): unconfirmed too
		m.unconfirmed.CompareAndSwap(nil, &unconfirmed{at: rec.At, until: *rec.CooldownUntil, votes: max(1, n)})
	}
	vote := *rec
	vote.Vote, vote.Votes = true, n
	data, err := encodeRecord(&vote)
	if err != nil {
		return err
	}
	ctx, cancel = context.WithTimeout(c.ctx, c.opts.OpTimeout)
	defer cancel()
	return c.rdb.Publish(ctx, c.voteChannel(), data).Err()
}

func (c *Cluster) voteChannel() string { return c.opts.KeyPrefix + "votes" }

// heardVote notes another replica's vote: this replica's count of an
// unconfirmed trip of the same upstream goes up.
func (c *Cluster) heardVote(m *member, rec *Record) {
	u := m.unconfirmed.Load()
	if u != nil && rec.Votes > u.votes {
		m.unconfirmed.CompareAndSwap(u, &unconfirmed{at: u.at, until: u.until, votes: rec.Votes})
	}
}

// fleetTripped notes a confirmed trip of m's upstream (another replica's,
// read or heard): this replica's own trip, if any, is not the outlier.
func (c *Cluster) fleetTripped(m *member, rec *Record) {
	if u := m.unconfirmed.Load(); u != nil && rec.CooldownUntil != nil && rec.CooldownUntil.After(time.Now()) {
		m.unconfirmed.CompareAndSwap(u, nil)
	}
}

// getAll reads keys in one round trip (a pipeline of GETs, which a
// Redis Cluster splits by slot, unlike MGET); a missing key is nil.
func (c *Cluster) getAll(ctx context.Context, keys []string) ([]any, error) {
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]any, len(keys))
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err == nil {
			out[i] = v
		}
	}
	return out, nil
}

var modeNames = map[statecfg.RedisMode]string{
	statecfg.RedisSingle: "single", statecfg.RedisSentinel: "sentinel", statecfg.RedisCluster: "cluster",
}

// newClient is go-redis's client for t: one server, Sentinel (a failover
// client that follows the primary) or Cluster (which follows slot moves),
// with every operation bounded by timeout and no retries of its own (the
// cluster's callers decide).
func newClient(t statecfg.RedisTarget, timeout time.Duration) (redis.UniversalClient, error) {
	if t.Mode == statecfg.RedisSingle {
		ro, err := redis.ParseURL(t.URL)
		if err != nil {
			return nil, errors.New("cluster: invalid redis URL " + t.Redacted)
		}
		ro.Protocol = 2
		ro.DisableIdentity = true
		ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		ro.ContextTimeoutEnabled = true
		ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.PoolTimeout = timeout, timeout, timeout, timeout
		ro.MaxRetries = -1 // fail fast; the callers decide what to do
		ro.DialerRetries = 1
		ro.PoolSize = 8
		return redis.NewClient(ro), nil
	}
	uo := &redis.UniversalOptions{
		Addrs:                    t.Addrs,
		DB:                       t.DB,
		Username:                 t.Username,
		Password:                 t.Password,
		SentinelUsername:         t.SentinelUsername,
		SentinelPassword:         t.SentinelPassword,
		MasterName:               t.MasterName,
		IsClusterMode:            t.Mode == statecfg.RedisCluster,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		ContextTimeoutEnabled:    true,
		DialTimeout:              timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		PoolTimeout:              timeout,
		MaxRetries:               -1,
		DialerRetries:            1,
		PoolSize:                 8,
		MaxRedirects:             5, // MOVED/ASK while a slot migrates
	}
	if t.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12} // the server name is each address's host
	}
	return redis.NewUniversalClient(uo), nil
}

// QuorumCollector exports the quorum's metrics; register it once per
// Cluster:
//
//	healproxy_shared_state_quorum                  gauge
//	healproxy_shared_state_unconfirmed_trips       gauge: upstreams tripped here that the fleet has not confirmed
//	healproxy_shared_state_trip_votes_total        counter: own trips counted as votes
//	healproxy_shared_state_trips_confirmed_total   counter: own votes that reached the quorum
func (c *Cluster) QuorumCollector() prometheus.Collector { return quorumCollector{c} }

type quorumCollector struct{ c *Cluster }

var (
	quorumDesc = prometheus.NewDesc("healproxy_shared_state_quorum",
		"Replicas that must trip an upstream within its cooldown before the others apply the trip (state.quorum).", nil, nil)
	unconfirmedDesc = prometheus.NewDesc("healproxy_shared_state_unconfirmed_trips",
		"Upstreams this replica tripped whose trip fewer than state.quorum replicas share: this replica may be the outlier.", nil, nil)
	votesDesc = prometheus.NewDesc("healproxy_shared_state_trip_votes_total",
		"This replica's trips counted as votes towards the quorum (votes cast again after a fail-over included).", nil, nil)
	confirmedDesc = prometheus.NewDesc("healproxy_shared_state_trips_confirmed_total",
		"This replica's votes that reached the quorum, so that every replica applied the trip.", nil, nil)
)

func (qc quorumCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quorumDesc
	ch <- unconfirmedDesc
	ch <- votesDesc
	ch <- confirmedDesc
}

func (qc quorumCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(quorumDesc, prometheus.GaugeValue, float64(qc.c.quorum()))
	ch <- prometheus.MustNewConstMetric(unconfirmedDesc, prometheus.GaugeValue, float64(len(qc.c.UnconfirmedTrips())))
	ch <- prometheus.MustNewConstMetric(votesDesc, prometheus.CounterValue, float64(qc.c.votes.Load()))
	ch <- prometheus.MustNewConstMetric(confirmedDesc, prometheus.CounterValue, float64(qc.c.confirmed.Load()))
}

// Interface guards
var _ prometheus.Collector = quorumCollector{}
