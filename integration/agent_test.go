package integration

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/payloadcodec"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testpg"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// agentProbe is a workflow of the tests' own (on a task queue of their
// own) whose one activity, RunOnServer, runs on the platform's worker
// (workflows.TaskQueue): the way the Deployment workflow's steps will.
func agentProbe(ctx workflow.Context, in agenthub.Cmd) (agenthub.Outcome, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: workflows.TaskQueue, StartToCloseTimeout: 5 * time.Minute, HeartbeatTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, MaximumInterval: time.Second},
	})
	var out agenthub.Outcome
	err := workflow.ExecuteActivity(ctx, agenthub.ActivityName, in).Get(ctx, &out)
	return out, err
}

// probeAgent runs agentProbe for an agent.info command to server and
// returns the agent's answer.
func probeAgent(t *testing.T, c tclient.Client, server, id string) map[string]any {
	t.Helper()
	queue := "agent-probe-" + t.Name()
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterWorkflow(agentProbe)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: "agent-probe-" + id, TaskQueue: queue}, agentProbe,
		agenthub.Cmd{Server: server, ID: id, Kind: "agent.info"})
	require.NoError(t, err)
	var out agenthub.Outcome
	require.NoError(t, run.Get(ctx, &out))
	var m map[string]any
	require.NoError(t, json.Unmarshal(out.Output, &m))
	return m
}

// startAgent runs the real `algocloud-infer agent` for server against the
// platform at base with credential.
func startAgent(t *testing.T, base, server, credential string) {
	dir := t.TempDir()
	credFile := filepath.Join(dir, "credential")
	require.NoError(t, os.WriteFile(credFile, []byte(credential), 0o600))
	cmd := exec.Command(inferBin, "agent", "--platform", base, "--server", server,
		"--credential-file", credFile, "--state-dir", filepath.Join(dir, "state"))
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
}

// TestAgentChannelInDev: `algocloud dev`'s wiring serves the channel (the
// API under /api/agent/v1, RunOnServer registered on its worker): a
// workflow's command reaches the real agent binary and its answer comes
// back.
func TestAgentChannelInDev(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	cred, err := p.Agents.MintCredential(context.Background(), "dev-server-1")
	require.NoError(t, err)
	startAgent(t, p.APIURL, "dev-server-1", cred)
	info := probeAgent(t, p.Client, "dev-server-1", "dev-probe-1")
	require.Equal(t, "dev-server-1", info["server"])
}

// TestAgentChannelSplitOnPostgres: `algocloud api` and `algocloud worker`
// as separate processes on PostgreSQL: the worker records the command, the
// API (another process, no in-process wake-up) finds it in the store for
// the agent's long poll, and completes the activity with the answer.
func TestAgentChannelSplitOnPostgres(t *testing.T) {
	keyHex := testEncryptionKey(t)
	t.Setenv("ALGOCLOUD_ENCRYPTION_KEY", keyHex)
	key, err := hex.DecodeString(keyHex)
	require.NoError(t, err)
	srv, err := temporaldev.Start(temporaldev.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SearchAttributes: workflows.SearchAttributeTypes()})
	require.NoError(t, err)
	defer srv.Stop()
	dsn := testpg.Start(t)
	apiPort := testenv.FreePort(t)
	common := []string{"--database-url", dsn, "--temporal-address", srv.HostPort(), "--log-level", "info"}
	startProc(t, append([]string{"worker", "--data", t.TempDir(), "--infer-bin", inferBin}, common...)...)
	startProc(t, append([]string{"api", "--data", t.TempDir(), "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort)}, common...)...)

	// Provisioning will mint the credential; here the test does, on the same store.
	st, err := store.Open(context.Background(), dsn)
	require.NoError(t, err)
	defer st.Close()
	hub, err := agenthub.New(agenthub.Config{Store: st, Key: key})
	require.NoError(t, err)
	cred, err := hub.MintCredential(context.Background(), "split-server-1")
	require.NoError(t, err)
	startAgent(t, fmt.Sprintf("http://127.0.0.1:%d", apiPort), "split-server-1", cred)

	codec, err := payloadcodec.FromMasterKeys(key)
	require.NoError(t, err)
	dc := payloadcodec.DataConverter(codec)
	c, err := tclient.Dial(tclient.Options{HostPort: srv.HostPort(), DataConverter: dc, FailureConverter: payloadcodec.FailureConverter(dc)})
	require.NoError(t, err)
	defer c.Close()
	info := probeAgent(t, c, "split-server-1", "split-probe-1")
	require.Equal(t, "split-server-1", info["server"])
	cmd, err := st.GetAgentCommand(context.Background(), "split-probe-1")
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, cmd.State)
}
