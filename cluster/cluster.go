// Package cluster shares provider-upstream health between healproxy
// replicas through Redis.
//
// Each replica keeps deciding on its own request path with its local
// breaker.Entry (no network on the success path). What is shared is the
// outcome: a replica whose upstream trips writes the trip to Redis (a
// gobreaker SharedState record, through Store, gobreaker's
// SharedDataStore) and publishes it on <prefix>events; every replica
// subscribes and applies other replicas' trips (the same cooldown_until)
// and recoveries to its own entry. A replica that connects or reconnects
// pulls every record of its upstreams (MGET), applies what is newer and
// pushes what it knows better.
//
// Recovery trials are coordinated: when a cooldown ends, the first trial a
// replica would admit asks Redis for the generation's trial slot (SET NX PX
// <prefix>trials:<key>:<cooldown end>). The winner runs the R trials and
// publishes the outcome; the others refuse trials (ErrTrialsBusy) until it
// arrives or the slot expires (the winner died). That call is the only
// Redis call on a request path, once per cooldown per replica, bounded by
// a short timeout; on error the replica decides locally.
//
// Redis down or slow never stops a replica: every operation is bounded,
// local decisions go on, the outage is logged once, shown in Status and
// retried with backoff; on rejoin the replica resubscribes, pulls and
// pushes. Events are ordered by the replicas' clocks (the later wins), so
// replicas' clocks should agree within a fraction of a cooldown.
//
// Each replica also writes a compact view of its health to
// <prefix>replica:<id> every HeartbeatInterval (expiring after
// HeartbeatTTL), which Views reads back for a cluster-wide diagnostics
// page.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healproxy/healproxy/api"
	"github.com/healproxy/healproxy/breaker"
	"github.com/healproxy/healproxy/config/statecfg"
)

// Options for New. Zero durations take the defaults given.
type Options struct {
	// URL is one of the forms statecfg.ParseRedisURL reads: redis://,
	// rediss:// (one server), redis-sentinel://…/master (a primary found
	// through Sentinel), redis-cluster:// (a Redis Cluster). It may hold
	// passwords: never logged or shown.
	URL       string
	KeyPrefix string
	Replica   string // this replica's id
	Logger    *slog.Logger

	// Quorum is how many replicas (this one included) must trip an
	// upstream within its cooldown before the others apply the trip
	// (quorum.go). 0 or 1: every trip is applied at once. Recoveries need
	// none.
	Quorum int

	// View returns this replica's health view, written as JSON to
	// <prefix>replica:<id>. nil: none is written.
	View func() any

	OpTimeout         time.Duration // each Redis operation off the request path; 250ms
	GateTimeout       time.Duration // the trial-slot call on the request path; 100ms
	QueueSize         int           // local changes waiting to be written; 1024
	HeartbeatInterval time.Duration // replica view and liveness; 2s
	HeartbeatTTL      time.Duration // a replica's view expires; 10s
	PingInterval      time.Duration // liveness of the subscription; 1s
	MinBackoff        time.Duration // first reconnect wait; 100ms
	MaxBackoff        time.Duration // reconnect wait cap; 3s
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.OpTimeout, 250*time.Millisecond)
	def(&o.GateTimeout, 100*time.Millisecond)
	def(&o.HeartbeatInterval, 2*time.Second)
	def(&o.HeartbeatTTL, 10*time.Second)
	def(&o.PingInterval, time.Second)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 3*time.Second)
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Member is one provider upstream whose health is shared.
type Member struct {
	Key      string // the same on every replica; never the URL (secrets)
	Upstream string // display URL, for logs
	Entry    *breaker.Entry
	// TrialTTL is how long a replica that won a generation's trial slot
	// has to finish its trials before another may take over.
	TrialTTL time.Duration
}

type member struct {
	Member
	gate        atomic.Pointer[verdict]
	unconfirmed atomic.Pointer[unconfirmed] // an own trip the fleet has not confirmed (quorum.go)
}

