package workflows

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

func testSpec() spec.Spec {
	return spec.Spec{Name: "Seg", APIName: "seg", Input: spec.Image, Output: spec.Image}.WithDefaults()
}

// outcome is what one update produced.
type outcome struct {
	name     string
	rejected error
	err      error
	state    State
}

// script sends updates one after another (a minute apart in test time) and
// records each outcome.
type script struct {
	env  *testsuite.TestWorkflowEnvironment
	out  []*outcome
	next time.Duration
}

func (s *script) send(name string, arg any) *outcome {
	o := &outcome{name: name}
	s.out = append(s.out, o)
	s.next += time.Minute
	id := name + "-" + s.next.String() // unique: the test env dedups updates by ID
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { o.rejected = err },
			OnComplete: func(r any, err error) {
				o.err = err
				if st, ok := r.(State); ok {
					o.state = st
				}
			},
		}, arg)
	}, s.next)
	return o
}

// state queries the workflow half a minute after the last update sent: the
// state an update left even when the update failed (its result is then an
// error, not the state).
func (s *script) state(t *testing.T) *State {
	st := &State{}
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(st))
	}, s.next+30*time.Second)
	return st
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.RecordState, mock.Anything, mock.Anything).Return(nil)
	return env
}

func mockHappyPath(env *testsuite.TestWorkflowEnvironment) {
	srv := compute.Server{Provider: "local", ID: "d1", Host: "127.0.0.1", Port: 9000, Workdir: "/tmp/d1"}
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(srv, nil).Once()
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(actdef.CertInfo{CertFile: "c", KeyFile: "k", Names: []string{"seg.algocloud.test"}}, nil)
	env.OnActivity(a.FetchCode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.FetchCodeInput) (actdef.CodeInfo, error) {
			return actdef.CodeInfo{Revision: in.Revision, Dir: "/tmp/d1/code", Source: "git", Commit: "abc"}, nil
		})
	env.OnActivity(a.InstallRequirements, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.InstallInput) (actdef.InstallInfo, error) {
			return actdef.InstallInfo{CodeRevision: in.Code.Revision, Python: "/tmp/d1/venv/bin/python"}, nil
		})
	env.OnActivity(a.RunTest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.TestInput) (actdef.TestInfo, error) {
			return actdef.TestInfo{OK: true, CodeRevision: in.Code.Revision, InstallRevision: in.Install.Revision, Summary: "PNG 64x64"}, nil
		})
	env.OnActivity(a.StartService, mock.Anything, mock.Anything).Return(
		actdef.ServiceInfo{Handle: compute.Handle{Name: "live", Address: "127.0.0.1:9000"}, Endpoint: "https://127.0.0.1:9000", CodeRevision: 1}, nil)
	env.OnActivity(a.StopService, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.ReleaseServer, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.MarkDeleted, mock.Anything, mock.Anything).Return(nil)
}

func TestWizardHappyPathAndDelete(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	prov := s.send(UpdateProvision, Empty{})
	code := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	inst := s.send(UpdateInstall, InstallRequest{})
	test := s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{TokenSHA256: "feed"})
	stop := s.send(UpdateStop, Empty{})
	start := s.send(UpdateStart, Empty{})
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}
	require.Equal(t, StepProvisioned, prov.state.Step)
	require.Equal(t, StepCodeFetched, code.state.Step)
	require.Equal(t, StepInstalled, inst.state.Step)
	require.Equal(t, StepTested, test.state.Step)
	require.Equal(t, StepCompleted, done.state.Step)
	require.Equal(t, StatusLive, done.state.Status)
	require.Equal(t, "https://127.0.0.1:9000", done.state.Live.Endpoint)
	require.Equal(t, StatusStopped, stop.state.Status)
	require.Equal(t, StatusLive, start.state.Status)
	require.Equal(t, StatusDeleted, del.state.Status)
	var final State
	require.NoError(t, env.GetWorkflowResult(&final))
	require.Equal(t, StepDeleted, final.Step)
	env.AssertExpectations(t)
}

