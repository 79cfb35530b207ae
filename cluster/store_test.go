package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/healproxy/healproxy/internal/redistest"
)

// storeBackends runs f against a real redis-server and against miniredis
// (in addition, never instead).
func storeBackends(t *testing.T, f func(t *testing.T, rdb *redis.Client)) {
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { rdb.Close() })
		f(t, rdb)
	})
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), Protocol: 2, DisableIdentity: true})
		t.Cleanup(func() { rdb.Close() })
		f(t, rdb)
	})
}

func TestStoreLockUnlock(t *testing.T) {
	storeBackends(t, func(t *testing.T, rdb *redis.Client) {
		a := NewStore(rdb, "t:", 0, time.Minute, 0)
		b := NewStore(rdb, "t:", 0, time.Minute, 0)
		if err := a.Lock("m"); err != nil {
			t.Fatalf("got %v; want the free lock taken", err)
		}
		if err := a.Lock("m"); !errors.Is(err, ErrLocked) {
			t.Fatalf("got %v locking a held lock; want ErrLocked (a try-lock)", err)
		}
		if err := b.Lock("m"); !errors.Is(err, ErrLocked) {
			t.Fatalf("got %v from another store; want ErrLocked", err)
		}
		if err := b.Unlock("m"); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("got %v unlocking another's lock; want ErrNotLocked", err)
		}
		if err := a.Unlock("m"); err != nil {
			t.Fatalf("got %v; want the owner's unlock to work", err)
		}
		if err := a.Unlock("m"); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("got %v unlocking twice; want ErrNotLocked", err)
		}
		if err := b.Lock("m"); err != nil {
			t.Fatalf("got %v; want the released lock free", err)
		}
		if err := b.Lock("other"); err != nil {
			t.Fatalf("got %v; want locks independent by name", err)
		}
	})
}

// TestStoreUnlockLeavesAnExpiredLockTaker: compare-and-delete. A holder
// whose lock expired must not release the lock another took since.
func TestStoreUnlockLeavesAnExpiredLockTaker(t *testing.T) {
	storeBackends(t, func(t *testing.T, rdb *redis.Client) {
		a := NewStore(rdb, "t:", 0, time.Minute, 0)
		b := NewStore(rdb, "t:", 0, time.Minute, 0)
		if err := a.Lock("m"); err != nil {
			t.Fatal(err)
		}
		// the lock expires (simulated: deleted) and b takes it
		if err := rdb.Del(t.Context(), "t:m").Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.Lock("m"); err != nil {
			t.Fatal(err)
		}
		if err := a.Unlock("m"); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("got %v; want ErrNotLocked for a lost lock", err)
		}
		if n, _ := rdb.Exists(t.Context(), "t:m").Result(); n != 1 {
			t.Fatal("the late unlock deleted another holder's lock")
		}
	})
}

func TestStoreLockExpires(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { rdb.Close() })
	s := NewStore(rdb, "t:", 0, 1500*time.Millisecond, 0)
	if err := s.Lock("m"); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(t.Context(), "t:m").Result(); err != nil || ttl <= 0 || ttl > 1500*time.Millisecond {
		t.Fatalf("got lock TTL %v (%v); want (0, 1.5s]", ttl, err)
	}
}

func TestStoreData(t *testing.T) {
	storeBackends(t, func(t *testing.T, rdb *redis.Client) {
		s := NewStore(rdb, "t:", 0, 0, time.Hour)
		b, err := s.GetData("missing")
		if b != nil || err != nil {
			t.Fatalf("got %q, %v for a missing key; want nil, nil (what gobreaker expects)", b, err)
		}
		if err := s.SetData("k", []byte(`{"state":2}`)); err != nil {
			t.Fatal(err)
		}
		if b, err := s.GetData("k"); err != nil || string(b) != `{"state":2}` {
			t.Fatalf("got %q, %v; want the stored data", b, err)
		}
		if v, _ := rdb.Get(t.Context(), "t:k").Result(); v != `{"state":2}` {
			t.Fatalf("got %q under the prefixed key; want the data", v)
		}
	})
}

func TestStoreErrorsWhenRedisIsGone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s := NewStore(rdb, "t:", 200*time.Millisecond, 0, 0)
	srv.Stop()
	if _, err := s.GetData("k"); err == nil {
		t.Fatal("GetData with Redis gone returned no error")
	}
	if err := s.Lock("m"); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("got %v; want a connection error, not ErrLocked", err)
	}
}

// TestRecordReadByGobreaker: the stored record is gobreaker's SharedState,
// so gobreaker's own DistributedCircuitBreaker on the same store sees an
// upstream our replicas tripped as open, and one they closed as closed.
func TestRecordReadByGobreaker(t *testing.T) {
	storeBackends(t, func(t *testing.T, rdb *redis.Client) {
		s := NewStore(rdb, "hp:", 0, 0, 0)
		rec := tripRecord("provider/p/abc", "a", time.Now(), time.Now().Add(time.Hour), "error_count reached error_threshold 3", 3)
		if err := s.SetData(stateName(rec.Key), mustJSON(t, rec)); err != nil {
			t.Fatal(err)
		}
		dcb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](s, gobreaker.Settings{Name: "provider/p/abc", Timeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := dcb.State(); err != nil || st != gobreaker.StateOpen {
			t.Fatalf("got %v, %v; want gobreaker to read the trip as open", st, err)
		}
		if _, err := dcb.Execute(func() (struct{}, error) { return struct{}{}, nil }); !errors.Is(err, gobreaker.ErrOpenState) {
			t.Fatalf("got %v; want ErrOpenState", err)
		}
		closed := closeRecord(rec.Key, "b", time.Now())
		if err := s.SetData(stateName(rec.Key), mustJSON(t, closed)); err != nil {
			t.Fatal(err)
		}
		if st, err := dcb.State(); err != nil || st != gobreaker.StateClosed {
			t.Fatalf("got %v, %v; want closed", st, err)
		}
	})
}
