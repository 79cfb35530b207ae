// Command healproxy is a self-healing resilience proxy for flaky upstream
// APIs and model backends.
//
//	healproxy [run] [-config FILE] [-listen ADDR]   serve (the default)
//	healproxy validate [-config FILE]               check a config
//	healproxy plugin NAME                           serve a built-in model plugin (internal)
//	healproxy version                               print the version
//	healproxy chaos -url URL [flags]                rehearse failures on a running proxy
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/healproxy/healproxy/config"
	"github.com/healproxy/healproxy/internal/gctune"
	"github.com/healproxy/healproxy/internal/httpserver"
	"github.com/healproxy/healproxy/internal/tracing"
	"github.com/healproxy/healproxy/plugins"
	"github.com/healproxy/healproxy/proxy"
)

// version is set at build time with -ldflags "-X main.version=…"; else the
// module version from the build info, else "dev".
var version = ""

func main() {
	// A plugin must not write to stdout before go-plugin's handshake line,
	// so it is dispatched before anything else runs.
	if len(os.Args) >= 2 && os.Args[1] == "plugin" {
		os.Exit(runPlugin(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func runPlugin(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: healproxy plugin NAME (one of: %v)\n", plugins.BuiltinNames())
		return 2
	}
	if err := plugins.ServeBuiltin(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "healproxy plugin:", err)
		return 1
	}
	return 0
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "chaos":
		return cmdChaos(args, stdout, stderr)
	case "plugin-check":
		return cmdPluginCheck(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "healproxy", versionString())
		return 0
	case "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "healproxy: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  healproxy [run] [-config FILE] [-listen ADDR]   serve (default config ./proxy.hcl)
  healproxy validate [-config FILE]               check a config; prints ok or FILE:LINE:COL: problems
  healproxy version                               print the version
  healproxy chaos -url URL [flags]                rehearse failures on a running proxy (see healproxy chaos -h)
  healproxy plugin NAME                           serve a built-in model plugin (used by the proxy itself)
  healproxy plugin-check [flags] -- COMMAND...    start a model plugin, call Info, Health, Predict; report each step
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func loadOptions() config.LoadOptions {
	return config.LoadOptions{BuiltinPlugins: plugins.BuiltinNames()}
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "proxy.hcl", "config file")
	if err := fs.Parse(args); err != nil || strayArgs(fs, stderr) {
		return 2
	}
	cfg, diags := config.Load(*path, loadOptions())
	if cfg == nil || diags.HasErrors() {
		fmt.Fprint(stderr, config.FormatDiagnostics(diags))
		return 1
	}
	if len(diags) > 0 { // warnings
		fmt.Fprint(stderr, config.FormatDiagnostics(diags))
	}
	fmt.Fprintf(stdout, "ok: %s (%d providers, %d models)\n", *path, len(cfg.Providers), len(cfg.Models))
	return 0
}

// strayArgs reports arguments left after fs's flags: "healproxy validate
// x.hcl" would otherwise check ./proxy.hcl and say ok.
func strayArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() == 0 {
		return false
	}
	fmt.Fprintf(stderr, "healproxy %s: unexpected argument %q; give the config file with -config FILE\n", fs.Name(), fs.Arg(0))
	return true
}

// shutdownGrace bounds the wait for in-flight requests on SIGINT/SIGTERM.
const shutdownGrace = 8 * time.Second

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "proxy.hcl", "config file")
	listen := fs.String("listen", "", "address to listen on (overrides the config's listen)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil || strayArgs(fs, stderr) {
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	log := slog.New(handler)
	slog.SetDefault(log)

	cfg, diags := config.Load(*path, loadOptions())
	if cfg == nil || diags.HasErrors() {
		fmt.Fprint(stderr, config.FormatDiagnostics(diags))
		log.Error("invalid config; not starting", "config", *path)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "error", err)
		return 1
	}
	source := func() (*config.Config, hcl.Diagnostics) {
		cfg, diags := config.Load(*path, loadOptions())
		if cfg != nil && *listen != "" {
			cfg.Listen = *listen
		}
		return cfg, diags
	}
	// Tracing (internal/tracing): off unless the tracing block or the
	// OTEL_* variables ask for it.
	tracer, err := tracing.New(context.Background(), cfg.Tracing, tracing.Options{Version: versionString(), Logger: log})
	if err != nil {
		ln.Close()
		log.Error("cannot start tracing", "error", err)
		return 1
	}
	defer func() {
		tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer tcancel()
		if err := tracer.Shutdown(tctx); err != nil {
			log.Warn("spans still buffered at shutdown were dropped", "error", err)
		}
	}()
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, ConfigSource: source, Tracer: tracer})
	if err != nil {
		ln.Close()
		log.Error("cannot start", "error", err)
		return 1
	}
	// Timeouts, header limit and refusal of ambiguous framing: see
	// httpserver.New and SECURITY.md.
	httpSrv := httpserver.New(srv, slog.NewLogLogger(handler, slog.LevelDebug))

	httpSrv.RegisterOnShutdown(srv.BeginShutdown)

	// A heap floor for the GC (internal/gctune), unless GOGC or
	// GOMEMLIMIT says otherwise.
	gcStop := make(chan struct{})
	defer close(gcStop)
	gctune.Start(2*time.Second, gcStop)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(httpserver.GuardListener(ln)) }()
	log.Info("healproxy listening", "addr", ln.Addr().String(), "config", *path, "version", versionString(),
		"providers", len(cfg.Providers), "models", len(cfg.Models))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	code := 0
loop:
	for {
		select {
		case err := <-serveErr:
			log.Error("server stopped", "error", err)
			code = 1
			break loop
		case <-hup:
			if _, diags := srv.ReloadConfig("SIGHUP"); diags.HasErrors() {
				fmt.Fprint(stderr, config.FormatDiagnostics(diags))
			}
		case <-ctx.Done():
			log.Info("shutting down: finishing in-flight requests", "grace", shutdownGrace)
			break loop
		}
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("in-flight requests cut at the end of the grace period", "error", err)
		httpSrv.Close()
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := srv.Close(cctx); err != nil {
		log.Warn("stopping plugins took too long", "error", err)
	}
	log.Info("stopped")
	return code
}
