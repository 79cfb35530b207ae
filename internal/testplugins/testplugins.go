// Package testplugins lets a test binary serve model plugins, as the
// healproxy binary does; its folders are test plugins built on their own.
package testplugins

import (
	"fmt"
	"os"

	"github.com/healproxy/healproxy/plugins"
)

// ServeIfAsked serves the plugin a test binary was re-executed as,
// {exe, "plugin", NAME}, and exits; otherwise it returns at once. Call it
// first thing in TestMain: plugins.BuiltinCommand re-executes the very
// binary that runs the tests. serve, when not nil, serves the suite's own
// test plugins and reports whether NAME is one; any other NAME is served
// as a built-in, and an unknown one exits with status 1 (a plugin that
// never starts).
func ServeIfAsked(serve func(name string) bool) {
	if len(os.Args) != 3 || os.Args[1] != "plugin" {
		return
	}
	if serve != nil && serve(os.Args[2]) {
		os.Exit(0)
	}
	if err := plugins.ServeBuiltin(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
