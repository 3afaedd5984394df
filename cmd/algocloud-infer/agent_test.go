package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/revisions"
	"github.com/algocloud/algocloud/internal/testenv"
)

// TestAgentModeControlCommands runs the agent mode and its client forms as
// separate processes (this test binary acting as algocloud-infer): status
// answers, a swap with nothing serving and a bad revision are refused with
// their reason, an unknown command is named, and SIGTERM stops the agent.
// Swaps themselves are tested in agent/revisions (TestAgentKilledMidSwap
// runs this mode too).
func TestAgentModeControlCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	env := append(os.Environ(), "ALGOCLOUD_INFER_AS_MAIN=1")
	agent := exec.Command(os.Args[0], "agent", "--dir", dir, "--listen", addr)
	agent.Env = env
	require.NoError(t, agent.Start())
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	defer func() {
		if agent.ProcessState == nil {
			_ = agent.Process.Kill()
		}
	}()
	client := func(args ...string) (string, error) {
		c := exec.Command(os.Args[0], append([]string{"agent"}, args...)...)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		out, err = client("status", "--dir", dir)
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the agent did not answer: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	var st revisions.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, addr, st.Listen)
	require.Nil(t, st.Serving)

	cfg := filepath.Join(t.TempDir(), "inference.json")
	require.NoError(t, os.WriteFile(cfg, []byte("{}"), 0o600))
	out, err := client("swap", "--dir", dir, "--id", "r1", "--config", cfg)
	require.Error(t, err)
	require.Contains(t, out, `"code":"conflict"`)
	out, err = client("start", "--dir", dir, "--id", "../r1", "--config", cfg)
	require.Error(t, err)
	require.Contains(t, out, `"code":"invalid_revision"`)
	out, err = client("restart", "--dir", dir)
	require.Error(t, err)
	require.Contains(t, out, `unknown agent command "restart"`)

	require.NoError(t, agent.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop on SIGTERM")
	}
}
