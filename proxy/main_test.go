package proxy

import (
	"fmt"
	"os"
	"testing"

	"github.com/healproxy/healproxy/plugins"
)

// TestMain lets the test binary serve built-in plugins, as the healproxy
// binary does: model tests start real plugin subprocesses through
// plugins.BuiltinCommand, which re-executes this very binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := plugins.ServeBuiltin(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
