package testenv

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStartChild runs real shell processes through the three ways a start
// ends: ready (and later lines still read), exited first, and too slow.
func TestStartChild(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		var mu sync.Mutex
		var lines []string
		c, err := StartChild(exec.Command("sh", "-c", "echo starting; echo ready; echo after; exec sleep 30"), time.Minute,
			func(line string) bool {
				mu.Lock()
				defer mu.Unlock()
				lines = append(lines, line)
				return line == "ready"
			})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(lines) == 3
		}, 10*time.Second, 10*time.Millisecond, "lines after the ready one are read too")
		select {
		case <-c.Done():
			t.Fatal("the child is still running")
		default:
		}
		require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
		<-c.Done()
		require.ErrorContains(t, c.Err(), "signal: killed")
	})
	t.Run("exits first", func(t *testing.T) {
		_, err := StartChild(exec.Command("sh", "-c", "echo not yet; exit 3"), time.Minute,
			func(line string) bool { return line == "ready" })
		require.ErrorContains(t, err, "exited before it was ready (exit status 3)")
	})
	t.Run("too slow", func(t *testing.T) {
		cmd := exec.Command("sleep", "30")
		_, err := StartChild(cmd, 200*time.Millisecond, func(string) bool { return true })
		require.ErrorContains(t, err, "was not ready in 200ms")
		require.NotNil(t, cmd.ProcessState, "killed and waited for, not left running")
	})
}
