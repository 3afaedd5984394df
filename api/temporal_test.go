package api

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/workflows"
)

// overTheWire is err as a client sees it: encoded into a Failure by the
// worker and decoded by the client's failure converter.
func overTheWire(err error) error {
	fc := temporal.GetDefaultFailureConverter()
	return fc.FailureToError(fc.ErrorToFailure(err))
}

func TestConvertError(t *testing.T) {
	rej := temporal.NewApplicationError("Test Code must pass first", workflows.RejectedErrorType, workflows.StepInstalled, workflows.StatusDraft)
	fail := temporal.NewApplicationError("pip: no matching distribution", workflows.StepFailedErrorType, workflows.UpdateInstall)
	for _, tc := range []struct {
		name string
		err  error
		want *StepError
	}{
		{"rejected", rej, &StepError{Kind: StepRejected, Message: "Test Code must pass first", Step: "requirements_installed", Status: "draft"}},
		{"rejected over the wire", overTheWire(rej), &StepError{Kind: StepRejected, Message: "Test Code must pass first", Step: "requirements_installed", Status: "draft"}},
		{"rejected wrapped", fmt.Errorf("update: %w", overTheWire(rej)), &StepError{Kind: StepRejected, Message: "Test Code must pass first", Step: "requirements_installed", Status: "draft"}},
		{"failed", fail, &StepError{Kind: StepFailed, Message: "pip: no matching distribution", Step: "install_requirements"}},
		{"failed over the wire", overTheWire(fail), &StepError{Kind: StepFailed, Message: "pip: no matching distribution", Step: "install_requirements"}},
		{"no details", overTheWire(temporal.NewApplicationError("busy", workflows.RejectedErrorType)), &StepError{Kind: StepRejected, Message: "busy"}},
		{"odd details", overTheWire(temporal.NewApplicationError("busy", workflows.RejectedErrorType, 7, map[string]int{"a": 1})), &StepError{Kind: StepRejected, Message: "busy"}},
		{"odd local details", temporal.NewApplicationError("busy", workflows.RejectedErrorType, 7), &StepError{Kind: StepRejected, Message: "busy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := convertError("update", tc.err)
			var se *StepError
			require.True(t, errors.As(got, &se), "%v", got)
			require.Equal(t, tc.want.Kind, se.Kind)
			require.Equal(t, tc.want.Message, se.Message)
			require.Equal(t, tc.want.Step, se.Step)
			require.Equal(t, tc.want.Status, se.Status)
			require.False(t, errors.Is(got, ErrWorkflowNotFound))
		})
	}

	// Other application errors and transport errors stay what they are.
	for _, err := range []error{
		overTheWire(temporal.NewApplicationError("boom", "SomethingElse")),
		errors.New("connection refused"),
		serviceerror.NewUnavailable("frontend down"),
	} {
		got := convertError("update", err)
		var se *StepError
		require.False(t, errors.As(got, &se), "%v", got)
		require.False(t, errors.Is(got, ErrWorkflowNotFound))
		require.ErrorIs(t, got, err)
	}

	got := convertError("update", serviceerror.NewNotFound("workflow execution already completed"))
	require.ErrorIs(t, got, ErrWorkflowNotFound)
}

// encodedState is a query result as the SDK returns it: a JSON payload.
type encodedState struct{ p *commonpb.Payload }

func (v encodedState) HasValue() bool { return v.p != nil }
func (v encodedState) Get(ptr any) error {
	return converter.GetDefaultDataConverter().FromPayload(v.p, ptr)
}

func TestTemporalWorkflows(t *testing.T) {
	c := mocks.NewClient(t)
	wf := NewTemporalWorkflows(c)
	ctx := t.Context()
	st := workflows.State{DeploymentID: "d1", Step: workflows.StepProvisioned, Status: workflows.StatusDraft}

	// Start: the deployment's ID and task queue, failing on an existing ID,
	// with the search attributes that do not follow the steps.
	run := mocks.NewWorkflowRun(t)
	in := workflows.Input{DeploymentID: "d1", OwnerID: "u1", Spec: spec.Spec{APIName: "seg", Environment: spec.EnvONNX, Compute: spec.GPU}}
	c.On("ExecuteWorkflow", mock.Anything, mock.MatchedBy(func(o client.StartWorkflowOptions) bool {
		sa := o.TypedSearchAttributes
		apiName, _ := sa.GetKeyword(workflows.SearchAPIName)
		owner, _ := sa.GetKeyword(workflows.SearchOwner)
		env, _ := sa.GetKeyword(workflows.SearchEnvironment)
		compute, _ := sa.GetKeyword(workflows.SearchCompute)
		return o.ID == "deployment-d1" && o.TaskQueue == workflows.TaskQueue &&
			o.WorkflowIDConflictPolicy == enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL && o.WorkflowExecutionErrorWhenAlreadyStarted &&
			sa.Size() == 4 && apiName == "seg" && owner == "alice" && env == spec.EnvONNX && compute == spec.GPU
	}), mock.Anything, in).Return(run, nil).Once()
	require.NoError(t, wf.Start(ctx, in, "alice"))

	// Update: waits for completion and decodes the state.
	ok := mocks.NewWorkflowUpdateHandle(t)
	ok.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		*args.Get(1).(*workflows.State) = st
	}).Return(nil).Once()
	c.On("UpdateWorkflow", mock.Anything, mock.MatchedBy(func(o client.UpdateWorkflowOptions) bool {
		return o.WorkflowID == "deployment-d1" && o.UpdateName == workflows.UpdateProvision &&
			o.WaitForStage == client.WorkflowUpdateStageCompleted && len(o.Args) == 1 && o.Args[0] == workflows.Empty{}
	})).Return(ok, nil).Once()
	got, err := wf.Update(ctx, "d1", workflows.UpdateProvision, workflows.Empty{})
	require.NoError(t, err)
	require.Equal(t, st, got)

	// Update: the handle's failure becomes a *StepError.
	bad := mocks.NewWorkflowUpdateHandle(t)
	bad.On("Get", mock.Anything, mock.Anything).
		Return(overTheWire(temporal.NewApplicationError("already provisioned", workflows.RejectedErrorType, "provisioned", "draft"))).Once()
	c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(bad, nil).Once()
	_, err = wf.Update(ctx, "d1", workflows.UpdateProvision, workflows.Empty{})
	var se *StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, StepError{Kind: StepRejected, Message: "already provisioned", Step: "provisioned", Status: "draft", cause: se.cause}, *se)

	// Update: a missing workflow.
	c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("workflow not found for ID: deployment-d2")).Once()
	_, err = wf.Update(ctx, "d2", workflows.UpdateProvision, workflows.Empty{})
	require.ErrorIs(t, err, ErrWorkflowNotFound)

	// State: the query's value.
	p, err := converter.GetDefaultDataConverter().ToPayload(st)
	require.NoError(t, err)
	c.On("QueryWorkflow", mock.Anything, "deployment-d1", "", workflows.QueryState).Return(encodedState{p}, nil).Once()
	got, err = wf.State(ctx, "d1")
	require.NoError(t, err)
	require.Equal(t, st, got)

	c.On("QueryWorkflow", mock.Anything, "deployment-d3", "", workflows.QueryState).Return(nil, serviceerror.NewNotFound("no such workflow")).Once()
	_, err = wf.State(ctx, "d3")
	require.ErrorIs(t, err, ErrWorkflowNotFound)
}
