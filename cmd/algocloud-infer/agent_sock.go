package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
)

// maxSocketPath is the longest unix socket path bind and connect take
// (sun_path's 108 bytes, its NUL included).
const maxSocketPath = 107

// controlSocket is the address of the control socket in dir: its path, or,
// when that is longer than a unix socket path may be (a deep data folder),
// the same file named through an open descriptor of dir
// (/proc/self/fd/N/agent.sock), which Linux resolves to it. keep must stay
// referenced (open) while the address is used: bind, connect, and the
// listener's unlink at Close.
func controlSocket(dir string) (addr string, keep func() error, err error) {
	path := filepath.Join(dir, "agent.sock")
	if len(path) <= maxSocketPath {
		return path, func() error { return nil }, nil
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("control socket folder %s: %w", dir, err)
	}
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/agent.sock", func() error { return syscall.Close(fd) }, nil
}
