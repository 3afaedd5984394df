package predictions

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/predictions/webhook"
)

// TestReplayPredictionWebhookHistories replays captured Prediction
// histories that start webhook deliveries (testdata/histories/*webhook*.json,
// written by integration's TestPredictionWebhooks with
// ALGOCLOUD_UPDATE_HISTORY=1), so an edit of the workflow that running
// predictions could not replay fails here.
func TestReplayPredictionWebhookHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*webhook*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(Prediction)
			r.RegisterWorkflowWithOptions(webhook.Deliver, workflow.RegisterOptions{Name: webhook.WorkflowType})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