func TestStepsOutOfOrderAreRejected(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	test := s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{TokenSHA256: "x"})
	code := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateProvision, Empty{})
	again := s.send(UpdateProvision, Empty{})
	noSource := s.send(UpdateFetchCode, FetchCodeRequest{})
	badSpec := s.send(UpdateConfigure, ConfigureRequest{Spec: spec.Spec{Name: "x", APIName: "other", Input: spec.Image, Output: spec.Image}})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	for _, o := range []*outcome{test, done, code, again, noSource, badSpec} {
		require.Error(t, o.rejected, o.name)
		var app *temporal.ApplicationError
		require.True(t, errors.As(o.rejected, &app), o.name)
		require.Equal(t, RejectedErrorType, app.Type(), o.name)
	}
	require.Contains(t, code.rejected.Error(), "provision")
	require.Contains(t, again.rejected.Error(), "already provisioned")
	require.Contains(t, badSpec.rejected.Error(), "api_name cannot change")
}

func TestFailedStepIsRecordedAndRetryable(t *testing.T) {
	env := newEnv(t)
	// Expectations match in order: the failure first, then the happy path.
	env.OnActivity(a.FetchCode, mock.Anything, mock.Anything).Return(actdef.CodeInfo{},
		temporal.NewNonRetryableApplicationError("ref \"nope\" not found", actdef.SourceFailedErrorType, nil)).Once()
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	bad := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "nope"})
	good := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, bad.err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(bad.err, &app))
	require.Equal(t, StepFailedErrorType, app.Type())
	require.Contains(t, bad.err.Error(), `ref "nope" not found`)
	require.NoError(t, good.err)
	require.Nil(t, good.state.LastError, "a later success clears the step's error")
	require.Equal(t, 1, good.state.Code.Revision, "a failed fetch does not use up a revision")
}

func TestFailingTestBlocksComplete(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.RunTest, mock.Anything, mock.Anything).Return(actdef.TestInfo{OK: false, Code: "predict_failed", Message: "boom", Traceback: "Traceback..."}, nil).Once()
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateInstall, InstallRequest{})
	failed := s.send(UpdateTest, TestRequest{})
	afterFail := s.state(t)
	blocked := s.send(UpdateComplete, CompleteRequest{TokenSHA256: "x"})
	passed := s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{TokenSHA256: "x"})
	// New code after completion: the endpoint keeps serving revision 1.
	newCode := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	// A failed test is a failed step: the update fails (the Temporal UI
	// shows it red), its record says ok:false, LastError names it, and the
	// state keeps the result for the wizard's traceback.
	var app *temporal.ApplicationError
	require.True(t, errors.As(failed.err, &app), "a failed test must fail its update: %v", failed.err)
	require.Equal(t, StepFailedErrorType, app.Type())
	require.Equal(t, "test failed: boom", app.Message())
	require.False(t, afterFail.Test.OK)
	require.Equal(t, "Traceback...", afterFail.Test.Traceback)
	require.Equal(t, StepInstalled, afterFail.Step, "a failing test leaves the deployment at the test step")
	last := afterFail.History[len(afterFail.History)-1]
	require.Equal(t, UpdateTest, last.Step)
	require.False(t, last.OK, "the history records the failed test as failed")
	require.Equal(t, "test failed: boom", last.Message)
	require.NotNil(t, afterFail.LastError)
	require.Equal(t, UpdateTest, afterFail.LastError.Step)
	require.Error(t, blocked.rejected)
	require.NoError(t, passed.err)
	require.Nil(t, passed.state.LastError, "a passing test clears the failure")
	require.NoError(t, done.err)
	require.Equal(t, StatusLive, newCode.state.Status)
	require.Equal(t, StepCodeFetched, newCode.state.Step)
	require.Equal(t, 1, newCode.state.Serving.Code.Revision)
}

func TestReconcileSignalRestartsLiveEndpoint(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	for _, n := range []string{UpdateProvision, UpdateFetchCode, UpdateInstall, UpdateTest, UpdateComplete} {
		var arg any = Empty{}
		switch n {
		case UpdateFetchCode:
			arg = FetchCodeRequest{GitURL: "/repo"}
		case UpdateInstall:
			arg = InstallRequest{}
		case UpdateTest:
			arg = TestRequest{}
		case UpdateComplete:
			arg = CompleteRequest{TokenSHA256: "x"}
		}
		s.send(n, arg)
	}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, nil) }, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateDelete, "del", &testsuite.TestUpdateCallback{OnAccept: func() {}, OnReject: func(error) {}, OnComplete: func(any, error) {}}, Empty{})
	}, 20*time.Minute)
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	env.AssertNumberOfCalls(t, "StartService", 2)
}