// verdict is a replica's standing for one generation's recovery trials.
type verdict struct {
	gen     int64
	state   int32
	retryAt int64         // unix ns; for loser: when to ask again
	done    chan struct{} // for checking: closed when the answer is in
}

const (
	gateChecking int32 = iota // one call is asking Redis; the others wait for its answer
	gateOwner                 // this replica runs the trials
	gateLoser                 // another does
	gateLocal                 // Redis unreachable: decided locally
)

// Cluster is one replica's link to the others. Create it with New, add
// members with SetMembers, Start it, Close it.
type Cluster struct {
	opts    Options
	url     string // redacted
	log     *slog.Logger
	rdb     redis.UniversalClient
	store   *Store
	replica string
	channel string
	secrets []string // the URL's passwords, scrubbed from errors
	mode    statecfg.RedisMode

	mu        sync.RWMutex
	members   map[string]*member
	status    statusState
	firstTry  chan struct{} // closed when the first attempt to connect ended
	firstOnce sync.Once

	connected atomic.Bool
	broken    atomic.Pointer[error] // an operation failed: restart the session
	dirty     atomic.Bool           // a change was not written: push at the next chance
	queue     chan *Record
	resync    chan struct{}
	ps        *redis.PubSub // the session's subscription, guarded by mu

	published, applied, dropped, syncErrors, stale atomic.Uint64
	votes, confirmed                               atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type statusState struct {
	since      time.Time
	lastError  string
	errorAt    time.Time
	downLogged bool
	everUp     bool
}

var quietOnce sync.Once

// New prepares a cluster link; it connects when started.
func New(opts Options) (*Cluster, error) {
	opts.defaults()
	target, err := statecfg.ParseRedisURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err) // never holds a password
	}
	rdb, err := newClient(target, opts.OpTimeout)
	if err != nil {
		return nil, err
	}
	quietOnce.Do(func() { redis.SetLogger(quietLogger{}) })
	c := &Cluster{
		opts:     opts,
		url:      target.Redacted,
		log:      opts.Logger,
		rdb:      rdb,
		replica:  opts.Replica,
		channel:  opts.KeyPrefix + "events",
		mode:     target.Mode,
		members:  map[string]*member{},
		firstTry: make(chan struct{}),
		queue:    make(chan *Record, opts.QueueSize),
		resync:   make(chan struct{}, 1),
	}
	for _, pw := range []string{target.Password, target.SentinelPassword} {
		if pw != "" {
			c.secrets = append(c.secrets, pw)
		}
	}
	c.store = NewStore(c.rdb, opts.KeyPrefix, opts.OpTimeout, 2*time.Second, 7*24*time.Hour)
	c.status.since = time.Now()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Replica is this replica's id.
func (c *Cluster) Replica() string { return c.replica }

// Store is the SharedDataStore the cluster writes through.
func (c *Cluster) Store() *Store { return c.store }

// Start connects in the background: the subscription, the writer and the
// heartbeat.
func (c *Cluster) Start() {
	c.wg.Add(3)
	go c.run()
	go c.writer()
	go c.heartbeat()
}

// WaitConnected waits up to d for the first attempt to connect (and, when
// it succeeds, its pull of the shared state) and reports whether the link
// is up.
func (c *Cluster) WaitConnected(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.firstTry:
	case <-t.C:
	}
	return c.connected.Load()
}

// Close stops the link, removes the hooks from the members and forgets
// this replica's view. ctx bounds it.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	for _, m := range c.members {
		m.Entry.SetShared(nil)
	}
	c.members = map[string]*member{}
	c.mu.Unlock()
	if c.connected.Load() {
		dctx, cancel := context.WithTimeout(ctx, c.opts.OpTimeout)
		pipe := c.rdb.Pipeline()
		pipe.Del(dctx, c.opts.KeyPrefix+"replica:"+c.replica)
		pipe.ZRem(dctx, c.opts.KeyPrefix+"replicas", c.replica)
		pipe.Exec(dctx)
		cancel()
	}
	c.cancel()
	c.mu.Lock()
	if c.ps != nil {
		c.ps.Close() // unblocks the session's read
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return c.rdb.Close()
}

