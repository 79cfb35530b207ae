//go:build !linux

package plugins

import (
	"os"
	"syscall"
)

// selfExe names the running binary for re-executing it as a built-in plugin.
func selfExe() string {
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return os.Args[0]
}

// sysProcAttr has no parent-death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup does nothing outside Linux: plugins share healproxy's process
// group there.
func killGroup(int) {}

// onExit does nothing outside Linux.
func onExit(int, func()) {}
