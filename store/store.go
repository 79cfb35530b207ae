// Package store is healproxy's embedded, crash-safe state store (the `state { path = ... }` block).
//
// It keeps two kinds of opaque records in one bbolt file:
//
//   - entries: key → value, the current state written as a whole by [Store.Replace] and read back
//     by [Store.Entries] at start-up (the proxy encodes health state into the values; the store knows
//     nothing about their meaning);
//   - the audit log: an append-only, bounded sequence of records ([Store.AppendAudit], [Store.Audit]).
//
// Crash safety comes from bbolt: every write is one transaction that is fsynced before it returns, and
// a process killed at any moment (kill -9) leaves the last committed transaction readable. A file that
// cannot be trusted (corrupt, truncated, foreign, or written by a newer healproxy) never prevents
// start-up: [Open] verifies the whole file structure with bounds-checked reads before bbolt maps it
// (bbolt itself trusts its pages and would crash the process on a damaged one), moves a bad file
// aside and starts afresh. If the file is damaged underneath a running store, bbolt's faults and
// panics are turned into errors and the store stops persisting until the next start.
//
// bbolt checksums only its meta pages, not the records: a flipped bit inside a value is not
// detected, so the caller must validate what it decodes from [Store.Entries].
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// File format marker, stored in the meta bucket. Version is bumped on incompatible changes; a file
// with another version is set aside rather than misread.
const (
	formatName    = "healproxy-state"
	formatVersion = "1"
)

// DefaultMaxAudit is the number of audit records kept; older ones are dropped as new ones arrive.
const DefaultMaxAudit = 10000

// lockTimeout bounds how long Open waits for the file lock held by another process.
const lockTimeout = time.Second

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	bucketAudit   = []byte("audit")
	keyFormat     = []byte("format")
	keyVersion    = []byte("version")
)

// ErrLocked is wrapped by the error Open returns when another process (typically another healproxy
// with the same state path) holds the file.
var ErrLocked = errors.New("state file is locked by another process")

// Store is an open state file. All methods are safe for concurrent use. A nil *Store is valid and
// means "no persistence": reads return nothing, writes are discarded, Close does nothing; so a
// caller whose Open failed can keep using a nil *Store.
type Store struct {
	path     string
	db       *bolt.DB
	maxAudit int

	mu     sync.Mutex            // serialises Replace and guards last
	last   map[string][]byte     // entries as last written (or read at Open); nil = unknown
	broken atomic.Pointer[error] // set when bbolt faulted or panicked: refuse further work
}

