//go:build !linux

package inference

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killProcess kills the worker process.
func killProcess(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

var pipeSize = 0

// setPipeSize does nothing outside Linux.
func setPipeSize(f *os.File, n int) {}
