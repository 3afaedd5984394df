package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/store"
)

// Faults of a batch chunk run by the deployment's server agent
// (docs/batches.md, "On the server's agent"): an agent that stops for good
// mid-chunk, and a live revision that does not accept the agent's token.

// batchZip is n distinct PNGs named 0000.png...
func batchZip(t *testing.T, n int) []byte {
	var entries []zipEntry
	for i := 0; i < n; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%04d.png", i), body: batchPNG(t, i)})
	}
	return makeZip(t, entries)
}

// outputKeys maps each recorded item of the batch to its output key (""
// for a failed one).
func outputKeys(t *testing.T, p *platform.Platform, batchID string) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, status := range []string{"succeeded", "failed"} {
		items, err := p.Store.BatchItems(t.Context(), batchID, status, 0, 10000)
		require.NoError(t, err)
		for _, it := range items {
			out[it.Index] = it.OutputKey
		}
	}
	return out
}

// whoRan counts a batch's succeeded items by who sent them: the agent
// (outputs that are ranges of a result part) or the worker (an output blob
// of its own); failed items (no output) count for neither.
func whoRan(t *testing.T, batchID string, keys map[int]string) (agent, worker int) {
	t.Helper()
	onAgent := regexp.MustCompile(`^batches/` + batchID + `/parts/\d+-\d+/\d+#\d+\+\d+$`)
	onWorker := regexp.MustCompile(`^batches/` + batchID + `/out/\d+$`)
	for i, k := range keys {
		switch {
		case k == "": // failed
		case onAgent.MatchString(k):
			agent++
		case onWorker.MatchString(k):
			worker++
		default:
			t.Fatalf("item %d: output key %q is neither the agent's nor the worker's", i, k)
		}
	}
	return agent, worker
}

// TestBatchAgentGoneMidChunk SIGSTOPs the server's agent mid-chunk and
// leaves it stopped: alive, so nothing restarts it, and silent, as an agent
// whose server is gone or cut off is. With the silence bound at 8 s, the
// worker abandons the chunk's command once the agent has been silent that
// long and sends the items left itself (the local revision outlives its
// agent and still answers): the batch succeeds with every item recorded
// once, the items the agent's parts brought before the stop kept as they
// were. The agent let go afterwards (SIGCONT) hears that its command is
// over and stops: nothing more is recorded and no item changes.
func TestBatchAgentGoneMidChunk(t *testing.T) {
	const bound = 8 * time.Second
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) { o.BatchAgentSilence = bound })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, epTok := walk(t, c, "agentgoneseg", "segmentation", "image")
	const n, conc = 600, 2
	baseline := predictLines(t, data)
	r := postBatch(t, p.APIURL, epTok, "agentgoneseg", batchZip(t, n), conc)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	batchID := r.Str("id")
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	get := r.Str("urls", "get")

	// Stop it once a part of its results is recorded: mid-chunk.
	require.Eventually(t, func() bool { return count(ec.Do(http.MethodGet, get, nil), "done") > 0 }, 2*time.Minute, 20*time.Millisecond)
	agents := agentPIDs(t, id)
	require.Len(t, agents, 1)
	require.NoError(t, syscall.Kill(agents[0], syscall.SIGSTOP))
	stoppedAt := time.Now()
	defer func() { _ = syscall.Kill(agents[0], syscall.SIGCONT) }() // whatever happens
	// What the agent's parts had brought by the stop (a part being
	// uploaded at the stop may still land: read a little later).
	time.Sleep(500 * time.Millisecond)
	atStop := count(ec.Do(http.MethodGet, get, nil), "done")
	require.Less(t, atStop, n, "the agent was stopped mid-chunk")

	fin := waitBatch(t, ec, get, 5*time.Minute)
	ended := time.Since(stoppedAt)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, n, count(fin, "done"), "every item accounted for: %s", fin.Raw)
	require.Equal(t, 0, count(fin, "failed"), string(fin.Raw))

	// The command was abandoned, saying why, within the bound of the
	// agent's silence (which the hub sees within two of its poll periods).
	cmd, err := p.Store.GetAgentCommand(t.Context(), fmt.Sprintf("batch-%s-0-%d", batchID, n))
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, cmd.State)
	require.Contains(t, cmd.Result, "silent for", cmd.Result)
	abandoned := cmd.UpdatedAt.Sub(stoppedAt)
	require.GreaterOrEqual(t, abandoned, bound, "not before the bound")
	// The hub counts an agent running commands silent two of its 5 s poll
	// periods after the poll in progress at the stop ends: up to 15 s.
	require.Less(t, abandoned, bound+30*time.Second, "within the bound once the agent counts as silent")

	keys := outputKeys(t, p, batchID)
	require.Len(t, keys, n)
	byAgent, byWorker := whoRan(t, batchID, keys)
	require.GreaterOrEqual(t, byAgent, atStop, "the items the agent's parts brought stay recorded as they were")
	require.Positive(t, byWorker, "the worker sent what was left")
	t.Logf("FIGURES agent stopped at %d of %d items recorded; command abandoned %v after the stop (bound %v); batch ended %v after the stop; %d items by the agent, %d by the worker",
		atStop, n, abandoned.Round(time.Millisecond), bound, ended.Round(time.Millisecond), byAgent, byWorker)

	// Another batch while the agent is still silent runs on the worker's
	// path at once: no chunk waits out the bound again.
	small := func() (string, time.Duration) {
		t.Helper()
		start := time.Now()
		r := postBatch(t, p.APIURL, epTok, "agentgoneseg", batchZip(t, 20), conc)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
		fin := waitBatch(t, ec, r.Str("urls", "get"), 2*time.Minute)
		require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
		require.Equal(t, 20, count(fin, "done"), string(fin.Raw))
		return r.Str("id"), time.Since(start)
	}
	second, took := small()
	_, err = p.Store.GetAgentCommand(t.Context(), fmt.Sprintf("batch-%s-0-20", second))
	require.ErrorIs(t, err, store.ErrNotFound, "nothing issued to the agent known gone")
	_, byWorker2 := whoRan(t, second, outputKeys(t, p, second))
	require.Equal(t, 20, byWorker2)
	require.Less(t, took, bound, "not held for the bound")

	// Let go, the agent finds its command over and stops: nothing more is
	// recorded, no item changes, and no more predicts are sent.
	require.NoError(t, syscall.Kill(agents[0], syscall.SIGCONT))
	time.Sleep(3 * time.Second)
	after := ec.Do(http.MethodGet, get, nil)
	require.Equal(t, "succeeded", after.Str("status"))
	require.Equal(t, n, count(after, "done"), string(after.Raw))
	require.Equal(t, keys, outputKeys(t, p, batchID), "the agent, back, recorded nothing")
	sent := predictLines(t, data)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, sent, predictLines(t, data), "the agent still sends predicts after it was let go")
	// Sent twice: what the agent had answered but not yet uploaded as a
	// part at the stop (the worker cannot see it), what it had in flight,
	// and what it sent after SIGCONT before its next check.
	t.Logf("FIGURES predicts completed in all: %d for %d items (%d of the first batch, 20 of the second)", sent-baseline, n+20, n)
	require.Equal(t, agents, agentPIDs(t, id), "the same agent process, running again")

	// Polling again, the agent gets the next batch's chunk.
	third, _ := small()
	requireRanOnAgent(t, p, third, 20)
}