// New requirements on a live deployment, then a passing test: the endpoint
// still serves the previous install, so the step is tested (Complete next),
// not completed, until Complete serves the new one.
func TestLiveDeploymentIsTestedUntilNewInstallServed(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	s.send(UpdateComplete, CompleteRequest{TokenSHA256: "x"})
	reqs := "scikit-image==0.22\n"
	inst := s.send(UpdateInstall, InstallRequest{RequirementsTxt: &reqs})
	test := s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}
	require.Equal(t, StepInstalled, inst.state.Step)
	require.Equal(t, StatusLive, test.state.Status)
	require.Equal(t, StepTested, test.state.Step, "the endpoint serves install 1, the working copy has install 2")
	require.Equal(t, 1, test.state.Serving.Install.Revision)
	require.Equal(t, StepCompleted, done.state.Step)
	require.Equal(t, 2, done.state.Serving.Install.Revision)
}

// Delete says deleting in the store before its teardown starts (the list
// reads the store; it said live until the end), and its long clean-ups run
// with a heartbeat timeout, so a lost attempt is retried in seconds.
func TestDeleteProjectsDeletingFirstAndHeartbeats(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	var events []string
	env.OnActivity(a.RecordState, mock.Anything, mock.Anything).Return(func(_ context.Context, r actdef.StateRecord) error {
		events = append(events, "record "+r.Status)
		return nil
	})
	// Before mockHappyPath's: expectations match in order.
	env.OnActivity(a.StopService, mock.Anything, mock.Anything).Return(func(context.Context, compute.Handle) error {
		events = append(events, "stop")
		return nil
	})
	mockHappyPath(env)
	heartbeats := map[string]time.Duration{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		heartbeats[info.ActivityType.Name] = info.HeartbeatTimeout
	})
	s := &script{env: env}
	for _, n := range []string{UpdateProvision, UpdateFetchCode, UpdateInstall, UpdateTest, UpdateComplete} {
		var arg any = Empty{}
		switch n {
		case UpdateFetchCode:
			arg = FetchCodeRequest{GitURL: "/repo"}
		case UpdateInstall:
			arg = InstallRequest{}
		case UpdateTest:
			arg = TestRequest{}
		case UpdateComplete:
			arg = CompleteRequest{TokenSHA256: "x"}
		}
		s.send(n, arg)
	}
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, del.err)
	require.Equal(t, StatusDeleted, del.state.Status)
	i := slices.Index(events, "stop")
	require.Positive(t, i, "%v", events)
	require.Equal(t, "record deleting", events[i-1], "deleting is projected before the teardown: %v", events)
	for _, name := range []string{"DeleteBlobs", "UpsertRecord", "StopService", "ReleaseServer"} {
		require.Positive(t, heartbeats[name], "%s runs without a heartbeat timeout", name)
	}
}

// An edit is accepted only of the current revision: an edit of an older one
// (someone else fetched or edited since) is rejected, as is an edit with no
// code yet or no changed file.
func TestEditOfStaleRevisionIsRejected(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	early := s.send(UpdateFetchCode, FetchCodeRequest{Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 0}}, Files: []actdef.UploadedFile{{Key: "k", Name: "aai_main.py"}}})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo"})
	stale := s.send(UpdateFetchCode, FetchCodeRequest{Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 1}}, Files: []actdef.UploadedFile{{Key: "k", Name: "aai_main.py"}}})
	empty := s.send(UpdateFetchCode, FetchCodeRequest{Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 2}}})
	both := s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 2}}, Files: []actdef.UploadedFile{{Key: "k", Name: "aai_main.py"}}})
	ok := s.send(UpdateFetchCode, FetchCodeRequest{Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 2}}, Files: []actdef.UploadedFile{{Key: "k", Name: "aai_main.py"}}})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.ErrorContains(t, early.rejected, "no code to edit")
	require.ErrorContains(t, stale.rejected, "edit is of revision 1, the current one is 2")
	require.ErrorContains(t, empty.rejected, "at least one changed file")
	require.ErrorContains(t, both.rejected, "exactly one code source")
	require.NoError(t, ok.rejected)
	require.NoError(t, ok.err)
	require.Equal(t, 3, ok.state.Code.Revision)
}
