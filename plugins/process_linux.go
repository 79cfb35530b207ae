//go:build linux

package plugins

import "syscall"

// selfExe names the running binary for re-executing it as a built-in
// plugin. /proc/self/exe still works after the binary on disk was replaced
// or deleted (an upgrade), where os.Executable's path would not.
func selfExe() string { return "/proc/self/exe" }

// sysProcAttr makes the kernel SIGKILL the plugin when the host dies, even
// by SIGKILL, so plugins are never orphaned. Pdeathsig is tied to the OS
// thread that forked the child; the Go runtime only retires threads of
// goroutines that exit while locked to their thread, which this package
// never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