// servingRevision reads the agent's state file in agentDir: the revision
// it serves and that revision's process, zero while none serves (a crash
// restart) or the file cannot be read (being replaced).
func servingRevision(agentDir string) (id string, pid int) {
	b, err := os.ReadFile(filepath.Join(agentDir, "state.json"))
	if err != nil {
		return "", 0
	}
	var st struct {
		Serving *struct {
			ID  string `json:"id"`
			PID int    `json:"pid"`
		} `json:"serving"`
	}
	if json.Unmarshal(b, &st) != nil || st.Serving == nil {
		return "", 0
	}
	return st.Serving.ID, st.Serving.PID
}

// TestBatchAgentWithoutTokenFallsBack: a live revision that does not
// accept the agent's token, as one started by an agent older than the
// token is, fails the agent's chunk as a command (not item by item) and
// the worker runs the chunk itself: the batch succeeds with each item
// predicted once. Made for real: the revision's config loses its
// agent_token_sha256 and the revision is SIGKILLed, so the agent's crash
// restart starts it from that config. First batch: the agent sees the
// config without the hash and does not call. Then the hash is put back
// in the config while the running revision still lacks it: the agent calls
// and the revision answers 401 (the second batch).
func TestBatchAgentWithoutTokenFallsBack(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, endpoint, epTok := walk(t, c, "notokenseg", "segmentation", "image")
	hc := endpointClient(t, p)
	agentDir := filepath.Join(data, "servers", id, "agent")
	rev, pid := servingRevision(agentDir)
	require.NotZero(t, pid, "the agent serves a revision")
	cfgPath := filepath.Join(agentDir, "revisions", rev, "config.json")
	orig, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(orig, &cfg))
	require.NotEmpty(t, cfg["agent_token_sha256"], "the agent gave its revision its token's hash")
	delete(cfg, "agent_token_sha256")
	stripped, err := json.Marshal(cfg)
	require.NoError(t, err)
	fi, err := os.Stat(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, stripped, fi.Mode().Perm()))

	// The revision restarted from the config without the hash.
	img := batchPNG(t, 1)
	require.NoError(t, syscall.Kill(-pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		r, newPID := servingRevision(agentDir)
		if r != rev || newPID == pid {
			return false
		}
		req, err := http.NewRequest(http.MethodPost, endpoint+"/predict", bytes.NewReader(img))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("Authorization", "Bearer "+epTok)
		res, err := hc.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, time.Minute, 200*time.Millisecond, "the revision is restarted and serves")

	run := func(name string, wantResult string) {
		t.Helper()
		const n = 30
		before := predictLines(t, data)
		r := postBatch(t, p.APIURL, epTok, "notokenseg", batchZip(t, n), 4)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
		batchID := r.Str("id")
		fin := waitBatch(t, testenv.NewAPIClient(t, p.APIURL, epTok), r.Str("urls", "get"), 3*time.Minute)
		require.Equal(t, "succeeded", fin.Str("status"), "%s: %s", name, fin.Raw)
		require.Equal(t, n, count(fin, "done"), "%s: %s", name, fin.Raw)
		require.Equal(t, 0, count(fin, "failed"), "%s: %s", name, fin.Raw)
		cmd, err := p.Store.GetAgentCommand(t.Context(), fmt.Sprintf("batch-%s-0-%d", batchID, n))
		require.NoError(t, err, "%s: the chunk went to the agent first", name)
		require.Equal(t, store.AgentDone, cmd.State)
		require.Contains(t, cmd.Result, wantResult, "%s: %s", name, cmd.Result)
		byAgent, byWorker := whoRan(t, batchID, outputKeys(t, p, batchID))
		require.Zero(t, byAgent, name)
		require.Equal(t, n, byWorker, "%s: the worker ran the chunk", name)
		require.Equal(t, n, predictLines(t, data)-before, "%s: each item predicted once (401s are not answers)", name)
	}
	run("config without the hash", "without the agent's token")

	require.NoError(t, os.WriteFile(cfgPath, orig, fi.Mode().Perm()))
	run("revision without the hash", "answered 401")
}

