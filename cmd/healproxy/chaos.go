package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/healproxy/healproxy/internal/chaos"
)

// cmdChaos is `healproxy chaos`: rehearse failures against a running
// proxy and print what broke and how fast it healed (internal/chaos).
// Exit 0 when every target was detected and recovered, 1 otherwise, 2 on
// bad usage.
func cmdChaos(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: healproxy chaos -url http://127.0.0.1:7860 [flags]

Rehearses failures on a running healproxy, one target at a time: a fault
on each provider upstream (POST /api/admin/fault, cleared afterwards and
TTL-bounded) and a SIGKILL of each model's plugin (only when the proxy runs
on this machine). For each it prints the time to detect (diagnostics show
it degraded/unavailable), the time to recover (healthy again) and the
errors its own probe requests through the proxy saw. Probes go to your
real upstreams: mind -rate and -path.

flags:
`)
		fs.PrintDefaults()
	}
	var o chaos.Options
	var only string
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:7860", "base URL of the running proxy")
	fs.StringVar(&o.Token, "token", os.Getenv("HEALPROXY_ADMIN_TOKEN"), "admin token (default $HEALPROXY_ADMIN_TOKEN)")
	fs.DurationVar(&o.Hold, "duration", 0, "how long each provider fault stays in place (default 10s)")
	fs.DurationVar(&o.Recover, "recover", 0, "how long to wait for a target to be healthy again (default 2m)")
	fs.StringVar(&only, "only", "", "comma-separated targets: provider/ID, provider/ID/INDEX (0-based upstream), model/KEY (default: all)")
	fs.Float64Var(&o.Rate, "rate", 0, "probe requests per second through the proxy during each rehearsal (default 10)")
	fs.StringVar(&o.Path, "path", "", "path provider probes ask for after /providers/ID (default /)")
	fs.StringVar(&o.Fault.Kind, "fault", "error", "provider fault: error, abort (dropped connection) or delay")
	fs.IntVar(&o.Fault.Status, "status", 0, "status of an error fault (default 503)")
	fs.Int64Var(&o.Fault.DelayMS, "delay-ms", 0, "delay of a delay fault, in milliseconds")
	fs.IntVar(&o.Fault.Percent, "percent", 0, "share of attempts the fault hits, 1-100 (default 100)")
	fs.StringVar(&o.Heal, "heal", "auto", "how targets recover: auto (the proxy's own recovery, self-heal if it would take longer than -recover), always (self-heal), never")
	fs.DurationVar(&o.Poll, "poll", 0, "diagnostics poll interval: the times' resolution (default 50ms)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healproxy chaos: unexpected arguments %q\n", fs.Args())
		return 2
	}
	for t := range strings.SplitSeq(only, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.Only = append(o.Only, t)
		}
	}
	o.Progress = stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, o)
	if rep != nil {
		rep.Write(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "healproxy chaos:", err)
		return 1
	}
	if !rep.OK() {
		fmt.Fprintln(stderr, "healproxy chaos: some targets were not detected or did not recover (see above)")
		return 1
	}
	return 0
}
