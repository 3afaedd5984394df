package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/activities"

	"github.com/algocloud/algocloud/activities/actdef"
)

// certLog records IssueCertificate calls and hands out certificates whose
// NotAfter grows by a day with each issue.
type certLog struct {
	mu     sync.Mutex
	calls  []actdef.CertInput
	events []string
	base   time.Time
}

func (c *certLog) add(ev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
}

func (c *certLog) issue(_ context.Context, in actdef.CertInput) (actdef.CertInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, in)
	if in.Force {
		c.events = append(c.events, "renew")
	}
	return actdef.CertInfo{CertFile: "/tmp/d1/certs/cert.pem", KeyFile: "/tmp/d1/certs/key.pem",
		Names: []string{"seg.algocloud.test"}, NotAfter: c.base.Add(time.Duration(len(c.calls)) * 24 * time.Hour)}, nil
}

func (c *certLog) forced() []actdef.CertInput {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []actdef.CertInput
	for _, in := range c.calls {
		if in.Force {
			out = append(out, in)
		}
	}
	return out
}

// renewalEnv is a Deployment environment whose certificates come from log
// (registered before the happy path's mocks, so it wins) and whose
// endpoint reloads in place.
func renewalEnv(t *testing.T, log *certLog) *testsuite.TestWorkflowEnvironment {
	env := newEnv(t)
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(log.issue)
	env.OnActivity(a.ReloadCertificate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ReloadInput) (actdef.CertReload, error) {
			log.add("reload " + in.Endpoint + " " + in.Service.Cert.NotAfter.Format(time.RFC3339))
			return actdef.CertReload{InPlace: true, Serial: "0a", NotAfter: in.Service.Cert.NotAfter}, nil
		})
	mockHappyPath(env)
	return env
}

// live sends the wizard's steps up to a live endpoint (minutes 1 to 5).
func live(s *script) *outcome {
	s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	return s.send(UpdateComplete, CompleteRequest{TokenSHA256: "feed"})
}

func TestRenewCertificateSignalRenewsAndReloads(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := renewalEnv(t, log)
	s := &script{env: env}
	done := live(s)
	var renewed, stale State
	// Due: the certificate issued at provisioning (NotAfter base+1d).
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalRenewCertificate, RenewCertificateRequest{NotAfter: log.base.Add(24 * time.Hour)})
	}, s.next+30*time.Second)
	s.next += time.Minute
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&renewed))
		// A late duplicate of the same request: the certificate was renewed since.
		env.SignalWorkflow(SignalRenewCertificate, RenewCertificateRequest{NotAfter: log.base.Add(24 * time.Hour)})
	}, s.next)
	s.next += time.Minute
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&stale))
	}, s.next)
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}
	require.Equal(t, StatusLive, done.state.Status)
	require.Equal(t, log.base.Add(24*time.Hour), done.state.Cert.NotAfter)

	forced := log.forced()
	require.Len(t, forced, 1, "one renewal: the duplicate request is ignored")
	require.Equal(t, "d1", forced[0].DeploymentID)
	require.Equal(t, "seg", forced[0].APIName)
	require.Equal(t, log.events, []string{"renew", "reload https://127.0.0.1:9000 " + log.base.Add(48*time.Hour).Format(time.RFC3339)})

	require.Equal(t, log.base.Add(48*time.Hour), renewed.Cert.NotAfter, "state holds the new expiry")
	require.Equal(t, StatusLive, renewed.Status)
	require.Equal(t, StepCompleted, renewed.Step)
	require.Equal(t, done.state.Live.Endpoint, renewed.Live.Endpoint)
	require.Equal(t, done.state.Live.Since, renewed.Live.Since, "reloaded in place: live since the same time")
	last := renewed.History[len(renewed.History)-1]
	require.Equal(t, StepRenewCertificate, last.Step)
	require.True(t, last.OK)
	require.Contains(t, last.Message, "reloaded in place")
	require.Equal(t, len(renewed.History), len(stale.History), "the stale request ran nothing")
	require.Equal(t, StatusDeleted, del.state.Status)
}

