package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"
)

// A provision that failed for good records no server (its instance may
// still have been launched, the answer lost): Delete sweeps by the
// deployment ID before marking the deployment deleted, and releases
// nothing by server.
func TestDeleteSweepsWhenProvisionFailedForGood(t *testing.T) {
	env := newEnv(t)
	var calls []string
	note := func(s string) func(mock.Arguments) { return func(mock.Arguments) { calls = append(calls, s) } }
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(compute.Server{},
		temporal.NewNonRetryableApplicationError("provision d1: RunInstances answer lost, then UnauthorizedOperation", actdef.BadInputErrorType, nil)).Once().Run(note("provision"))
	env.OnActivity(a.SweepServer, mock.Anything, "d1").Return(nil).Once().Run(note("sweep"))
	env.OnActivity(a.MarkDeleted, mock.Anything, "d1").Return(nil).Once().Run(note("mark-deleted"))

	s := &script{env: env}
	failed := s.send(UpdateProvision, Empty{})
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())

	require.Error(t, failed.err)
	require.Contains(t, failed.err.Error(), "UnauthorizedOperation")
	require.Nil(t, failed.state.Server)
	require.NoError(t, del.rejected)
	require.NoError(t, del.err)
	require.Equal(t, StatusDeleted, del.state.Status)
	require.Equal(t, []string{"provision", "sweep", "mark-deleted"}, calls)
	env.AssertExpectations(t)
	env.AssertActivityNotCalled(t, "ReleaseServer", mock.Anything, mock.Anything)
}

// A sweep that fails keeps the deployment from being marked deleted: the
// Delete step fails and a second Delete sweeps again and finishes.
func TestDeleteSweepFailureIsRetriedByNextDelete(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.SweepServer, mock.Anything, "d1").Return(
		temporal.NewNonRetryableApplicationError("ec2: UnauthorizedOperation", actdef.BadInputErrorType, nil)).Once()
	env.OnActivity(a.SweepServer, mock.Anything, "d1").Return(nil).Once()
	env.OnActivity(a.MarkDeleted, mock.Anything, "d1").Return(nil).Once()

	s := &script{env: env}
	first := s.send(UpdateDelete, Empty{})
	second := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())

	require.Error(t, first.err)
	require.Contains(t, first.err.Error(), "UnauthorizedOperation")
	require.NotEqual(t, StatusDeleted, first.state.Status)
	require.NoError(t, second.err)
	require.Equal(t, StatusDeleted, second.state.Status)
	env.AssertExpectations(t)
}

// A deployment with a recorded server is released by it, not swept.
func TestDeleteWithServerDoesNotSweep(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, del.err)
	require.Equal(t, StatusDeleted, del.state.Status)
	env.AssertActivityCalled(t, "ReleaseServer", mock.Anything, mock.Anything)
	env.AssertActivityNotCalled(t, "SweepServer", mock.Anything, mock.Anything)
}
