// Command faulty is a healproxy model plugin that misbehaves on purpose,
// for the plugin fault suite (proxy/plugin_faults_test.go). It is started
// as
//
//	faulty plugin MODE [ANYTHING…]
//
// (the "plugin" word lets tests find their plugin processes in /proc;
// anything after MODE is ignored, so that models sharing a mode can be told
// apart), and otherwise answers like a tiny sentiment model. Modes:
//
//	ok             behaves
//	crash-start    exits with status 2 before serving
//	crash-call     Predict exits the process with status 3
//	hang           Predict never returns and ignores its context
//	panic          Predict panics (a gRPC handler goroutine: the process dies)
//	garbage-before writes a line to stdout before the handshake
//	garbage-after  writes lines to the real stdout after the handshake, from
//	               every Health and Predict call
//	ignore-term    ignores SIGTERM and SIGINT, and keeps running after the
//	               host's graceful shutdown: only SIGKILL ends it
//	crash-loop     serves, then exits with status 4 after 150ms
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/healproxy/healproxy/plugins"
)

type model struct {
	mode   string
	stdout *os.File // the real stdout, kept from before Serve swapped it
}

func (m model) Predict(ctx context.Context, inputs []string) ([][]plugins.LabelScore, error) {
	switch m.mode {
	case "crash-call":
		os.Exit(3)
	case "hang":
		select {}
	case "panic":
		panic("faulty: panic inside Predict")
	case "garbage-after":
		fmt.Fprintln(m.stdout, "\x00\xffgarbage after the handshake|1|2|tcp|nonsense")
	}
	out := make([][]plugins.LabelScore, len(inputs))
	for i, in := range inputs {
		if strings.Contains(strings.ToLower(in), "moon") {
			out[i] = []plugins.LabelScore{{Label: "bullish", Score: 0.9}, {Label: "bearish", Score: 0.1}}
		} else {
			out[i] = []plugins.LabelScore{{Label: "bearish", Score: 0.6}, {Label: "bullish", Score: 0.4}}
		}
	}
	return out, ctx.Err()
}

func (m model) Info(context.Context) (plugins.Info, error) {
	return plugins.Info{Name: "faulty-" + m.mode, Version: "0", Labels: []string{"bullish", "bearish"}}, nil
}

func (m model) Health(context.Context) error {
	if m.mode == "garbage-after" {
		fmt.Fprintln(m.stdout, "1|1|unix|/nowhere|grpc|") // looks like a handshake line, too late
	}
	return nil
}

func main() {
	if len(os.Args) < 3 || os.Args[1] != "plugin" {
		fmt.Fprintln(os.Stderr, "usage: faulty plugin MODE")
		os.Exit(64)
	}
	m := model{mode: os.Args[2], stdout: os.Stdout}
	if fd, err := syscall.Dup(1); err == nil {
		m.stdout = os.NewFile(uintptr(fd), "stdout")
	}
	switch m.mode {
	case "ok", "crash-call", "hang", "panic", "garbage-after":
	case "crash-start":
		fmt.Fprintln(os.Stderr, "faulty: crashing at start")
		os.Exit(2)
	case "garbage-before":
		fmt.Println("hello from a plugin that prints before its handshake")
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		plugins.Serve(m)
		select {} // the host asked us to stop; we do not
	case "crash-loop":
		time.AfterFunc(150*time.Millisecond, func() { os.Exit(4) })
	default:
		fmt.Fprintln(os.Stderr, "faulty: unknown mode", m.mode)
		os.Exit(64)
	}
	plugins.Serve(m)
}
