package inference

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killProcess kills the worker's whole process group.
func killProcess(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

// pipeSize is what the worker pipes are grown to: /proc/sys/fs/pipe-max-size's
// default, which unprivileged processes may ask for. 0 keeps the kernel's
// 64 KiB (BenchmarkTransfer compares both).
var pipeSize = 1 << 20

// setPipeSize grows a pipe's kernel buffer (F_SETPIPE_SZ); failure leaves the
// default 64 KiB, which works, only slower.
func setPipeSize(f *os.File, n int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(n))
	})
}

const fSetPipeSz = 1031 // F_SETPIPE_SZ, linux/fcntl.h
