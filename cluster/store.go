package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Store is gobreaker's SharedDataStore on Redis: Lock is a non-blocking
// try-lock (SET NX PX with a random token), Unlock deletes the lock only
// when it still holds this store's token (compare-and-delete in Lua),
// GetData is GET with a missing key as nil, nil (what gobreaker expects),
// SetData is SET. Every name is prefixed with the key prefix. Every
// operation is bounded by the store's timeout.
//
// Locks are per store, not per goroutine: two goroutines of one process
// locking the same name through one Store exclude each other too.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	lockTTL time.Duration
	dataTTL time.Duration

	mu     sync.Mutex
	tokens map[string]string // name → token of a lock this store holds
}

// Store errors.
var (
	// ErrLocked: Lock found the lock held (by anyone, this store included).
	ErrLocked = errors.New("cluster: lock is held")
	// ErrNotLocked: Unlock of a lock this store does not hold (never
	// taken, or expired and taken by another).
	ErrNotLocked = errors.New("cluster: lock not held")
)

// NewStore returns a store on rdb. timeout bounds each operation (0: 250
// ms); a lock expires after lockTTL (0: 2s) so that a crashed holder
// cannot block others for long; data written by SetData expires after
// dataTTL (0: never).
func NewStore(rdb redis.UniversalClient, prefix string, timeout, lockTTL, dataTTL time.Duration) *Store {
	if timeout <= 0 {
		timeout = 250 * time.Millisecond
	}
	if lockTTL <= 0 {
		lockTTL = 2 * time.Second
	}
	return &Store{rdb: rdb, prefix: prefix, timeout: timeout, lockTTL: lockTTL, dataTTL: dataTTL, tokens: map[string]string{}}
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// Lock takes the lock name, or returns ErrLocked at once when it is held.
func (s *Store) Lock(name string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.LockContext(ctx, name)
}

// LockContext is Lock bounded by ctx.
func (s *Store) LockContext(ctx context.Context, name string) error {
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	ok, err := s.rdb.SetNX(ctx, s.prefix+name, token, s.lockTTL).Result()
	if err != nil {
		return err
	}
	if !ok {
		return ErrLocked
	}
	s.mu.Lock()
	s.tokens[name] = token
	s.mu.Unlock()
	return nil
}

// unlockScript deletes KEYS[1] only while it holds ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Unlock releases a lock this store holds; ErrNotLocked when it holds
// none by that name (or it expired and another took it: that one is left
// alone).
func (s *Store) Unlock(name string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.UnlockContext(ctx, name)
}

// UnlockContext is Unlock bounded by ctx.
func (s *Store) UnlockContext(ctx context.Context, name string) error {
	s.mu.Lock()
	token, ok := s.tokens[name]
	delete(s.tokens, name)
	s.mu.Unlock()
	if !ok {
		return ErrNotLocked
	}
	n, err := unlockScript.Run(ctx, s.rdb, []string{s.prefix + name}, token).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotLocked
	}
	return nil
}

// GetData returns the data stored under name; nil, nil when there is none.
func (s *Store) GetData(name string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.GetDataContext(ctx, name)
}

// GetDataContext is GetData bounded by ctx.
func (s *Store) GetDataContext(ctx context.Context, name string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.prefix+name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// SetData stores data under name.
func (s *Store) SetData(name string, data []byte) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.SetDataContext(ctx, name, data)
}

// SetDataContext is SetData bounded by ctx.
func (s *Store) SetDataContext(ctx context.Context, name string, data []byte) error {
	return s.rdb.Set(ctx, s.prefix+name, data, s.dataTTL).Err()
}

// Interface guards
var _ gobreaker.SharedDataStore = (*Store)(nil)