// SetMembers replaces the shared entries (at start and after a reload):
// new ones get hooks and are pulled at once when connected, dropped ones
// lose their hooks.
func (c *Cluster) SetMembers(ms []Member) {
	c.mu.Lock()
	old := c.members
	next := make(map[string]*member, len(ms))
	added := false
	for _, mm := range ms {
		if m := old[mm.Key]; m != nil && m.Entry == mm.Entry {
			m.Member = mm
			next[mm.Key] = m
			continue
		}
		m := &member{Member: mm}
		next[mm.Key] = m
		added = true
		mm.Entry.SetShared(c.hooks(m))
	}
	for k, m := range old {
		if n := next[k]; n == nil || n.Entry != m.Entry {
			m.Entry.SetShared(nil)
		}
	}
	c.members = next
	c.mu.Unlock()
	if added {
		c.requestResync()
	}
}

func (c *Cluster) hooks(m *member) *breaker.SharedHooks {
	return &breaker.SharedHooks{
		Tripped: func(_ *breaker.Entry, t breaker.Trip) {
			if c.quorum() > 1 { // unconfirmed until the fleet agrees (quorum.go)
				m.unconfirmed.Store(&unconfirmed{at: t.At, until: t.Until, votes: 1})
			}
			c.enqueue(tripRecord(m.Key, c.replica, t.At, t.Until, t.Reason, t.ErrorCount))
		},
		Closed: func(_ *breaker.Entry, at time.Time) {
			m.gate.Store(nil)
			m.unconfirmed.Store(nil)
			c.enqueue(closeRecord(m.Key, c.replica, at))
		},
		TrialGate: func(_ *breaker.Entry, gen int64) bool { return c.trialGate(m, gen) },
	}
}

// enqueue hands a local change to the writer without ever blocking: a
// full queue drops it (counted) and asks for a resync, which pushes the
// entry's state anyway.
func (c *Cluster) enqueue(r *Record) {
	if !c.connected.Load() {
		c.dirty.Store(true) // pushed by the pull at rejoin
		return
	}
	select {
	case c.queue <- r:
	default:
		c.dropped.Add(1)
		c.dirty.Store(true)
	}
}

func (c *Cluster) requestResync() {
	select {
	case c.resync <- struct{}{}:
	default:
	}
}

// ---- the trial gate (request path) ----

// trialGate decides whether this replica may admit a recovery trial for
// generation gen. Only the first call per generation asks Redis.
func (c *Cluster) trialGate(m *member, gen int64) bool {
	v := m.gate.Load()
	if v != nil && v.gen == gen && v.state == gateChecking {
		// another call is asking: wait for its answer (bounded), so that
		// this replica can admit its R trials if it wins
		t := time.NewTimer(c.opts.GateTimeout)
		select {
		case <-v.done:
		case <-t.C:
		}
		t.Stop()
		v = m.gate.Load()
	}
	if v != nil && v.gen == gen {
		switch v.state {
		case gateOwner, gateLocal:
			return true
		case gateChecking:
			return false
		case gateLoser:
			if time.Now().UnixNano() < v.retryAt {
				return false
			}
		}
	}
	if !c.connected.Load() {
		m.gate.CompareAndSwap(v, &verdict{gen: gen, state: gateLocal})
		return true
	}
	check := &verdict{gen: gen, state: gateChecking, done: make(chan struct{})}
	if !m.gate.CompareAndSwap(v, check) {
		return false // another call started asking just now
	}
	defer close(check.done)
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.GateTimeout)
	defer cancel()
	won, ttl, err := c.claimTrials(ctx, m, gen)
	switch {
	case err != nil:
		c.opFailed(err)
		m.gate.Store(&verdict{gen: gen, state: gateLocal})
		return true
	case won:
		m.gate.Store(&verdict{gen: gen, state: gateOwner})
		return true
	default:
		m.gate.Store(&verdict{gen: gen, state: gateLoser, retryAt: time.Now().Add(ttl).UnixNano()})
		return false
	}
}

