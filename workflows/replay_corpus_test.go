package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestReplayHistories replays every history in testdata/histories: each
// workflow.GetVersion change adds the history of a walk through its path
// captured with the code before it (<change-id>-before.json) and after it
// (<change-id>-after.json); none is rewritten. A change that would break a
// running workflow fails here.
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(Deployment)
			r.RegisterWorkflow(RenewCertificates)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
