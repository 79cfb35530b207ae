// Package proctest holds helpers shared by tests: waiting on real
// processes, collecting their output.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// WaitStopped waits until every thread of pid is stopped (state T). SIGSTOP
// takes effect a moment after kill(2) returns, and a call made in between
// may still be answered. Linux only.
func WaitStopped(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pid %d: not stopped within 5s of SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

// Buffer is a bytes.Buffer safe for concurrent writers: a process's
// output or a test logger's records, read by the test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
