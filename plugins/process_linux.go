//go:build linux

package plugins

import (
	"syscall"
	"unsafe"
)

// selfExe names the running binary for re-executing it as a built-in
// plugin. /proc/self/exe still works after the binary on disk was replaced
// or deleted (an upgrade), where os.Executable's path would not.
func selfExe() string { return "/proc/self/exe" }

// sysProcAttr makes the kernel SIGKILL the plugin when the host dies, even
// by SIGKILL, so plugins are never orphaned, and makes the plugin the
// leader of a process group of its own, so that killGroup reaches the
// processes it starts (a Python model's workers, a shell's children).
// Pdeathsig is tied to the OS thread that forked the child; the Go runtime
// only retires threads of goroutines that exit while locked to their
// thread, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup SIGKILLs the process group that the plugin pid leads. onExit
// calls it while the exited plugin is not yet reaped: the pid, and so the
// group id, cannot belong to anyone else then.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Linux's waitid(2) constants (not in package syscall).
const (
	pPID    = 1          // P_PID
	wNoWait = 0x01000000 // WNOWAIT: leave the child waitable
)

// onExit calls fn once child process pid has exited, before it is reaped
// (waitid with WNOWAIT; go-plugin's cmd.Wait reaps it later). If the child
// is reaped first, fn runs at once.
func onExit(pid int, fn func()) {
	go func() {
		var info [128]byte // siginfo_t
		for {
			_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
				uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNoWait, 0, 0)
			if errno != syscall.EINTR {
				break
			}
		}
		fn()
	}()
}
