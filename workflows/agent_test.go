package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/agent/commands"
)

// fakeAgent answers RunOnServer in the workflow's unit tests the way the
// agent's handlers answer (agent/commands outputs) and records every
// command; the real agent and hub run in the integration tests.
type fakeAgent struct {
	mu       sync.Mutex
	cmds     []actdef.AgentCommand
	serving  string
	failNext string // a kind whose next command fails to start (serve)
}

func (f *fakeAgent) run(_ context.Context, c actdef.AgentCommand) (actdef.AgentOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, c)
	var out any
	switch c.Kind {
	case commands.KindInstall:
		var p commands.Install
		if err := json.Unmarshal(c.Payload, &p); err != nil {
			return actdef.AgentOutcome{}, err
		}
		out = commands.InstallOutput{Python: p.Venv + "/bin/python", Output: "Successfully installed"}
	case commands.KindTest:
		out = commands.TestOutput{OK: true, Summary: "PNG 64x64", ContentType: "image/png", OutputArtifact: "output.png"}
	case commands.KindServe:
		var p commands.Serve
		if err := json.Unmarshal(c.Payload, &p); err != nil {
			return actdef.AgentOutcome{}, err
		}
		if f.failNext == commands.KindServe {
			f.failNext = ""
			out = commands.ServeOutput{Serving: f.serving, Failed: true, Error: "__init__ raised", Traceback: "Traceback ..."}
			break
		}
		f.serving = p.Revision
		out = commands.ServeOutput{Serving: p.Revision}
	case commands.KindStop:
		f.serving = ""
		out = commands.ServeOutput{}
	}
	b, err := json.Marshal(out)
	return actdef.AgentOutcome{Output: b}, err
}

func (f *fakeAgent) kinds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var k []string
	for _, c := range f.cmds {
		k = append(k, c.Kind)
	}
	return k
}

// mockAgentPath is mockHappyPath for a server with an agent: the worker's
// own install, test and service activities must not run.
func mockAgentPath(env *testsuite.TestWorkflowEnvironment, f *fakeAgent) {
	srv := compute.Server{Provider: "local", ID: "d1", Host: "127.0.0.1", Port: 9000, Workdir: "/tmp/d1", Agent: true}
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ProvisionInput) (compute.Server, error) {
			if !in.Agent {
				return compute.Server{}, errAgentNotAsked
			}
			return srv, nil
		}).Once()
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(actdef.CertInfo{CertFile: "c", KeyFile: "k", Names: []string{"seg.algocloud.test"}}, nil)
	env.OnActivity(a.FetchCode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.FetchCodeInput) (actdef.CodeInfo, error) {
			return actdef.CodeInfo{Revision: in.Revision, Dir: "/tmp/d1/code", Source: "git", Commit: "abc"}, nil
		})
	env.OnActivity(a.PlanAgentInstall, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentInstallInput) (actdef.AgentInstallPlan, error) {
			p, _ := json.Marshal(commands.Install{CodeDir: in.Code.Dir, Venv: "/tmp/d1/installs/" + itoa(in.InstallRevision) + "/venv"})
			return actdef.AgentInstallPlan{Command: actdef.AgentCommand{Server: in.Server.ID, ID: in.CommandID, Kind: commands.KindInstall, Payload: p}}, nil
		})
	env.OnActivity(a.PlanAgentTest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentTestInput) (actdef.AgentCommand, error) {
			return actdef.AgentCommand{Server: in.Server.ID, ID: in.CommandID, Kind: commands.KindTest, Payload: json.RawMessage(`{}`)}, nil
		})
	env.OnActivity(a.AgentTestResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentTestResultInput) (actdef.TestInfo, error) {
			var out commands.TestOutput
			if err := json.Unmarshal(in.Output, &out); err != nil {
				return actdef.TestInfo{}, err
			}
			return actdef.TestInfo{OK: out.OK, Summary: out.Summary, CodeRevision: in.CodeRevision, InstallRevision: in.InstallRevision}, nil
		})
	env.OnActivity(a.PlanAgentServe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentServeInput) (actdef.AgentCommand, error) {
			p, _ := json.Marshal(commands.Serve{Revision: in.Revision, TokenSHA256: in.TokenSHA256})
			return actdef.AgentCommand{Server: in.Server.ID, ID: in.CommandID, Kind: commands.KindServe, Payload: p}, nil
		})
	env.OnActivity(a.PlanAgentStop, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentStopInput) (actdef.AgentCommand, error) {
			return actdef.AgentCommand{Server: in.Server.ID, ID: in.CommandID, Kind: commands.KindStop, Payload: json.RawMessage(`{}`)}, nil
		})
	env.OnActivity(a.ReleaseServer, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.MarkDeleted, mock.Anything, mock.Anything).Return(nil)
}

