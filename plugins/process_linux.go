//go:build linux

package plugins

import "syscall"

// selfExe names the running binary for re-executing it as a built-in
// plugin. /proc/self/exe still works after the binary on disk was replaced
// or deleted (an upgrade), where os.Executable's path would not.
func selfExe() string { return "/proc/self/exe" }

// sysProcAttr makes the kernel SIGKILL the plugin when the host dies, even
// by SIGKILL, so plugins are never orphaned, and makes the plugin the
// leader of a process group of its own, so that killGroup reaches the
// processes it starts (a Python model's workers). Pdeathsig is tied to the
// OS thread that forked the child; the Go runtime only retires threads of
// goroutines that exit while locked to their thread, which this package
// never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup SIGKILLs what is left of the process group the plugin pid led.
// It is called right after the plugin has exited, or as it is killed. The
// group id stays the leader's pid while any member lives; once none is left
// the call finds no group (ESRCH), unless in the moments since the reap the
// pid was handed to a new process that made itself a group leader.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
