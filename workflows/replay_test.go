package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
)

// TestReplayCapturedHistory replays a whole deployment's life captured on the
// embedded server (integration.TestCapturedHistoryReplays refreshes it). A
// change to the workflow that would break running deployments fails here:
// guard it with workflow.GetVersion instead.
func TestReplayCapturedHistory(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(Deployment)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/deployment_history.json"))
}
