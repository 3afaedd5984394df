package batch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/store"
)

// The workflow's shape with its activities replaced by test doubles; the
// integration tests run it against real ones.
func TestBatchWorkflowChunksAndContinuesAsNew(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Batch, workflow.RegisterOptions{Name: WorkflowName})
	a := &Activities{}
	env.RegisterActivity(a)
	var chunks []ChunkInput
	var marks []string
	env.OnActivity(a.MarkBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, in MarkInput) error {
		marks = append(marks, in.Status)
		return nil
	})
	env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).Return(func(_ context.Context, in ChunkInput) (ChunkResult, error) {
		chunks = append(chunks, in)
		return ChunkResult{Succeeded: in.To - in.From}, nil
	})
	env.ExecuteWorkflow(Batch, Input{BatchID: "b", DeploymentID: "d", Total: 25, Concurrency: 4, ChunkSize: 10, ChunksPerRun: 2})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "%v", env.GetWorkflowError())
	require.Equal(t, []ChunkInput{
		{BatchID: "b", DeploymentID: "d", From: 0, To: 10, Concurrency: 4},
		{BatchID: "b", DeploymentID: "d", From: 10, To: 20, Concurrency: 4},
	}, chunks)
	require.Equal(t, []string{store.BatchRunning}, marks)

	// The next run starts at 20, does not mark running again, and ends.
	env = ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Batch, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(a)
	chunks, marks = nil, nil
	env.OnActivity(a.MarkBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, in MarkInput) error {
		marks = append(marks, in.Status)
		return nil
	})
	env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).Return(func(_ context.Context, in ChunkInput) (ChunkResult, error) {
		chunks = append(chunks, in)
		return ChunkResult{}, nil
	})
	env.ExecuteWorkflow(Batch, Input{BatchID: "b", DeploymentID: "d", Total: 25, Concurrency: 4, ChunkSize: 10, ChunksPerRun: 2, Next: 20})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []ChunkInput{{BatchID: "b", DeploymentID: "d", From: 20, To: 25, Concurrency: 4}}, chunks)
	require.Equal(t, []string{store.BatchSucceeded}, marks)
}

func TestBatchWorkflowCancelMarksCanceled(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Batch, workflow.RegisterOptions{Name: WorkflowName})
	a := &Activities{}
	env.RegisterActivity(a)
	var marks []string
	env.OnActivity(a.MarkBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, in MarkInput) error {
		marks = append(marks, in.Status)
		return nil
	})
	env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).After(time.Hour).Return(ChunkResult{}, nil)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(Batch, Input{BatchID: "b", DeploymentID: "d", Total: 5, Concurrency: 1})
	var ce *temporal.CanceledError
	require.True(t, errors.As(env.GetWorkflowError(), &ce), "%v", env.GetWorkflowError())
	require.Equal(t, []string{store.BatchRunning, store.BatchCanceled}, marks)
}

// MarkBatch runs as a local activity (change batch-local-mark), at both
// ends and on the canceled path: no activity task carries it. The
// integration tests run it against the real store and worker.
func TestBatchWorkflowMarksLocally(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(Batch, workflow.RegisterOptions{Name: WorkflowName})
		a := &Activities{}
		env.RegisterActivity(a)
		var local, remote []string
		env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
			local = append(local, info.ActivityType.Name)
		})
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
			remote = append(remote, info.ActivityType.Name)
		})
		var marks []string
		env.OnActivity(a.MarkBatch, mock.Anything, mock.Anything).Return(func(_ context.Context, in MarkInput) error {
			marks = append(marks, in.Status)
			return nil
		})
		if cancel {
			env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).After(time.Hour).Return(ChunkResult{}, nil)
			env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
		} else {
			env.OnActivity(a.RunChunk, mock.Anything, mock.Anything).Return(ChunkResult{Succeeded: 5}, nil)
		}
		env.ExecuteWorkflow(Batch, Input{BatchID: "b", DeploymentID: "d", Total: 5, Concurrency: 1})
		want := store.BatchSucceeded
		if cancel {
			want = store.BatchCanceled
			var ce *temporal.CanceledError
			require.True(t, errors.As(env.GetWorkflowError(), &ce), "%v", env.GetWorkflowError())
		} else {
			require.NoError(t, env.GetWorkflowError())
		}
		require.Equal(t, []string{store.BatchRunning, want}, marks)
		require.Equal(t, []string{"MarkBatch", "MarkBatch"}, local, "cancel %v", cancel)
		require.Equal(t, []string{"RunChunk"}, remote, "cancel %v", cancel)
	}
}
