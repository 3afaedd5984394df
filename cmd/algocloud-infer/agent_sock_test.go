package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A folder too deep for a unix socket path (a data folder under a long
// temporary name) still gets its control socket, in the folder itself,
// and a client reaches it.
func TestControlSocketInADeepFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100), "agent")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	addr, keep, err := controlSocket(dir)
	require.NoError(t, err)
	defer keep()
	require.LessOrEqual(t, len(addr), maxSocketPath)
	ln, err := net.Listen("unix", addr)
	require.NoError(t, err)
	defer ln.Close()
	fi, err := os.Stat(filepath.Join(dir, "agent.sock"))
	require.NoError(t, err, "the socket is in the folder")
	require.Equal(t, os.ModeSocket, fi.Mode().Type())

	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("ok"))
			c.Close()
		}
	}()
	caddr, ckeep, err := controlSocket(dir)
	require.NoError(t, err)
	defer ckeep()
	c, err := net.Dial("unix", caddr)
	require.NoError(t, err)
	b := make([]byte, 2)
	_, err = c.Read(b)
	require.NoError(t, err)
	require.Equal(t, "ok", string(b))
	c.Close()

	short := t.TempDir()
	addr, keep2, err := controlSocket(short)
	require.NoError(t, err)
	defer keep2()
	require.Equal(t, filepath.Join(short, "agent.sock"), addr, "a short path is used as is")
}