// claimTrials asks for generation gen's trial slot of m. When another
// replica holds it, ttl is how long it still does.
func (c *Cluster) claimTrials(ctx context.Context, m *member, gen int64) (won bool, ttl time.Duration, err error) {
	key := c.opts.KeyPrefix + "trials:" + m.Key + ":" + strconv.FormatInt(gen, 10)
	trialTTL := m.TrialTTL
	if trialTTL <= 0 {
		trialTTL = 10 * time.Second
	}
	pipe := c.rdb.Pipeline()
	set := pipe.SetNX(ctx, key, c.replica, trialTTL)
	left := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, 0, err
	}
	if set.Val() {
		return true, 0, nil
	}
	ttl = left.Val()
	if ttl <= 0 {
		ttl = 10 * time.Millisecond // it just expired: ask again soon
	}
	return false, ttl, nil
}

// ---- the session: subscription, pull and push ----

func (c *Cluster) run() {
	defer c.wg.Done()
	backoff := c.opts.MinBackoff
	for c.ctx.Err() == nil {
		wasUp, err := c.session()
		if c.ctx.Err() != nil {
			return
		}
		c.setDown(err)
		if wasUp {
			backoff = c.opts.MinBackoff
		}
		// full jitter on the upper half: replicas do not reconnect in step
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// session subscribes, pulls and pushes, then applies other replicas'
// events until the connection fails. wasUp says it got connected.
func (c *Cluster) session() (wasUp bool, err error) {
	c.broken.Store(nil)
	ps := c.rdb.Subscribe(c.ctx) // no channel yet: subscribing is checked below
	c.mu.Lock()
	c.ps = ps
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.ps = nil
		c.mu.Unlock()
		ps.Close()
	}()
	if c.ctx.Err() != nil {
		return false, c.ctx.Err()
	}
	sctx, cancel := context.WithTimeout(c.ctx, c.opts.OpTimeout)
	channels := []string{c.channel}
	if c.quorum() > 1 {
		channels = append(channels, c.voteChannel())
	}
	err = ps.Subscribe(sctx, channels...)
	for range channels {
		if err != nil {
			break
		}
		var msg any
		msg, err = ps.ReceiveTimeout(sctx, c.opts.OpTimeout)
		if _, ok := msg.(*redis.Subscription); err == nil && !ok {
			err = errors.New("unexpected answer to SUBSCRIBE")
		}
	}
	cancel()
	if err != nil {
		return false, err
	}
	// Subscribed first, then pulled: an event published in between is
	// seen twice at worst, never missed.
	if err := c.reconcile(); err != nil {
		return false, err
	}
	c.setUp()
	c.beat()
	var pingSent time.Time
	for {
		if p := c.broken.Load(); p != nil {
			return true, *p
		}
		select {
		case <-c.resync:
			if err := c.reconcile(); err != nil {
				return true, err
			}
		default:
		}
		msg, err := ps.ReceiveTimeout(c.ctx, c.opts.PingInterval)
		if err != nil {
			if c.ctx.Err() != nil {
				return true, c.ctx.Err()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return true, err
			}
			if !pingSent.IsZero() && time.Since(pingSent) > 2*c.opts.PingInterval+c.opts.OpTimeout {
				return true, errors.New("redis did not answer a PING in time")
			}
			if pingSent.IsZero() {
				pctx, cancel := context.WithTimeout(c.ctx, c.opts.OpTimeout)
				err = ps.Ping(pctx)
				cancel()
				if err != nil {
					return true, err
				}
				pingSent = time.Now()
			}
			continue
		}
		pingSent = time.Time{} // any message proves the link
		if m, ok := msg.(*redis.Message); ok {
			c.applyEvent(m.Payload)
		}
	}
}

// applyEvent applies another replica's published change.
func (c *Cluster) applyEvent(payload string) {
	rec, err := decodeRecord([]byte(payload))
	if err != nil || rec.Replica == c.replica {
		return
	}
	c.mu.RLock()
	m := c.members[rec.Key]
	c.mu.RUnlock()
	if m != nil && rec.Vote {
		c.heardVote(m, rec)
		return
	}
	if m != nil && c.apply(m, rec) {
		c.applied.Add(1)
	}
}

func (c *Cluster) apply(m *member, rec *Record) bool {
	if rec.Vote {
		return false // a vote is never a trip
	}
	if rec.Open() {
		if rec.CooldownUntil == nil {
			return false
		}
		c.fleetTripped(m, rec)
		return m.Entry.ApplyTrip(*rec.CooldownUntil, rec.At, rec.Replica)
	}
	if m.Entry.ApplyClose(rec.At) {
		m.gate.Store(nil)
		return true
	}
	return false
}

// reconcile pulls the shared record of every member, applies the newer
// ones and pushes the entries' own newer state.
func (c *Cluster) reconcile() error {
	c.dirty.Store(false)
	c.mu.RLock()
	ms := make([]*member, 0, len(c.members))
	for _, m := range c.members {
		ms = append(ms, m)
	}
	c.mu.RUnlock()
	const chunk = 100
	for i := 0; i < len(ms); i += chunk {
		part := ms[i:min(i+chunk, len(ms))]
		keys := make([]string, len(part))
		for j, m := range part {
			keys[j] = c.opts.KeyPrefix + stateName(m.Key)
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.OpTimeout)
		vals, err := c.getAll(ctx, keys)
		cancel()
		if err != nil {
			c.dirty.Store(true)
			return err
		}
		for j, m := range part {
			var rec *Record
			if s, ok := vals[j].(string); ok {
				rec, _ = decodeRecord([]byte(s))
			}
			if rec != nil && rec.Key == m.Key && c.apply(m, rec) {
				c.applied.Add(1)
				continue
			}
			if push := c.localNewer(m, rec); push != nil {
				if err := c.commit(m, push); err != nil {
					c.dirty.Store(true)
					return err
				}
			}
		}
	}
	return nil
}

// localNewer is the record to push when the entry knows better than the
// shared record rec (nil: none stored): its own trip is newer or longer,
// or it recovered after the stored trip. Forced opens are an operator's
// local decision and are never pushed.
func (c *Cluster) localNewer(m *member, rec *Record) *Record {
	v := m.Entry.SharedView()
	if v.Forced || v.Indefinite {
		return nil
	}
	if v.Open && v.Remote == "" {
		at := v.TrippedAt
		if at.IsZero() { // restored from the state file: when is unknown
			at = time.Now()
		}
		if rec == nil || (rec.Open() && rec.CooldownUntil != nil && v.Until.After(*rec.CooldownUntil)) ||
			(!rec.Open() && !v.TrippedAt.IsZero() && v.TrippedAt.After(rec.At)) {
			return tripRecord(m.Key, c.replica, at, v.Until, v.Reason, v.ErrorCount)
		}
		return nil
	}
	if !v.Open && rec != nil && rec.Open() && v.ClosedAt.After(rec.At) {
		return closeRecord(m.Key, c.replica, v.ClosedAt)
	}
	return nil
}

func stateName(key string) string { return "gobreaker:state:" + key }
func mutexName(key string) string { return "gobreaker:mutex:" + key }

// write stores rec under its key (unless a newer record is there) and
// publishes it, holding the key's lock (gobreaker's mutex key) so that two
// replicas' read-compare-write do not interleave.
func (c *Cluster) write(rec *Record) error {
	ctx, cancel := context.WithTimeout(c.ctx, 4*c.opts.OpTimeout)
	defer cancel()
	locked := false
	for range 5 { // a few short tries: writers hold the lock for one round trip
		err := c.store.LockContext(ctx, mutexName(rec.Key))
		if err == nil {
			locked = true
			break
		}
		if !errors.Is(err, ErrLocked) {
			return err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if locked {
		defer c.store.UnlockContext(context.WithoutCancel(ctx), mutexName(rec.Key))
	} // else: written without the lock, the newer-wins check below still applies
	old, err := c.store.GetDataContext(ctx, stateName(rec.Key))
	if err != nil {
		return err
	}
	if old != nil {
		if o, err := decodeRecord(old); err == nil {
			if o.At.After(rec.At) {
				c.stale.Add(1)
				return nil // a newer change is there already
			}
			if o.Replica == rec.Replica && o.At.Equal(rec.At) && o.Open() == rec.Open() {
				// this very change, stored and published already: the
				// writer and a resync's push can both carry a fresh trip
				return nil
			}
			rec.Generation = o.Generation + 1
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	pipe := c.rdb.TxPipeline()
	pipe.Set(ctx, c.opts.KeyPrefix+stateName(rec.Key), data, c.store.dataTTL)
	pipe.Publish(ctx, c.channel, data)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	c.published.Add(1)
	return nil
}

// writer writes queued local changes, off the request path.
func (c *Cluster) writer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case rec := <-c.queue:
			if !c.connected.Load() {
				c.dirty.Store(true) // the pull at rejoin pushes it
				continue
			}
			c.mu.RLock()
			m := c.members[rec.Key]
			c.mu.RUnlock()
			if m == nil {
				continue // dropped by a reload meanwhile
			}
			if err := c.commit(m, rec); err != nil {
				c.dirty.Store(true)
				c.opFailed(err)
			}
		}
	}
}

// heartbeat writes this replica's view now and then, and resyncs after a
// dropped or failed write.
func (c *Cluster) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if !c.connected.Load() {
				continue
			}
			if c.dirty.Load() {
				c.requestResync()
			}
			c.beat()
		}
	}
}

