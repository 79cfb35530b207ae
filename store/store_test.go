package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/healproxy/healproxy/internal/proctest"
)

// The test binary doubles as a helper process (re-executed with helperEnv set): "lock" opens the
// store and holds it until stdin closes; "writer" Replaces in a tight loop until killed.
const (
	helperEnv     = "HEALPROXY_STORE_TEST_HELPER"
	helperPathEnv = "HEALPROXY_STORE_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "lock":
		os.Exit(helperLock(os.Getenv(helperPathEnv)))
	case "writer":
		os.Exit(helperWriter(os.Getenv(helperPathEnv)))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

func helperLock(path string) int {
	s, err := Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	return 0
}

// writerSnapshot is iteration i of the writer: a key set whose size depends on i (so keys come
// and go), every value naming i.
func writerSnapshot(i int) map[string][]byte {
	n := 20 + i%37
	m := make(map[string][]byte, n)
	for k := range n {
		m["upstream/"+strconv.Itoa(k)] = fmt.Appendf(nil, "iter=%d key=%d %s", i, k, strings.Repeat("x", 200+i%100))
	}
	return m
}

func helperWriter(path string) int {
	s, err := Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	base := int(time.Now().UnixNano() % 1e9)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
		if err := s.Replace(writerSnapshot(base + i)); err != nil {
			fmt.Fprintln(os.Stderr, "replace:", err)
			return 1
		}
		if i == 0 {
			fmt.Println("started")
		}
	}
	_ = s.Close()
	return 0
}

// helper starts the test binary as a helper process and waits for its first stdout line.
func helper(t *testing.T, mode, path, want string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		if l != want {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("helper %s said %q, want %q", mode, l, want)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper %s did not start", mode)
	}
	return cmd, stdin
}

// logBuf collects log output; safe for concurrent use.
type logBuf = proctest.Buffer

