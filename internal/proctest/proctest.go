// Package proctest helps tests that drive real processes.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
