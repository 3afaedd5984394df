package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/actdef"
)

// A redeploy through the workflow: each step's state says what serves and
// what is staged, and the store's record carries the same after each step.
func TestServingAndStagedThroughRedeploy(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	var last actdef.StateRecord
	env.OnActivity(a.RecordState, mock.Anything, mock.Anything).Return(func(_ context.Context, r actdef.StateRecord) error {
		last = r
		return nil
	})
	// Before mockHappyPath's (which always says revision 1): the endpoint
	// runs the revision it was given.
	env.OnActivity(a.StartService, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ServiceInput) (actdef.ServiceInfo, error) {
			return actdef.ServiceInfo{Endpoint: "https://127.0.0.1:9000", CodeRevision: in.Code.Revision}, nil
		})
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	code1 := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	live1 := s.send(UpdateComplete, CompleteRequest{TokenSHA256: "x"})
	code2 := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	inst2 := s.send(UpdateInstall, InstallRequest{})
	test2 := s.send(UpdateTest, TestRequest{})
	var atTest2 actdef.StateRecord
	env.RegisterDelayedCallback(func() { atTest2 = last }, s.next+30*time.Second)
	live2 := s.send(UpdateComplete, CompleteRequest{})
	var atLive2 actdef.StateRecord
	env.RegisterDelayedCallback(func() { atLive2 = last }, s.next+30*time.Second)
	stopped := s.send(UpdateStop, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}

	serving, staged := code1.state.ServingAndStaged()
	require.Nil(t, serving, "a draft serves nothing")
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 1, Commit: "abc"}, staged)

	serving, staged = live1.state.ServingAndStaged()
	require.Nil(t, staged, "the working copy is what serves")
	require.Equal(t, 1, serving.CodeRevision)
	require.Equal(t, "abc", serving.Commit)
	require.Equal(t, "git", serving.Source)
	require.Equal(t, 1, serving.InstallRevision)
	require.Equal(t, []string{}, serving.Requirements)
	require.Equal(t, "https://127.0.0.1:9000", serving.Endpoint)
	require.Equal(t, live1.state.Live.Since, serving.Since)
	require.False(t, serving.Since.IsZero())

	serving, staged = code2.state.ServingAndStaged()
	require.Equal(t, 1, serving.CodeRevision, "revision 1 serves while 2 is fetched")
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 2, Commit: "abc"}, staged)
	_, staged = inst2.state.ServingAndStaged()
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 2, Commit: "abc", InstallRevision: 2}, staged)
	serving, staged = test2.state.ServingAndStaged()
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 2, Commit: "abc", InstallRevision: 2, Tested: true, TestPassed: true}, staged)
	require.Equal(t, 1, serving.InstallRevision)
	require.Equal(t, serving, atTest2.Serving, "the store's record carries the same")
	require.Equal(t, staged, atTest2.Staged)

	serving, staged = live2.state.ServingAndStaged()
	require.Nil(t, staged)
	require.Equal(t, 2, serving.CodeRevision)
	require.Equal(t, 2, serving.InstallRevision)
	require.True(t, !serving.Since.Before(live1.state.Live.Since.Add(time.Minute)), "since the second Complete")
	require.Equal(t, serving, atLive2.Serving)
	require.Nil(t, atLive2.Staged)

	serving, staged = stopped.state.ServingAndStaged()
	require.Nil(t, serving, "a stopped endpoint serves nothing")
	require.Nil(t, staged, "Start serves the completed revision again: nothing is staged")
	require.Nil(t, last.Serving, "deleted")
	require.Nil(t, last.Staged)
}

// States the workflow leaves outside the redeploy above: a failed test, a
// spec change that asks for a new test, and states from before Serving.
func TestServingAndStagedEdgeCases(t *testing.T) {
	since := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	code := &actdef.CodeInfo{Revision: 3, Source: "upload"}
	inst := &actdef.InstallInfo{CodeRevision: 3, Revision: 4, Requirements: []string{"numpy"}}
	live := &actdef.ServiceInfo{Endpoint: "https://e", CodeRevision: 3, Since: since}

	failed := State{Status: StatusDraft, Code: code, Install: inst,
		Test: &actdef.TestInfo{OK: false, CodeRevision: 3, InstallRevision: 4}}
	failed.refresh(true)
	serving, staged := failed.ServingAndStaged()
	require.Nil(t, serving)
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 3, InstallRevision: 4, Tested: true}, staged)

	// Threads changed on a live deployment: configure dropped the test, so
	// Complete is due for the same code and install.
	respec := State{Status: StatusLive, Code: code, Install: inst, Live: live,
		Serving: &Serving{Code: *code, Install: *inst}}
	respec.refresh(true)
	require.Equal(t, StepInstalled, respec.Step)
	serving, staged = respec.ServingAndStaged()
	require.Equal(t, &actdef.ServingRevision{CodeRevision: 3, Source: "upload", InstallRevision: 4,
		Requirements: []string{"numpy"}, Since: since, Endpoint: "https://e"}, serving)
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 3, InstallRevision: 4}, staged)

	// Before Serving existed: Live's code revision, and the working copy's
	// code and install when they are that revision.
	legacy := State{Status: StatusLive, Code: code, Install: inst, Live: live,
		Test: &actdef.TestInfo{OK: true, CodeRevision: 3, InstallRevision: 4}}
	legacy.refresh(true)
	serving, staged = legacy.ServingAndStaged()
	require.Nil(t, staged)
	require.Equal(t, 4, serving.InstallRevision)
	legacy.Code = &actdef.CodeInfo{Revision: 5, Commit: "c5"}
	legacy.refresh(true)
	serving, staged = legacy.ServingAndStaged()
	require.Equal(t, 3, serving.CodeRevision)
	require.Empty(t, serving.Commit, "unknown: the working copy moved on")
	require.Equal(t, &actdef.StagedRevision{CodeRevision: 5, Commit: "c5"}, staged)

	deleting := legacy
	deleting.Status = StatusDeleting
	serving, staged = deleting.ServingAndStaged()
	require.Nil(t, serving)
	require.Nil(t, staged)
}