// newAgentEnv is newEnv with the fake agent registered as RunOnServer
// (registrations come before any mock).
func newAgentEnv(f *fakeAgent) *testsuite.TestWorkflowEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterActivityWithOptions(f.run, activity.RegisterOptions{Name: actdef.RunOnServerName})
	env.OnActivity(a.RecordState, mock.Anything, mock.Anything).Return(nil)
	mockAgentPath(env, f)
	return env
}

var errAgentNotAsked = errors.New("provision did not ask for an agent")

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A server with an agent: every step that runs author code is an agent
// command (install, test, serve, stop), never the worker's own activity;
// command IDs differ per run (a second Test Code of the same revision gets
// a new one); a redeploy serves a new revision; the server list holds the
// server; a revision that fails to start leaves the step failed and the
// serving revision in the state.
func TestStepsRunThroughTheServersAgent(t *testing.T) {
	f := &fakeAgent{}
	env := newAgentEnv(f)
	s := &script{env: env}
	prov := s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	test2 := s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{TokenSHA256: strings.Repeat("ab", 32)})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	redeploy := s.send(UpdateComplete, CompleteRequest{})
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
	require.Equal(t, []compute.Server{*prov.state.Server}, prov.state.Servers)
	require.True(t, prov.state.Server.Agent)
	require.Equal(t, "/tmp/d1/installs/1/venv/bin/python", test2.state.Install.Python)
	require.Equal(t, StatusLive, done.state.Status)
	require.Equal(t, "https://127.0.0.1:9000", done.state.Live.Endpoint)
	require.Equal(t, StepCompleted, redeploy.state.Step)
	require.Equal(t, 2, redeploy.state.Live.CodeRevision)
	require.Equal(t, StatusStopped, stop.state.Status)
	require.Equal(t, StatusLive, start.state.Status)
	require.Equal(t, StatusDeleted, del.state.Status)
	require.Nil(t, del.state.Servers)
	require.Equal(t, []string{"install", "test", "test", "serve", "install", "test", "serve", "stop", "serve", "stop"}, f.kinds())
	ids := map[string]bool{}
	for _, c := range f.cmds {
		require.False(t, ids[c.ID], "command ID %s used twice", c.ID)
		ids[c.ID] = true
		require.Equal(t, "d1", c.Server)
		require.True(t, strings.HasPrefix(c.ID, "d1."), c.ID)
	}
	var rev1, rev2 commands.Serve
	require.NoError(t, json.Unmarshal(f.cmds[3].Payload, &rev1))
	require.NoError(t, json.Unmarshal(f.cmds[6].Payload, &rev2))
	require.NotEqual(t, rev1.Revision, rev2.Revision)
	require.True(t, strings.HasPrefix(rev2.Revision, "c2-i2-s"), rev2.Revision)
	env.AssertExpectations(t)
}

// A revision that fails to start is a failed Complete that names the
// revision still serving; the live state keeps the one before.
func TestAgentServeFailureKeepsTheServingRevision(t *testing.T) {
	f := &fakeAgent{}
	env := newAgentEnv(f)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	s.send(UpdateComplete, CompleteRequest{TokenSHA256: strings.Repeat("ab", 32)})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	env.RegisterDelayedCallback(func() { f.mu.Lock(); f.failNext = commands.KindServe; f.mu.Unlock() }, s.next+30*time.Second)
	bad := s.send(UpdateComplete, CompleteRequest{})
	st := s.state(t)
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, bad.err)
	require.Contains(t, bad.err.Error(), "still serves")
	require.Equal(t, 1, st.Live.CodeRevision)
	require.Equal(t, StatusLive, st.Status)
}
