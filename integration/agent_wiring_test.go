package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/store"
)

// TestLocalServerRunsItsAgent: with agents on (algocloud dev --agents),
// Provision gives the local server its agent: a credential minted by the
// hub (stored hashed) written 0600 into <server>/agent, and one real
// `algocloud-infer agent` supervised by the local provider (a child of the
// platform) that long-polls the API with it and answers a command through
// RunOnServer. A second provision of the same deployment (a retried step)
// starts no second agent; the provider restarts an agent that dies; Delete
// stops it and revokes the credential.
func TestLocalServerRunsItsAgent(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) { o.Agents = true })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	ctx := context.Background()

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Agent", "api_name": "agent-wiring", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	agentDir := filepath.Join(data, "servers", id, "agent")
	credFile := filepath.Join(agentDir, "credential")
	fi, err := os.Stat(credFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the credential is the agent's alone")
	di, err := os.Stat(agentDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	b, err := os.ReadFile(credFile)
	require.NoError(t, err)
	cred := strings.TrimSpace(string(b))
	require.True(t, strings.HasPrefix(cred, "ag_"), "an agent credential")
	sum := sha256.Sum256([]byte(cred))
	server, err := p.Store.AgentServerByCredential(ctx, hex.EncodeToString(sum[:]))
	require.NoError(t, err, "the hub stores the credential's hash for the server")
	require.Equal(t, id, server)

	// The agent answers through the command channel, with its credential.
	info := probeAgent(t, p.Client, id, id+".probe.1")
	require.Equal(t, id, info["server"])
	pid := int(info["pid"].(float64))
	require.Equal(t, os.Getpid(), parentOf(t, pid), "the agent is the local provider's child")
	require.Equal(t, []int{pid}, agentPIDs(t, id), "exactly one agent per server")

	// Killed, the provider starts it again (one, with the same credential).
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		pids := agentPIDs(t, id)
		return len(pids) == 1 && pids[0] != pid
	}, time.Minute, 200*time.Millisecond, "the provider restarts the agent")
	info = probeAgent(t, p.Client, id, id+".probe.2")
	require.Equal(t, id, info["server"])
	pid = int(info["pid"].(float64))

	// Delete: agent stopped, credential revoked, folder gone.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Eventually(t, func() bool { return len(agentPIDs(t, id)) == 0 }, time.Minute, 200*time.Millisecond)
	require.Error(t, syscall.Kill(pid, 0), "the agent is gone")
	_, err = p.Store.AgentServerByCredential(ctx, hex.EncodeToString(sum[:]))
	require.ErrorIs(t, err, store.ErrUnauthorized, "the credential is revoked")
}

// parentOf is pid's parent pid.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no PPid in /proc/%d/status", pid)
	return 0
}

// agentPIDs lists the live `algocloud-infer agent` processes of server.
func agentPIDs(t *testing.T, server string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 2 && args[1] == "agent" && slicesContainsPair(args, "--server", server) && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func slicesContainsPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// TestServerAgentHistory walks provision then delete on a platform with
// agents on and checks the history replays; with
// ALGOCLOUD_CAPTURE_HISTORIES=1 it adds it to the replay corpus
// (server-agent-after.json, or -before.json with the code from before the
// change, which never asked for an agent). It captures before asserting
// what the change decides, so it runs with the old code too.
func TestServerAgentHistory(t *testing.T) {
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.Agents = true })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Agent", "api_name": "agent-history", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	provisioned := r
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	wfID := "deployment-" + id
	markers := versionMarkers(t, decodedHistory(t, p, fetchHistory(t, p.Client, wfID)))
	name := "server-agent-before.json"
	if slices.Contains(markers, "server-agent") {
		name = "server-agent-after.json"
	}
	h := captureHistory(t, p, wfID, name)
	require.Contains(t, versionMarkers(t, h), "server-agent")
	require.Equal(t, "true", fmt.Sprint(provisioned.Body["state"].(map[string]any)["server"].(map[string]any)["agent"]), string(provisioned.Raw))
}