// Open opens (or creates, with missing parent folders at mode 0700 and the file at mode 0600) the
// store at path. logger receives a Warn line whenever a file is set aside; nil means slog.Default().
//
// Open never refuses to start because of the file's content: a corrupt, truncated, empty or foreign
// file (not a bbolt file, or a bbolt file without healproxy's format marker), or one with an
// unsupported format version, is renamed to "<path>.corrupt-<UTC timestamp>" (never deleted) and a
// fresh store is created in its place. A valid bbolt file with no buckets at all (e.g. our own
// creation interrupted by a crash) holds nothing and is initialised in place.
//
// It returns an error only when no usable file can be had: the folder or file cannot be created or
// opened (permissions, read-only file system, path is a directory), or the file is locked by another
// live process (the error wraps [ErrLocked]; Open gives up after about a second). The caller then
// runs without persistence.
func Open(path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if path == "" {
		return nil, errors.New("store: empty path")
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create folder for %s: %w", path, err)
	}

	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created below.
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("store: %s exists and is not a regular file", path)
	default:
		reason, err := inspect(path)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			if err := setAside(path, reason, logger); err != nil {
				return nil, err
			}
		}
	}

	s, reason, err := openRW(path)
	if err == nil && reason != "" {
		// The file changed between inspection and opening, or bbolt failed on it while opening
		// read-write: set it aside once more and start afresh.
		if err = setAside(path, reason, logger); err == nil {
			s, reason, err = openRW(path)
			if err == nil && reason != "" {
				err = fmt.Errorf("store: cannot create a usable state file at %s: %s", path, reason)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openRW opens path read-write, creates the schema when the file is new, and loads the entries.
// A non-empty reason means the file is unusable and was closed (the caller sets it aside).
func openRW(path string) (s *Store, reason string, err error) {
	var file *os.File
	var db *bolt.DB
	reason = guard(func() {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: lockTimeout,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
	})
	if reason != "" {
		if file != nil {
			_ = file.Close() // releases the flock; the mapping of the broken file leaks (rare, one-off)
		}
		return nil, reason, nil
	}
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, "", lockedError(path)
		}
		if isAccessError(err) {
			return nil, "", fmt.Errorf("store: %w", err)
		}
		return nil, "bbolt cannot open it: " + err.Error(), nil
	}
	syncDir(filepath.Dir(path))

	s = &Store{path: path, db: db, maxAudit: DefaultMaxAudit}
	var entries map[string][]byte
	reason = guard(func() {
		err = db.Update(func(tx *bolt.Tx) error {
			if r := schemaProblem(tx); r == "empty" {
				return createSchema(tx)
			} else if r != "" {
				return errSchema(r)
			}
			return nil
		})
		if err == nil {
			entries, err = s.Entries()
		}
	})
	var se errSchema
	switch {
	case reason != "":
	case s.broken.Load() != nil:
		reason = (*s.broken.Load()).Error()
	case errors.As(err, &se):
		reason = string(se)
	case err != nil:
		_ = closeQuietly(db)
		return nil, "", fmt.Errorf("store: initialise %s: %w", path, err)
	}
	if reason != "" {
		_ = closeQuietly(db)
		return nil, reason, nil
	}
	s.last = entries
	return s, "", nil
}

type errSchema string

func (e errSchema) Error() string { return string(e) }

// inspect checks an existing file before it is trusted. It holds bbolt's shared lock meanwhile (so a
// file in use by another healproxy is reported as locked, not judged), verifies the file's structure
// with bounds-checked reads (see verifyFile), then checks the schema and format marker and reads
// every record through bbolt with faults turned into panics. It returns the reason the file is
// unusable ("" if it is fine), or an error when it cannot be inspected at all (locked, permission
// denied).
func inspect(path string) (reason string, err error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	if info.Size() == 0 {
		return "empty file", nil
	}
	var file *os.File
	var db *bolt.DB
	reason = guard(func() {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			ReadOnly: true, // shared lock; reads only the meta pages
			Timeout:  lockTimeout,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
	})
	if reason != "" {
		if file != nil {
			_ = file.Close()
		}
		return reason, nil
	}
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return "", lockedError(path)
		case isAccessError(err):
			return "", fmt.Errorf("store: %w", err)
		case errors.Is(err, berrors.ErrInvalid):
			return "not a bbolt database (no valid meta page)", nil
		case errors.Is(err, berrors.ErrVersionMismatch):
			return "unsupported bbolt format version", nil
		case errors.Is(err, berrors.ErrChecksum):
			return "bbolt meta page checksum mismatch", nil
		}
		return "bbolt cannot open it: " + err.Error(), nil
	}
	defer func() { _ = closeQuietly(db) }()

	ours := [][]byte{bucketAudit, bucketEntries, bucketMeta} // sorted, as bbolt stores them
	reason, top := verifyFile(path, ours)
	if reason != "" {
		return reason, nil
	}
	if len(top) == 0 {
		return "", nil // no bucket at all: initialised in place
	}
	if !slices.Equal(top, []string{string(bucketAudit), string(bucketEntries), string(bucketMeta)}) {
		if len(top) > 10 {
			top = append(top[:10:10], "…")
		}
		return fmt.Sprintf("foreign bbolt file: buckets %q", top), nil
	}
	var verr error
	reason = guard(func() {
		verr = db.View(func(tx *bolt.Tx) error {
			if r := schemaProblem(tx); r != "" {
				return errors.New(r)
			}
			// Read every record, here where a fault is recoverable.
			var sum uint32
			for _, name := range ours {
				if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
					sum ^= crc32.ChecksumIEEE(k) ^ crc32.ChecksumIEEE(v)
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if reason == "" && verr != nil {
		reason = verr.Error()
	}
	return reason, nil
}

// schemaProblem returns "" when tx holds a healproxy store of the supported version, "empty" when
// it holds no bucket at all, and otherwise why the file is not ours.
func schemaProblem(tx *bolt.Tx) string {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error {
			empty = false
			return errors.New("stop")
		})
		if empty {
			return "empty"
		}
		return "foreign bbolt file: no healproxy meta bucket"
	}
	if f := meta.Get(keyFormat); !bytes.Equal(f, []byte(formatName)) {
		return fmt.Sprintf("foreign bbolt file: format marker %q, want %q", truncate(f), formatName)
	}
	if v := meta.Get(keyVersion); !bytes.Equal(v, []byte(formatVersion)) {
		return fmt.Sprintf("unsupported format version %q (this healproxy reads %q)", truncate(v), formatVersion)
	}
	if tx.Bucket(bucketEntries) == nil || tx.Bucket(bucketAudit) == nil {
		return "healproxy state file is missing a bucket"
	}
	return ""
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func createSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, []byte(formatName)); err != nil {
		return err
	}
	if err := meta.Put(keyVersion, []byte(formatVersion)); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketEntries); err != nil {
		return err
	}
	_, err = tx.CreateBucket(bucketAudit)
	return err
}

