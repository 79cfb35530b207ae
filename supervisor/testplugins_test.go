package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/healproxy/healproxy/plugins"
)

// The test plugins this suite's binary serves besides the built-ins, as
// {exe, "plugin", NAME} (see TestMain):
//
//	first  answers every input with the label "first:" + the first input
//	       it ever received and, as score, how many predicts it has
//	       answered: a warm-up shows as the first input. An input "fail"
//	       makes Predict fail.
//	alloc  like first; an input "hog N" starts a child process ("hog")
//	       that holds N MiB of resident memory, and answers once it does.
//	hog    not a plugin: holds $HOG_MIB MiB, prints "ready", and exits
//	       when its stdin closes (its parent died or closed it).
func serveTestPlugin(name string) bool {
	switch name {
	case "first":
		plugins.Serve(&firstModel{})
	case "alloc":
		plugins.Serve(&firstModel{alloc: true})
	case "hog":
		hog()
	default:
		return false
	}
	return true
}

type firstModel struct {
	alloc bool
	mu    sync.Mutex
	first string
	n     int
	hogs  []*exec.Cmd
}

func (f *firstModel) Predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(inputs) > 0 && inputs[0] == "fail" {
		return nil, errors.New("first: asked to fail")
	}
	if f.n == 0 && len(inputs) > 0 {
		f.first = inputs[0]
	}
	f.n++
	if mib, ok := strings.CutPrefix(inputs[0], "hog "); ok && f.alloc {
		if err := f.startHog(mib); err != nil {
			return nil, err
		}
	}
	out := make([][]plugins.LabelScore, len(inputs))
	for i := range inputs {
		out[i] = []plugins.LabelScore{{Label: "first:" + f.first, Score: float64(f.n)}}
	}
	return out, ctx.Err()
}

// startHog starts a hog child and waits until it holds its memory.
func (f *firstModel) startHog(mib string) error {
	cmd := exec.Command("/proc/self/exe", "plugin", "hog")
	cmd.Env = append(os.Environ(), "HOG_MIB="+mib)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if _, err := cmd.StdinPipe(); err != nil { // kept open: closing it ends the hog
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	f.hogs = append(f.hogs, cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("hog: %q, %v", line, err)
	}
	return nil
}

func (f *firstModel) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "first", Version: "0", Labels: []string{"first"}}, nil
}

func (f *firstModel) Health(context.Context) error { return nil }

// hog holds $HOG_MIB MiB of touched memory until stdin closes.
func hog() {
	mib, _ := strconv.Atoi(os.Getenv("HOG_MIB"))
	b := make([]byte, mib<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	b[0] = 2 // keep b alive until here
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
