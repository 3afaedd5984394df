package integration

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/workflows"
)

// TestCapturedHistoryReplays walks a full wizard life (with a failed test, a
// redeploy, stop/start and delete) on the embedded server, then replays its
// history with the current workflow code. With ALGOCLOUD_UPDATE_HISTORY=1 it
// refreshes workflows/testdata/deployment_history.json, which the workflows
// package replays on every run to catch non-deterministic changes. The
// fetched history is encrypted by the payload codec: it replays with the
// platform's converters, and is written to testdata decoded (the key of a
// test's data folder is gone after the test).
func TestCapturedHistoryReplays(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, _ := walk(t, c, "replayed", "segmentation", "image")
	for _, s := range []string{"test", "complete", "stop", "start"} {
		r := c.Step(id, s, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
	}
	require.Equal(t, http.StatusConflict, c.Step(id, "start", nil).Status)
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)

	hist := fetchHistory(t, p.Client, workflows.WorkflowID(id))
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	if os.Getenv("ALGOCLOUD_UPDATE_HISTORY") == "1" {
		plain, err := protojson.MarshalOptions{Indent: "  "}.Marshal(decodedHistory(t, p, hist))
		require.NoError(t, err)
		path := filepath.Join(repoRoot(t), "workflows", "testdata", "deployment_history.json")
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, plain, 0o644))
	}
	replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: p.DataConverter, FailureConverter: p.FailureConverter,
	})
	require.NoError(t, err)
	replayer.RegisterWorkflow(workflows.Deployment)
	h, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
}

func fetchHistory(t *testing.T, c sdkclient.Client, workflowID string) *historypb.History {
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	require.NotEmpty(t, h.Events)
	return h
}
