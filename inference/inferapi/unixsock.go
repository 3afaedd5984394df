package inferapi

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
)

// maxSocketPath is the longest Unix socket path bind and connect take
// (sun_path's 108 bytes, its NUL included).
const maxSocketPath = 107

// ListenUnix listens on the Unix socket path (Config.AgentSocket). A path
// longer than a socket address may be (a deep data folder) is bound through
// an open descriptor of its folder (/proc/self/fd/N/name, which Linux
// resolves to it), kept open until the listener is closed so its unlink at
// Close finds the file.
func ListenUnix(path string) (net.Listener, error) {
	addr, closeDir, err := shortSocketAddr(path)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		closeDir()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &dirListener{Listener: ln, closeDir: closeDir}, nil
}

// DialUnix connects to the Unix socket path, a long one as ListenUnix
// binds it.
func DialUnix(ctx context.Context, path string) (net.Conn, error) {
	addr, closeDir, err := shortSocketAddr(path)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	var d net.Dialer
	return d.DialContext(ctx, "unix", addr)
}

// shortSocketAddr is path itself, or for a long one the same file named
// through a descriptor of its folder; closeDir closes that descriptor.
func shortSocketAddr(path string) (addr string, closeDir func(), err error) {
	if len(path) <= maxSocketPath {
		return path, func() {}, nil
	}
	fd, err := syscall.Open(filepath.Dir(path), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("the socket's folder %s: %w", filepath.Dir(path), err)
	}
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path), func() { _ = syscall.Close(fd) }, nil
}

// dirListener closes the folder's descriptor after the listener (and its
// unlink).
type dirListener struct {
	net.Listener
	closeDir func()
}

func (l *dirListener) Close() error {
	err := l.Listener.Close()
	l.closeDir()
	return err
}
