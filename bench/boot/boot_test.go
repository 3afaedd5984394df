package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFreePortAndToken(t *testing.T) {
	port, err := FreePort()
	require.NoError(t, err)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err, "the port FreePort gave is bindable")
	l.Close()

	tok, sum, err := NewToken(16)
	require.NoError(t, err)
	require.Len(t, tok, 32)
	want := sha256.Sum256([]byte(tok))
	require.Equal(t, hex.EncodeToString(want[:]), sum)
	tok2, _, err := NewToken(16)
	require.NoError(t, err)
	require.NotEqual(t, tok, tok2)
}

// TestStopGroup starts a shell that starts a child (as algocloud-infer
// starts Python workers) and ignores SIGTERM: Stop must end both, the
// child through the group, after the grace period.
func TestStopGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p, err := Start(Options{Command: []string{"/bin/sh", "-c",
		fmt.Sprintf("trap '' TERM; sleep 60 & echo $! > %s; echo started; wait", pidFile)}, Group: true})
	require.NoError(t, err)
	var child int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.Nil(t, p.Err())
	took := p.Stop(200 * time.Millisecond)
	require.GreaterOrEqual(t, took, 200*time.Millisecond, "SIGTERM is ignored, so SIGKILL comes after the grace")
	<-p.Done()
	require.Error(t, p.Err(), "killed")
	require.Eventually(t, func() bool { return syscall.Kill(child, 0) != nil }, 5*time.Second, 10*time.Millisecond,
		"the group's other process is gone too")
	require.Equal(t, took, p.Stop(time.Second), "a second Stop returns the first one's figure")
}

// TestStopExited: stopping a process that already exited returns at once.
func TestStopExited(t *testing.T) {
	p, err := Start(Options{Command: []string{"/bin/true"}})
	require.NoError(t, err)
	<-p.Done()
	require.NoError(t, p.Err())
	require.Zero(t, p.Stop(time.Minute))
	_, err = Start(Options{})
	require.ErrorContains(t, err, "no command")
}