// TestBatchDeploymentDeletedMidChunk deletes the deployment while its
// agent runs a batch chunk: the server is released (its agent stopped, its
// credential revoked), which the waiting chunk sees at its next look, not
// after the silence bound (left at its 2 minutes here): it abandons the
// command and the worker's path fails each item left with why (the
// deployment is deleted). The batch ends within seconds with every item
// accounted for: the ones the agent's parts brought stay succeeded.
func TestBatchDeploymentDeletedMidChunk(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, epTok := walk(t, c, "deletedseg", "segmentation", "image")
	const n = 1500
	r := postBatch(t, p.APIURL, epTok, "deletedseg", batchZip(t, n), 1)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	batchID := r.Str("id")
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	require.Eventually(t, func() bool { return count(ec.Do(http.MethodGet, r.Str("urls", "get"), nil), "done") > 0 }, 2*time.Minute, 20*time.Millisecond)

	dr := c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, dr.Status, string(dr.Raw))
	deleted := time.Now()
	var b store.Batch
	require.Eventually(t, func() bool {
		var err error
		b, err = p.Store.BatchByID(t.Context(), batchID)
		return err == nil && b.Finished()
	}, time.Minute, 100*time.Millisecond, "the batch ends")
	ended := time.Since(deleted)

	keys := outputKeys(t, p, batchID)
	require.Len(t, keys, n, "every item accounted for")
	failed, err := p.Store.BatchItems(t.Context(), batchID, "failed", 0, 10000)
	require.NoError(t, err)
	require.NotEmpty(t, failed, "the deletion came mid-chunk")
	for _, it := range failed {
		require.Contains(t, it.Error, "is deleted", "item %d fails saying why", it.Index)
	}
	byAgent, _ := whoRan(t, batchID, keys)
	require.Equal(t, n-len(failed), byAgent, "what succeeded came from the agent's parts")
	cmd, err := p.Store.GetAgentCommand(t.Context(), fmt.Sprintf("batch-%s-0-%d", batchID, n))
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, cmd.State)
	t.Logf("FIGURES deployment deleted mid-batch: the batch ended %s %v after the DELETE answered; %d items by the agent, %d failed; command result %s",
		b.Status, ended.Round(time.Millisecond), byAgent, len(failed), cmd.Result)
	require.Less(t, ended, 30*time.Second, "well within the 2-minute silence bound")
}