func (c *Cluster) beat() {
	if c.opts.View == nil {
		return
	}
	data, err := json.Marshal(c.opts.View())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.OpTimeout)
	defer cancel()
	now := time.Now()
	pipe := c.rdb.Pipeline()
	pipe.Set(ctx, c.opts.KeyPrefix+"replica:"+c.replica, data, c.opts.HeartbeatTTL)
	pipe.ZAdd(ctx, c.opts.KeyPrefix+"replicas", redis.Z{Score: float64(now.UnixMilli()), Member: c.replica})
	pipe.ZRemRangeByScore(ctx, c.opts.KeyPrefix+"replicas", "-inf", strconv.FormatInt(now.Add(-c.opts.HeartbeatTTL).UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		c.opFailed(err)
	}
}

// Views reads every live replica's view (this one's included), as each
// wrote it.
func (c *Cluster) Views(ctx context.Context) ([]json.RawMessage, error) {
	if !c.connected.Load() {
		return nil, errors.New("not connected to redis")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*c.opts.OpTimeout)
	defer cancel()
	since := strconv.FormatInt(time.Now().Add(-c.opts.HeartbeatTTL).UnixMilli(), 10)
	// ZRANGEBYSCORE works on every Redis we support; ZRANGE … BYSCORE needs 6.2
	ids, err := c.rdb.ZRangeByScore(ctx, c.opts.KeyPrefix+"replicas", &redis.ZRangeBy{Min: since, Max: "+inf"}).Result()
	if err != nil {
		return nil, c.scrub(err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.opts.KeyPrefix + "replica:" + id
	}
	vals, err := c.getAll(ctx, keys)
	if err != nil {
		return nil, c.scrub(err)
	}
	out := make([]json.RawMessage, 0, len(vals))
	for _, v := range vals {
		if s, ok := v.(string); ok && json.Valid([]byte(s)) {
			out = append(out, json.RawMessage(s))
		}
	}
	return out, nil
}

// ---- connection state ----

// opFailed notes a failed operation; the session restarts (and with it
// the pull and push) if it was up.
func (c *Cluster) opFailed(err error) {
	if c.ctx.Err() != nil {
		return
	}
	c.syncErrors.Add(1)
	err = c.scrub(err)
	c.mu.Lock()
	c.status.lastError, c.status.errorAt = err.Error(), time.Now()
	c.mu.Unlock()
	c.broken.CompareAndSwap(nil, &err)
}

func (c *Cluster) setUp() {
	c.mu.Lock()
	rejoin := c.status.everUp
	c.status.everUp = true
	c.status.downLogged = false
	c.status.since = time.Now()
	c.mu.Unlock()
	c.connected.Store(true)
	c.firstOnce.Do(func() { close(c.firstTry) })
	if rejoin {
		c.log.Info("shared health state: rejoined redis; pulled the cluster's state and pushed ours",
			"redis", c.url, "replica", c.replica)
	} else {
		c.log.Info("shared health state: connected to redis", "redis", c.url, "replica", c.replica)
	}
}

func (c *Cluster) setDown(err error) {
	if err == nil {
		err = errors.New("disconnected")
	}
	err = c.scrub(err)
	wasUp := c.connected.Swap(false)
	c.mu.Lock()
	if wasUp {
		c.status.since = time.Now()
	}
	c.status.lastError, c.status.errorAt = err.Error(), time.Now()
	logIt := !c.status.downLogged
	c.status.downLogged = true
	c.mu.Unlock()
	c.firstOnce.Do(func() { close(c.firstTry) })
	for _, m := range c.snapshotMembers() { // gate decisions pending on Redis: decide locally now
		m.gate.Store(nil)
	}
	if logIt {
		c.log.Warn("shared health state: redis unreachable; each replica uses its local health until it is back",
			"redis", c.url, "replica", c.replica, "error", err.Error())
	}
}

func (c *Cluster) snapshotMembers() []*member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ms := make([]*member, 0, len(c.members))
	for _, m := range c.members {
		ms = append(ms, m)
	}
	return ms
}

