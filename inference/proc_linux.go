package inference

import (
	"errors"
	"os/exec"
	"syscall"
)

// setProcAttrs puts the worker in its own process group, so that kill reaches
// what the algorithm spawned and a terminal's Ctrl-C reaches only the server
// (which drains), and kills it when the server dies.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcess kills the worker's whole process group.
func killProcess(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }
