package batch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/store"
)

// hookEnv is a test environment of the Batch workflow whose activities and
// WebhookDeliver child are test doubles recording what they are given
// (TestBatchWebhooks and TestBatchWebhooksSurviveDevKills in integration
// run the real ones); failChunk makes RunChunk fail for good.
func hookEnv(t *testing.T, failChunk bool, markDelay ...time.Duration) (*testsuite.TestWorkflowEnvironment, *[]webhook.DeliverInput) {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Batch, workflow.RegisterOptions{Name: WorkflowName})
	var sent []webhook.DeliverInput
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in webhook.DeliverInput) (webhook.Result, error) {
		sent = append(sent, in)
		return webhook.Result{}, nil
	}, workflow.RegisterOptions{Name: webhook.WorkflowType})
	a := &Activities{}
	env.RegisterActivity(a)
	mark := env.OnActivity(a.MarkBatch, mock.Anything, mock.Anything)
	if len(markDelay) > 0 {
		// Only the first (running) is slow: a cancel reaches it in flight.
		// Activities run on goroutines of their own: the flag is atomic.
		var slowed atomic.Bool
		mark.Return(func(_ context.Context, in MarkInput) error {
			if in.Status == store.BatchRunning && slowed.CompareAndSwap(false, true) {
				time.Sleep(markDelay[0])
			}
			return nil
		})
	} else {
		mark.Return(nil)
	}
	env.OnActivity(a.RenderBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, id string) ([]byte, error) {
		return []byte(`{"id":"` + id + `"}`), nil
	})
	if failChunk {
		env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).Return(ChunkResult{}, temporal.NewNonRetryableApplicationError("store down", "x", nil))
	} else {
		env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).Return(ChunkResult{}, nil)
	}
	return env, &sent
}

// The first run sends start, a continued run does not, the run that ends
// sends completed (also when the batch failed); the filter and an absent
// webhook send nothing else; each delivery id is <batch>-<event>.
func TestBatchWorkflowWebhookEvents(t *testing.T) {
	in := Input{BatchID: "b", DeploymentID: "d", Total: 20, Concurrency: 1, ChunkSize: 10, ChunksPerRun: 1, Webhook: "https://example.com/h"}
	env, sent := hookEnv(t, false)
	env.ExecuteWorkflow(Batch, in)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "%v", env.GetWorkflowError())
	require.Len(t, *sent, 1)
	require.Equal(t, webhook.DeliverInput{DeliveryID: "b-start", EndpointAlgorithmID: "d", SubjectID: "b", URL: in.Webhook,
		Event: webhook.Event{Type: EventStart, Payload: []byte(`{"id":"b"}`)}}, (*sent)[0])

	next := in
	next.Next = 10
	env, sent = hookEnv(t, true)
	env.ExecuteWorkflow(Batch, next)
	require.Error(t, env.GetWorkflowError(), "the chunk failed")
	require.Len(t, *sent, 1)
	require.Equal(t, "b-completed", (*sent)[0].DeliveryID)
	require.Equal(t, EventCompleted, (*sent)[0].Event.Type)

	only := in
	only.Total, only.WebhookEvents = 5, []string{EventCompleted}
	env, sent = hookEnv(t, false)
	env.ExecuteWorkflow(Batch, only)
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, *sent, 1)
	require.Equal(t, "b-completed", (*sent)[0].DeliveryID)

	none := in
	none.Total, none.Webhook = 5, ""
	env, sent = hookEnv(t, false)
	env.ExecuteWorkflow(Batch, none)
	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, *sent)
}

// A batch canceled before it began running still sends completed (its
// first MarkBatch was canceled in flight).
func TestBatchWorkflowCanceledBeforeStartCompletes(t *testing.T) {
	env, sent := hookEnv(t, false, 2*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Millisecond)
	env.ExecuteWorkflow(Batch, Input{BatchID: "b", DeploymentID: "d", Total: 5, Concurrency: 1, Webhook: "https://example.com/h"})
	var ce *temporal.CanceledError
	require.True(t, errors.As(env.GetWorkflowError(), &ce), "%v", env.GetWorkflowError())
	require.Len(t, *sent, 1)
	require.Equal(t, "b-completed", (*sent)[0].DeliveryID)
}