// scrub removes the passwords from an error's text.
func (c *Cluster) scrub(err error) error {
	msg := err.Error()
	changed := false
	for _, pw := range c.secrets {
		if strings.Contains(msg, pw) {
			msg, changed = strings.ReplaceAll(msg, pw, "xxxxx"), true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

// Status is the link's state, for diagnostics and metrics: the health
// document's "shared_state".
type Status = api.SharedState

// Status reads the link's state.
func (c *Cluster) Status() Status {
	c.mu.RLock()
	st := Status{Backend: "redis", Mode: modeNames[c.mode], URL: c.url, KeyPrefix: c.opts.KeyPrefix, Since: c.status.since.UTC(),
		LastError: c.status.lastError}
	if !c.status.errorAt.IsZero() {
		at := c.status.errorAt.UTC()
		st.ErrorAt = &at
	}
	c.mu.RUnlock()
	st.Connected = c.connected.Load()
	st.Published, st.Applied, st.Dropped, st.Errors = c.published.Load(), c.applied.Load(), c.dropped.Load(), c.syncErrors.Load()
	st.Queued = len(c.queue)
	st.Quorum = c.quorum()
	st.Votes, st.Confirmed = c.votes.Load(), c.confirmed.Load()
	st.UnconfirmedTrips = c.UnconfirmedTrips()
	return st
}

// quietLogger keeps go-redis's own logging (reconnect chatter while Redis
// is down) out of healproxy's log: the cluster logs each outage once.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