func TestRenewCertificateWaitsForRunningStep(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t)
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(log.issue)
	env.OnActivity(a.ReloadCertificate, mock.Anything, mock.Anything).Return(
		func(context.Context, actdef.ReloadInput) (actdef.CertReload, error) {
			log.add("reload")
			return actdef.CertReload{InPlace: true}, nil
		})
	tests := 0
	env.OnActivity(a.RunTest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.TestInput) (actdef.TestInfo, error) {
			log.mu.Lock()
			tests++
			n := tests
			log.mu.Unlock()
			if n == 2 { // the re-test after completion: long enough for the signal to arrive
				log.add("test start")
				time.Sleep(300 * time.Millisecond)
				log.add("test end")
			}
			return actdef.TestInfo{OK: true, CodeRevision: in.Code.Revision, InstallRevision: in.Install.Revision}, nil
		})
	mockHappyPath(env)
	s := &script{env: env}
	live(s)
	retest := s.send(UpdateTest, TestRequest{})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalRenewCertificate, RenewCertificateRequest{NotAfter: log.base.Add(24 * time.Hour)})
	}, s.next) // registered after the update at the same time: arrives while it runs
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, retest.err)
	require.Equal(t, []string{"test start", "test end", "renew", "reload"}, log.events)
}

func TestRenewalIgnoredWhenNotLive(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := renewalEnv(t, log)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalRenewCertificate, RenewCertificateRequest{NotAfter: log.base.Add(24 * time.Hour)})
	}, s.next+time.Second)
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, log.forced(), "a draft has no live endpoint to renew for")
}

func TestRenewCertificatesSignalsDueDeployments(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	t1 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	env.OnActivity(a.ListCertificates, mock.Anything, actdef.ListCertificatesInput{WorkflowIDPrefix: "deployment-", Query: QueryState}).Return([]actdef.CertStatus{
		{DeploymentID: "due", NotAfter: t1, Due: true},
		{DeploymentID: "fresh", NotAfter: t1.Add(60 * 24 * time.Hour)},
		{DeploymentID: "unreadable", Error: "query state: timeout"},
		{DeploymentID: "gone", NotAfter: t1, Due: true},
	}, nil).Once()
	var signalled []string
	env.OnSignalExternalWorkflow(mock.Anything, "deployment-due", "", SignalRenewCertificate, RenewCertificateRequest{NotAfter: t1}).Return(
		func(_, id, _, _ string, _ any) error { signalled = append(signalled, id); return nil }).Once()
	env.OnSignalExternalWorkflow(mock.Anything, "deployment-gone", "", SignalRenewCertificate, mock.Anything).Return(errors.New("workflow not found")).Once()
	env.ExecuteWorkflow(RenewCertificates, RenewInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res RenewResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"deployment-due"}, signalled)
	require.Equal(t, []string{"due"}, res.Signalled)
	require.Equal(t, []string{"gone"}, res.Failed)
	require.Len(t, res.Certificates, 4)
	env.AssertExpectations(t)
}

func TestStartRefreshesCertificate(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := renewalEnv(t, log)
	s := &script{env: env}
	live(s)
	s.send(UpdateStop, Empty{})
	start := s.send(UpdateStart, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, start.err)
	require.Len(t, log.calls, 2, "provision, then the check before starting again")
	require.False(t, log.calls[1].Force, "reused while valid for 30 more days")
	require.Equal(t, StatusLive, start.state.Status)
	require.Equal(t, log.base.Add(48*time.Hour), start.state.Cert.NotAfter)
}

func TestOperatorSignalRenewsNow(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := renewalEnv(t, log)
	s := &script{env: env}
	live(s)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalRenewCertificate, map[string]any{}) // `{}` from the Temporal UI
	}, s.next+30*time.Second)
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, log.forced(), 1)
}

func TestFailedReloadKeepsStateAndRetries(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t)
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(log.issue)
	reloads := 0
	env.OnActivity(a.ReloadCertificate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ReloadInput) (actdef.CertReload, error) {
			reloads++
			if reloads == 1 {
				return actdef.CertReload{}, temporal.NewNonRetryableApplicationError("endpoint unreachable", "Test", nil)
			}
			return actdef.CertReload{InPlace: true, NotAfter: in.Service.Cert.NotAfter}, nil
		})
	mockHappyPath(env)
	s := &script{env: env}
	live(s)
	due := RenewCertificateRequest{NotAfter: log.base.Add(24 * time.Hour)}
	var failed State
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalRenewCertificate, due) }, s.next+10*time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&failed))
		// The next schedule run finds the state's certificate older than the
		// one on disk and asks again with the state's expiry.
		env.SignalWorkflow(SignalRenewCertificate, due)
	}, s.next+20*time.Second)
	s.next += time.Minute
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, log.base.Add(24*time.Hour), failed.Cert.NotAfter, "the state keeps the certificate the endpoint serves")
	require.NotNil(t, failed.LastError)
	require.Equal(t, StepRenewCertificate, failed.LastError.Step)
	require.Contains(t, failed.LastError.Message, "endpoint unreachable")
	require.Equal(t, StatusLive, failed.Status)
	require.Len(t, log.forced(), 2)
	require.Equal(t, 2, reloads)
	require.NoError(t, del.err)
}