// guard runs fn with faults on unexpected addresses (SIGBUS/SIGSEGV in bbolt's memory map of a
// damaged file) turned into panics, and recovers any panic into a reason string.
func guard(fn func()) (reason string) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("reading it failed: %v", r)
		}
	}()
	fn()
	return ""
}

// closeQuietly closes db, surviving a panic from a db left in a bad state by a recovered fault.
func closeQuietly(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("close: %v", r)
		}
	}()
	return db.Close()
}

// setAside renames path to "<path>.corrupt-<UTC timestamp>" (with a numeric suffix if that exists).
func setAside(path, reason string, logger *slog.Logger) error {
	base := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = base + "." + strconv.Itoa(i)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("store: state file %s is unusable (%s) and cannot be set aside: %w", path, reason, err)
	}
	syncDir(filepath.Dir(path))
	logger.Warn("state file unusable, set aside; starting with a fresh one",
		"path", path, "moved_to", dst, "reason", reason)
	return nil
}

func lockedError(path string) error {
	return fmt.Errorf("store: %s: %w (is another healproxy running with the same state path?)", path, ErrLocked)
}

func isAccessError(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)
}

// syncDir fsyncs a folder so a created or renamed file survives a power loss (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// do runs fn on the database with faults and panics turned into an error. bbolt trusts its file; if it
// was damaged while open (Open verifies it first), a fault or panic here would otherwise crash the
// proxy. After one, bbolt's in-memory state cannot be trusted: the store refuses further work until
// reopened (Open then sets the damaged file aside).
func (s *Store) do(what string, fn func(db *bolt.DB) error) error {
	if e := s.broken.Load(); e != nil {
		return *e
	}
	var err error
	if reason := guard(func() { err = fn(s.db) }); reason != "" {
		e := fmt.Errorf("store: %s: state file %s is damaged (%s); persistence is off until restart", what, s.path, reason)
		s.broken.CompareAndSwap(nil, &e)
		return e
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// Path returns the file's path ("" for a nil Store).
func (s *Store) Path() string {
	if s == nil {
		return ""
	}
	return s.path
}

// Entries returns every stored entry: key → value. The map and values are the caller's own copies;
// it is empty (not nil) when nothing is stored. A nil Store returns an empty map.
func (s *Store) Entries() (map[string][]byte, error) {
	out := map[string][]byte{}
	if s == nil {
		return out, nil
	}
	err := s.do("read entries", func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
				out[string(k)] = append([]byte{}, v...)
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Replace makes the stored entries exactly entries, in one fsynced transaction: keys absent from the
// map are deleted, so nil or an empty map clears them all. Keys must be non-empty and at most 32 KiB;
// a nil value is stored (and read back) as an empty one. The map is not retained.
//
// Replace compares entries with what it last wrote (or read at Open) and returns without touching
// the disk when nothing changed; otherwise only the changed and removed keys are written. So the
// caller may simply hand over its whole state every second or so, off the request path. Each write
// costs two fdatasyncs (data pages, then the meta page): call it from a background goroutine.
func (s *Store) Replace(entries map[string][]byte) error {
	if s == nil {
		return nil
	}
	for k := range entries {
		if k == "" {
			return errors.New("store: empty entry key")
		}
		if len(k) > bolt.MaxKeySize {
			return fmt.Errorf("store: entry key of %d bytes exceeds %d", len(k), bolt.MaxKeySize)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && sameEntries(s.last, entries) {
		return nil
	}
	// The new "last written" state: unchanged values are shared with the old one, changed ones
	// copied (the caller may reuse its buffers).
	next := make(map[string][]byte, len(entries))
	var put []string
	for k, v := range entries {
		if old, ok := s.last[k]; ok && bytes.Equal(old, v) {
			next[k] = old
			continue
		}
		next[k] = append([]byte{}, v...)
		put = append(put, k)
	}
	err := s.do("replace entries", func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			var del [][]byte
			if s.last != nil {
				// s.last is what the bucket holds: only this process writes it (file lock), and
				// s.last changes only after a commit. Touch just the differences.
				for k := range s.last {
					if _, ok := entries[k]; !ok {
						del = append(del, []byte(k))
					}
				}
			} else {
				// Unknown (a write failed): reconcile with the bucket's actual content.
				c := b.Cursor()
				for k, _ := c.First(); k != nil; k, _ = c.Next() {
					if _, ok := entries[string(k)]; !ok {
						del = append(del, append([]byte{}, k...))
					}
				}
				put = slices.Collect(maps.Keys(entries))
			}
			for _, k := range del {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			slices.Sort(put) // in key order bbolt walks its tree once, not randomly
			for _, k := range put {
				if err := b.Put([]byte(k), next[k]); err != nil {
					return fmt.Errorf("key %q: %w", truncate([]byte(k)), err)
				}
			}
			return nil
		})
	})
	if err != nil {
		s.last = nil
		return err
	}
	s.last = next
	return nil
}

func sameEntries(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		w, ok := a[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// AppendAudit appends one audit record (in its own fsynced transaction, keyed by a sequence number)
// and drops the oldest records beyond the newest DefaultMaxAudit. A nil rec is stored as empty.
func (s *Store) AppendAudit(rec []byte) error {
	if s == nil {
		return nil
	}
	rec = append([]byte{}, rec...)
	return s.do("append audit record", func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			b.FillPercent = 0.9 // keys only ever grow
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), rec); err != nil {
				return err
			}
			if seq <= uint64(s.maxAudit) {
				return nil
			}
			keep := seqKey(seq - uint64(s.maxAudit) + 1) // oldest key kept
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, keep) < 0; k, _ = c.First() {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// Audit returns the newest limit audit records, oldest first (all retained records when limit <= 0).
// The slices are the caller's own copies. A nil Store returns none.
func (s *Store) Audit(limit int) ([][]byte, error) {
	if s == nil {
		return nil, nil
	}
	var out [][]byte
	err := s.do("read audit log", func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketAudit).Cursor()
			for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
				out = append(out, append([]byte{}, v...))
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// Close releases the file and its lock; nothing needs flushing (every write is already durable).
// Later calls on the Store return errors; calling Close again is harmless.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	if s.broken.Load() == nil {
		return s.do("close", func(db *bolt.DB) error { return db.Close() })
	}
	// bbolt failed mid-transaction and may still hold its locks: close in the background and give
	// up after a while rather than hang (the handle is then released at process exit).
	done := make(chan struct{})
	go func() {
		defer close(done)
		guard(func() { _ = s.db.Close() })
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return nil
}
