package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pageSize converts /proc's page counts to bytes.
var pageSize = int64(os.Getpagesize())

// TreeRSS returns the resident memory in bytes of process pid and all its
// descendants, read from /proc (Linux): each process's resident pages
// from /proc/PID/statm, its children from /proc/PID/task/*/children (or,
// on a kernel without that file, from every process's parent in
// /proc/*/stat). Pages shared between the processes are counted in each,
// as in `ps`. A descendant that exits while being read is skipped; an
// unreadable pid is an error.
func TreeRSS(pid int) (int64, error) {
	total, err := rss(pid)
	if err != nil {
		return 0, err
	}
	children, err := descendants(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children {
		if n, err := rss(c); err == nil {
			total += n
		}
	}
	return total, nil
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("resident memory of pid %d: unexpected /proc statm %q", pid, b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("resident memory of pid %d: %w", pid, err)
	}
	return pages * pageSize, nil
}

// maxDescendants bounds the walk of a process tree.
const maxDescendants = 4096

// descendants lists the processes below pid.
func descendants(pid int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err != nil {
		return descendantsByScan(pid)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < maxDescendants {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue // the task ended
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out, nil
}

// descendantsByScan finds pid's descendants from the parent pid of every
// process.
func descendantsByScan(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	kids := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: the fields
		// start after the last ')'. They are: state, ppid, ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			kids[pp] = append(kids[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < maxDescendants {
		p := queue[0]
		queue = queue[1:]
		out = append(out, kids[p]...)
		queue = append(queue, kids[p]...)
	}
	return out, nil
}
