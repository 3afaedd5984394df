package agenthub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/store"
)

// inferBinary is the real algocloud-infer: $ALGOCLOUD_INFER_BIN when set
// (after ./scripts/build.sh), else built once for the package's tests.
func inferBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ALGOCLOUD_INFER_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "algocloud-infer")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/algocloud/algocloud/cmd/algocloud-infer").CombinedOutput()
	require.NoError(t, err, "go build algocloud-infer: %s", out)
	return bin
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgentBinary: the real `algocloud-infer agent` (credential from a file,
// the platform's CA from a file) answers a workflow's agent.info command
// through the API over TLS; killed (SIGKILL) and started again, it answers
// the next one; given a rotated credential in its file, it takes it. The
// credentials are never in its log.
func TestAgentBinary(t *testing.T) {
	bin := inferBinary(t)
	e := newEnv(t)
	dir := t.TempDir()
	cred := e.mint("srv-bin")
	credFile, caFile, agentDir := filepath.Join(dir, "credential"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "agent")
	port, err := testenv.FindFreePort()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(credFile, []byte(cred+"\n"), 0o600))
	require.NoError(t, os.WriteFile(caFile, e.ca.RootPEM(), 0o644))
	var logs syncBuffer
	startAgent := func() *exec.Cmd {
		// The whole agent mode: the revision supervisor (owning the
		// endpoint's port, no revision yet) and the command channel, its
		// state in <dir>/link.
		cmd := exec.Command(bin, "agent", "--dir", agentDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--platform", "https://"+e.api.addr, "--server", "srv-bin", "--credential-file", credFile, "--ca-file", caFile)
		cmd.Stderr = &logs
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	info := func(id string) map[string]any {
		out, err := e.result(e.start(agenthub.Cmd{Server: "srv-bin", ID: id, Kind: "agent.info", Deployment: e.algID}))
		require.NoError(t, err, "agent log:\n%s", logs.String())
		var m map[string]any
		require.NoError(t, json.Unmarshal(out.Output, &m))
		return m
	}

	agent := startAgent()
	first := info("info-1")
	require.Equal(t, "srv-bin", first["server"])
	require.Equal(t, "1", first["protocol"])
	require.EqualValues(t, agent.Process.Pid, first["pid"])

	require.NoError(t, agent.Process.Kill())
	_, _ = agent.Process.Wait()
	agent = startAgent()
	second := info("info-2")
	require.EqualValues(t, agent.Process.Pid, second["pid"], "the restarted agent answered")
	require.Equal(t, store.AgentDone, e.command("info-2", store.AgentDone).State)
	kept, err := os.ReadDir(filepath.Join(agentDir, "link", "results"))
	require.NoError(t, err)
	require.Len(t, kept, 2, "both answers kept in the agent's folder")

	// Rotation: the platform replaces the credential and the new one is
	// written to the file; the running agent, refused, reads it again.
	rotated := e.mint("srv-bin")
	require.NoError(t, os.WriteFile(credFile, []byte(rotated), 0o600))
	third := info("info-3")
	require.EqualValues(t, agent.Process.Pid, third["pid"], "the same agent, with the new credential")
	require.Contains(t, logs.String(), "using the new one in the credential file")

	evs, err := e.st.ListEvents(context.Background(), e.algID, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 3, "agent log:\n%s", logs.String())
	require.Contains(t, evs[0].Message, "agent of server srv-bin answering info-1")
	for _, c := range []string{cred, rotated} {
		require.NotContains(t, logs.String(), strings.TrimPrefix(c, "ag_"), "the credential is never logged")
	}
}
