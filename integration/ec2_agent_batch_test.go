package integration

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/store"
)

// TestEC2AgentBatch runs a 50-image batch on a live EC2 deployment with the
// instance's agent (the stand-in runs the user data's agent): the chunk is
// one command to that agent, which calls its live revision on the
// instance's loopback, and every output in the zip is byte for byte what a
// synchronous predict of the same input answers through the endpoint.
// Each item's output is a range of a result part the agent uploaded, so
// none was sent by the worker.
func TestEC2AgentBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := newEC2AgentWorld(t, ctx, "ec2batch")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	endpoint, token := e.deploy(t, repo)
	hc := ec2AgentClient(e.p.CA.Pool(), e.si.listen)

	const n = 50
	inputs := map[string][]byte{}
	var entries []zipEntry
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%02d.png", i)
		entries = append(entries, zipEntry{name: name, body: batchPNG(t, i)})
		inputs[strings.TrimSuffix(name, ".png")] = batchPNG(t, i)
	}
	before := time.Now()
	r := postBatch(t, e.p.APIURL, token, "ec2batch", makeZip(t, entries), 4)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	batchID := r.Str("id")
	ec := testenv.NewAPIClient(t, e.p.APIURL, token)
	fin := waitBatch(t, ec, r.Str("urls", "get"), 3*time.Minute)
	took := time.Since(before)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, n, count(fin, "done"), string(fin.Raw))
	require.Equal(t, 0, count(fin, "failed"), string(fin.Raw))

	// The chunk was the instance agent's command, and it succeeded there.
	cmd, err := e.p.Store.GetAgentCommand(t.Context(), fmt.Sprintf("batch-%s-0-%d", batchID, n))
	require.NoError(t, err)
	require.Equal(t, ec2.AgentID(e.id), cmd.ServerID)
	require.Equal(t, store.AgentDone, cmd.State)
	require.Contains(t, cmd.Result, `"ok":true`, cmd.Result)
	requireRanOnAgent(t, e.p, batchID, n)

	status, zb := getRaw(t, e.p.APIURL, token, r.Str("urls", "output"))
	require.Equal(t, http.StatusOK, status, string(zb))
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	require.NoError(t, err)
	require.Len(t, zr.File, n)
	for _, f := range zr.File {
		in, ok := inputs[strings.TrimSuffix(f.Name, ".png")]
		require.True(t, ok, "output %s names its input", f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		res, want := predict(t, hc, endpoint, token, in)
		require.Equal(t, http.StatusOK, res.StatusCode, string(want))
		require.Equal(t, want, got, "%s equals a synchronous predict", f.Name)
	}
	t.Logf("FIGURES EC2 agent batch: %d items at concurrency 4 in %v (create to succeeded, polled every 200 ms)", n, took.Round(time.Millisecond))
}