func newLogger() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func mustOpen(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func asideFiles(t testing.TB, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func equalEntries(a, b map[string][]byte) bool { return sameEntries(a, b) }

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpen(t, path)
	if got, err := s.Entries(); err != nil || len(got) != 0 || got == nil {
		t.Fatalf("fresh store Entries = %v, %v; want empty non-nil map", got, err)
	}
	big := make([]byte, 3<<20) // larger than a page, and than bbolt's default mmap step
	_, _ = rand.Read(big)
	want := map[string][]byte{
		"provider/openai":                    []byte(`{"status":"cooldown","until":"2026-01-02T03:04:05Z"}`),
		"model/gpt":                          []byte("counters"),
		"empty":                              {},
		"big":                                big,
		"unicode/é/ключ":                     []byte("v"),
		strings.Repeat("k", bolt.MaxKeySize): []byte("longest key"),
	}
	if err := s.Replace(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path)
	got, err := s.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if !equalEntries(got, want) {
		t.Fatalf("after reopen: %d entries, want %d", len(got), len(want))
	}
	if v := got["empty"]; v == nil || len(v) != 0 {
		t.Fatalf("empty value read back as %#v, want non-nil empty", v)
	}

	// Replace removes keys that are not in the map, and adds and changes others.
	next := map[string][]byte{"model/gpt": []byte("counters-2"), "new": []byte("n")}
	if err := s.Replace(next); err != nil {
		t.Fatal(err)
	}
	// The caller may reuse its buffers: the store must have copied them.
	next["model/gpt"][0] = 'X'
	_ = s.Close()
	s = mustOpen(t, path)
	got, _ = s.Entries()
	if !equalEntries(got, map[string][]byte{"model/gpt": []byte("counters-2"), "new": []byte("n")}) {
		t.Fatalf("after second Replace: %q", got)
	}

	// An empty (or nil) map clears everything.
	if err := s.Replace(map[string][]byte{}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = mustOpen(t, path)
	defer s.Close()
	if got, _ := s.Entries(); len(got) != 0 {
		t.Fatalf("after empty Replace: %q", got)
	}
	if err := s.Replace(map[string][]byte{"": []byte("x")}); err == nil {
		t.Fatal("empty key accepted")
	}
	if err := s.Replace(map[string][]byte{strings.Repeat("k", bolt.MaxKeySize+1): nil}); err == nil {
		t.Fatal("oversized key accepted")
	}
	if asides := asideFiles(t, path); len(asides) != 0 {
		t.Fatalf("a healthy file was set aside: %v", asides)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q", s.Path())
	}
}

func TestReplaceSkipsUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpen(t, path)
	defer s.Close()
	m := writerSnapshot(1)
	if err := s.Replace(m); err != nil {
		t.Fatal(err)
	}
	txBefore := s.db.Stats().TxN
	for range 10 {
		if err := s.Replace(writerSnapshot(1)); err != nil { // equal content, fresh map
			t.Fatal(err)
		}
	}
	if n := s.db.Stats().TxN - txBefore; n != 0 {
		t.Fatalf("unchanged Replace opened %d transactions", n)
	}
	// After a reopen, the state read back counts as "last written".
	_ = s.Close()
	s = mustOpen(t, path)
	txBefore = s.db.Stats().TxN
	if err := s.Replace(m); err != nil {
		t.Fatal(err)
	}
	if s.db.Stats().TxN != txBefore {
		t.Fatal("Replace with the state read at Open wrote")
	}

	// After a failed write the store no longer knows what the file holds (last = nil) and
	// reconciles with the bucket itself: stale keys still go.
	s.mu.Lock()
	s.last = nil
	s.mu.Unlock()
	want := writerSnapshot(2) // fewer keys than writerSnapshot(1)
	if err := s.Replace(want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Entries(); !equalEntries(got, want) {
		t.Fatalf("reconciling Replace left %d keys, want %d", len(got), len(want))
	}
}

func TestNilStore(t *testing.T) {
	var s *Store
	if err := s.Replace(map[string][]byte{"a": nil}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Entries(); err != nil || len(m) != 0 {
		t.Fatal(m, err)
	}
	if err := s.AppendAudit([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Audit(10); err != nil || len(a) != 0 {
		t.Fatal(a, err)
	}
	if s.Path() != "" || s.Close() != nil {
		t.Fatal("nil store Path/Close")
	}
}

func TestAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpen(t, path)
	s.maxAudit = 50
	const n = 137
	for i := range n {
		if err := s.AppendAudit([]byte("rec-" + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store, limit, wantN int) {
		t.Helper()
		got, err := s.Audit(limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != wantN {
			t.Fatalf("Audit(%d) returned %d records, want %d", limit, len(got), wantN)
		}
		for j, rec := range got { // oldest first, ending with the newest
			if want := "rec-" + strconv.Itoa(n-wantN+j); string(rec) != want {
				t.Fatalf("Audit(%d)[%d] = %q, want %q", limit, j, rec, want)
			}
		}
	}
	check(s, 10, 10)
	check(s, 50, 50)
	check(s, 1000, 50) // bounded by maxAudit
	check(s, 0, 50)    // all retained
	err := s.db.View(func(tx *bolt.Tx) error {
		if k := tx.Bucket(bucketAudit).Stats().KeyN; k != 50 {
			return fmt.Errorf("audit bucket holds %d keys, want 50", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s = mustOpen(t, path) // survives a reopen, with the default bound
	defer s.Close()
	check(s, 5, 5)
	check(s, 0, 50)
	if err := s.AppendAudit(nil); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Audit(1)
	if len(got) != 1 || got[0] == nil || len(got[0]) != 0 {
		t.Fatalf("nil record read back as %#v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 30 {
				switch g {
				case 0:
					if err := s.Replace(writerSnapshot(i)); err != nil {
						t.Error(err)
					}
				case 1:
					if err := s.AppendAudit([]byte("a")); err != nil {
						t.Error(err)
					}
				case 2:
					if _, err := s.Entries(); err != nil {
						t.Error(err)
					}
				case 3:
					if _, err := s.Audit(10); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	got, _ := s.Entries()
	if !equalEntries(got, writerSnapshot(29)) {
		t.Fatal("final state is not the last Replace")
	}
}

// validFile builds a healthy store at path with enough data that its pages fill the file.
func validFile(t testing.TB, path string) {
	t.Helper()
	s := mustOpen(t, path)
	m := map[string][]byte{}
	for i := range 2000 {
		m["k"+strconv.Itoa(i)] = bytes.Repeat([]byte{byte(i)}, 300)
	}
	if err := s.Replace(m); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit([]byte("audit")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSetAside(t *testing.T) {
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)

	cases := []struct {
		name   string
		make   func(t *testing.T, path string) // writes the bad file
		reason string                          // substring of the logged reason
	}{
		{"random bytes", func(t *testing.T, path string) { write(t, path, random) }, "not a bbolt database"},
		{"short random", func(t *testing.T, path string) { write(t, path, random[:100]) }, "not a bbolt database"},
		{"empty file", func(t *testing.T, path string) { write(t, path, nil) }, "empty file"},
		{"truncated to half", func(t *testing.T, path string) { validFile(t, path); truncateTo(t, path, -2) }, "truncated"},
		{"truncated to 4KiB", func(t *testing.T, path string) { validFile(t, path); truncateTo(t, path, 4096) }, "reason="},
		{"foreign bbolt", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("someone-else"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Close()
		}, "foreign bbolt file"},
		{"wrong marker", func(t *testing.T, path string) { setMeta(t, path, keyFormat, "other-app") }, "foreign bbolt file"},
		{"future version", func(t *testing.T, path string) { setMeta(t, path, keyVersion, "2") }, "unsupported format version"},
		{"zeroed data pages", func(t *testing.T, path string) {
			validFile(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			clear(b[3*4096:]) // keep the meta (and freelist) pages, wipe the tree
			write(t, path, b)
		}, "reason="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tc.make(t, path)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			logger, logs := newLogger()
			s, err := Open(path, logger)
			if err != nil {
				t.Fatalf("Open refused: %v", err)
			}
			defer s.Close()

			asides := asideFiles(t, path)
			if len(asides) != 1 {
				t.Fatalf("set-aside files: %v (log: %s)", asides, logs)
			}
			if aside, _ := os.ReadFile(asides[0]); !bytes.Equal(aside, orig) {
				t.Fatal("the set-aside file does not hold the original bytes")
			}
			l := logs.String()
			if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "set aside") ||
				!strings.Contains(l, tc.reason) || !strings.Contains(l, asides[0]) {
				t.Fatalf("want a Warn line with reason containing %q and the new name; log:\n%s", tc.reason, l)
			}
			t.Logf("log: %s", strings.TrimSpace(l))

			// The fresh store works and persists.
			if got, _ := s.Entries(); len(got) != 0 {
				t.Fatalf("fresh store has %d entries", len(got))
			}
			want := map[string][]byte{"a": []byte("1")}
			if err := s.Replace(want); err != nil {
				t.Fatal(err)
			}
			if err := s.AppendAudit([]byte("x")); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			s = mustOpen(t, path)
			if got, _ := s.Entries(); !equalEntries(got, want) {
				t.Fatalf("fresh store lost data: %q", got)
			}
			if n := len(asideFiles(t, path)); n != 1 {
				t.Fatalf("fresh store was set aside on reopen (%d files)", n)
			}
		})
	}
}

func TestSetAsideNameCollision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	for i := range 3 {
		write(t, path, []byte("not a database "+strconv.Itoa(i)))
		s := mustOpen(t, path)
		_ = s.Close()
		_ = os.Remove(path)
	}
	if n := len(asideFiles(t, path)); n != 3 {
		t.Fatalf("%d set-aside files, want 3 distinct", n)
	}
}

func TestEmptyBoltInitialisedInPlace(t *testing.T) {
	// What a crash between bbolt's file creation and our schema transaction leaves behind.
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	s := mustOpen(t, path)
	defer s.Close()
	if n := len(asideFiles(t, path)); n != 0 {
		t.Fatal("an empty bbolt file was set aside")
	}
	if err := s.Replace(map[string][]byte{"a": nil}); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateTo truncates path to size bytes, or to 1/-size of its length when size < 0.
func truncateTo(t *testing.T, path string, size int64) {
	t.Helper()
	if size < 0 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size = fi.Size() / -size
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func setMeta(t *testing.T, path string, key []byte, val string) {
	t.Helper()
	validFile(t, path)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(key, []byte(val)) })
	if err != nil {
		t.Fatal(err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd, stdin := helper(t, "lock", path, "ready")
	defer func() {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock helper: %v", err)
		}
	}()

	start := time.Now()
	s, err := Open(path, slog.New(slog.DiscardHandler))
	took := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded on a file held by another process")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another healproxy") {
		t.Fatalf("unclear error: %v", err)
	}
	if took > 2*time.Second {
		t.Fatalf("Open took %v to fail", took)
	}
	t.Logf("Open failed after %v: %v", took.Round(time.Millisecond), err)
	if n := len(asideFiles(t, path)); n != 0 {
		t.Fatal("a locked file was set aside")
	}
}

func TestLockedWithinProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpen(t, path)
	defer s.Close()
	if s2, err := Open(path, nil); !errors.Is(err, ErrLocked) {
		if s2 != nil {
			_ = s2.Close()
		}
		t.Fatalf("second Open in the same process: %v", err)
	}
}

func TestKill9DuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	for round := range 10 {
		cmd, stdin := helper(t, "writer", path, "started")
		time.Sleep(time.Duration(mrand.Int64N(int64(400 * time.Millisecond))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		_ = stdin.Close()
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() {
			t.Fatalf("round %d: writer was not killed (%v): it finished its loop first", round, cmd.ProcessState)
		}

		logger, logs := newLogger()
		s, err := Open(path, logger)
		if err != nil {
			t.Fatalf("round %d: Open after kill -9: %v", round, err)
		}
		if asides := asideFiles(t, path); len(asides) != 0 {
			t.Fatalf("round %d: file set aside after kill -9: %v\n%s", round, asides, logs)
		}
		got, err := s.Entries()
		if err != nil {
			t.Fatal(err)
		}
		iter := -1
		for _, v := range got {
			var i, k int
			if _, err := fmt.Sscanf(string(v), "iter=%d key=%d", &i, &k); err != nil {
				t.Fatalf("round %d: bad value %q", round, v)
			}
			iter = i
			break
		}
		if iter < 0 || !equalEntries(got, writerSnapshot(iter)) {
			t.Fatalf("round %d: entries are not one complete iteration (%d keys, iteration %d)", round, len(got), iter)
		}
		fi, _ := os.Stat(path)
		t.Logf("round %d: consistent snapshot of iteration %d (%d keys), file %d KiB", round, iter, len(got), fi.Size()>>10)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnwritableFolder(t *testing.T) {
	dir := t.TempDir()

	// A parent "folder" that is a regular file: fails even for root.
	file := filepath.Join(dir, "file")
	write(t, file, []byte("x"))
	if s, err := Open(filepath.Join(file, "sub", "state.db"), nil); err == nil {
		_ = s.Close()
		t.Fatal("Open under a regular file succeeded")
	} else {
		t.Logf("under a file: %v", err)
	}

	// A directory where the state file should be.
	if err := os.Mkdir(filepath.Join(dir, "isdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(filepath.Join(dir, "isdir"), nil); err == nil {
		_ = s.Close()
		t.Fatal("Open of a directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "isdir")); err != nil {
		t.Fatal("the directory was moved")
	}

	// A read-only folder (root ignores permissions, so only when they apply).
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o700)
	if f, err := os.Create(filepath.Join(ro, "probe")); err == nil {
		_ = f.Close()
		t.Log("running with permission override (root): read-only folder case skipped")
	} else {
		if s, err := Open(filepath.Join(ro, "state.db"), nil); err == nil {
			_ = s.Close()
			t.Fatal("Open in a read-only folder succeeded")
		} else {
			t.Logf("read-only folder: %v", err)
		}
	}

	// A read-only file system (holds for root too).
	if fi, err := os.Stat("/proc/self"); err == nil && fi.IsDir() {
		if s, err := Open("/proc/self/healproxy-test/state.db", nil); err == nil {
			_ = s.Close()
			t.Fatal("Open on /proc succeeded")
		}
	}
}

func TestCreatesParentFolders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "c", "state.db")
	s := mustOpen(t, path)
	defer s.Close()
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file has mode %v, want 0600", fi.Mode().Perm())
	}
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := func(name string, n, size int) []byte { // a valid store with n entries and 30 audit records
		path := filepath.Join(dir, name)
		s := mustOpen(f, path)
		m := map[string][]byte{}
		for i := range n {
			m["k"+strconv.Itoa(i)] = bytes.Repeat([]byte{byte(i)}, size)
		}
		if err := s.Replace(m); err != nil {
			f.Fatal(err)
		}
		for range 30 {
			_ = s.AppendAudit([]byte("audit"))
		}
		_ = s.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	small := seed("small.db", 3, 20)      // inline buckets
	medium := seed("medium.db", 200, 100) // branch and leaf pages
	f.Add([]byte{})
	f.Add([]byte("hello"))
	for _, b := range [][]byte{small, medium} {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:4096])
		for _, off := range []int{0, 16, 4096 + 20, 2 * 4096, 3*4096 + 40, 5*4096 + 100} {
			m := bytes.Clone(b)
			for i := off; i < off+8 && i < len(m); i++ {
				m[i] ^= 0xA5
			}
			f.Add(m)
		}
	}

	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "state.db")
		write(t, path, content)
		s, err := Open(path, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("Open refused: %v", err)
		}
		defer s.Close()
		asides := asideFiles(t, path)
		if len(asides) > 1 {
			t.Fatalf("%d set-aside files", len(asides))
		}
		if len(asides) == 1 {
			if b, _ := os.ReadFile(asides[0]); !bytes.Equal(b, content) {
				t.Fatal("set-aside file differs from the original")
			}
		}
		// Accepted or fresh, the store must work.
		if _, err := s.Entries(); err != nil {
			t.Fatal(err)
		}
		if err := s.Replace(map[string][]byte{"k": []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Audit(0); err != nil {
			t.Fatal(err)
		}
	})
}

// procWriteBytes reports the bytes this process handed to write(2)/pwrite(2) so far (Linux).
func procWriteBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func BenchmarkReplace(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, mode := range []string{"all-changed", "one-changed", "unchanged"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "state.db")
				s := mustOpen(b, path)
				defer s.Close()
				states := [2]map[string][]byte{}
				for j := range states {
					states[j] = make(map[string][]byte, n)
					for i := range n {
						states[j]["upstream/"+strconv.Itoa(i)] = fmt.Appendf(nil, "%d:%0290d", j, i)
					}
				}
				if err := s.Replace(states[0]); err != nil {
					b.Fatal(err)
				}
				w0, haveW := procWriteBytes()
				i := 0
				b.ResetTimer()
				for b.Loop() {
					i++
					var m map[string][]byte
					switch mode {
					case "all-changed":
						m = states[i%2]
					case "one-changed":
						m = states[0]
						m["upstream/0"] = fmt.Appendf(nil, "%d:%0290d", i, 0)
					case "unchanged":
						m = states[0]
					}
					if err := s.Replace(m); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if w1, ok := procWriteBytes(); ok && haveW {
					b.ReportMetric(float64(w1-w0)/float64(b.N), "written-B/op")
				}
				if fi, err := os.Stat(path); err == nil {
					b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
				}
			})
		}
	}
}

func TestDamagedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	validFile(t, path)
	s := mustOpen(t, path)
	// Someone overwrites the data pages of the live file (bbolt sees it through its memory map).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xFF}, int(fi.Size())-2*4096), 2*4096); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	_, err = s.Entries()
	if err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Entries on a damaged file: %v", err)
	}
	t.Log(err)
	if err := s.Replace(map[string][]byte{"a": nil}); err == nil {
		t.Fatal("Replace on a broken store succeeded")
	}
	if _, err := s.Audit(1); err == nil {
		t.Fatal("Audit on a broken store succeeded")
	}
	_ = s.Close()

	// The next start sets the file aside.
	logger, logs := newLogger()
	s, err = Open(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := len(asideFiles(t, path)); n != 1 {
		t.Fatalf("%d set-aside files; log: %s", n, logs)
	}
}

// Bit flips in a valid file's pages: whatever Open accepts must keep working through heavy writes
// (deletes force bbolt to rebalance, where a damaged tree makes it panic), whatever it rejects is set
// aside. (Run with HEALPROXY_STORE_MUTATIONS=5000 for a longer search.)
func TestMutatedFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	iters := 200
	if n, err := strconv.Atoi(os.Getenv("HEALPROXY_STORE_MUTATIONS")); err == nil {
		iters = n
	}
	dir := t.TempDir()
	var bases [][]byte
	for _, n := range []int{30, 600} {
		path := filepath.Join(dir, "base"+strconv.Itoa(n)+".db")
		s := mustOpen(t, path)
		m := map[string][]byte{}
		for i := range n {
			m["k"+strconv.Itoa(i)] = bytes.Repeat([]byte{byte(i)}, 50+i%200)
		}
		if err := s.Replace(m); err != nil {
			t.Fatal(err)
		}
		for i := range n / 2 {
			_ = s.AppendAudit(bytes.Repeat([]byte{'a'}, i))
		}
		_ = s.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, b)
	}
	r := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	accepted := 0
	for it := range iters {
		base := bases[it%len(bases)]
		c := &checker{r: bytes.NewReader(base), size: int64(len(base)), used: map[uint64]bool{}, free: map[uint64]bool{}}
		if err := c.meta(); err != nil {
			t.Fatal(err)
		}
		used := int(c.hw) * int(c.ps) // mutate pages in use, mostly past the meta pages
		content := bytes.Clone(base)
		for range 1 + r.IntN(4) {
			off := 2*int(c.ps) + r.IntN(used-2*int(c.ps))
			if r.IntN(10) == 0 {
				off = r.IntN(used)
			}
			content[off] ^= byte(1 + r.IntN(255))
		}
		path := filepath.Join(dir, "m"+strconv.Itoa(it)+".db")
		write(t, path, content)
		s, err := Open(path, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("iteration %d: Open refused: %v", it, err)
		}
		if len(asideFiles(t, path)) == 0 {
			accepted++
		}
		e, _ := s.Entries()
		some := map[string][]byte{}
		n := 0
		for k, v := range e {
			if n%3 == 0 {
				some[k] = append(v, 'x')
			}
			n++
		}
		errs := []error{s.Replace(some), s.Replace(writerSnapshot(it)), s.AppendAudit([]byte("x")), s.Replace(nil)}
		_, err = s.Audit(0)
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			_ = os.WriteFile(filepath.Join(os.TempDir(), "healproxy-store-mutation.db"), content, 0o600)
			t.Fatalf("iteration %d: a file Open accepted failed later (saved to %s): %v", it, os.TempDir(), err)
		}
		_ = s.Close()
	}
	t.Logf("%d of %d mutated files accepted (flips in values or free pages are harmless), the rest set aside", accepted, iters)
}
