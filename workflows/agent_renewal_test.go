package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

// A renewal on a remote server with an agent (EC2): after the new
// certificate is issued, the serving revision is served again with it (the
// agent fetches it; nothing starts or swaps), then ReloadCertificate only
// waits for it (AgentFetched); the live endpoint and its since are kept.
// TestEC2AgentCertificateRenewal runs it on the real agent.
func TestRenewalOnRemoteAgentServesTheNewCertificate(t *testing.T) {
	log := &certLog{base: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := &fakeAgent{}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterActivityWithOptions(f.run, activity.RegisterOptions{Name: actdef.RunOnServerName})
	env.OnActivity(a.RecordState, mock.Anything, mock.Anything).Return(nil)
	// Registered before mockAgentPath's, so these win.
	srv := compute.Server{Provider: "ec2", ID: "i-0abc", Host: "10.0.0.7", Port: 443, Workdir: "/tmp/d1", Agent: true, AgentID: "ec2.d1"}
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(srv, nil).Once()
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(log.issue)
	env.OnActivity(a.PlanAgentServe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.AgentServeInput) (actdef.AgentCommand, error) {
			log.add("serve " + in.Revision + " " + in.Cert.NotAfter.Format(time.RFC3339))
			p, _ := json.Marshal(commands.Serve{Revision: in.Revision, TokenSHA256: in.TokenSHA256})
			return actdef.AgentCommand{Server: in.Server.AgentServer(), ID: in.CommandID, Kind: commands.KindServe, Payload: p}, nil
		})
	env.OnActivity(a.ReloadCertificate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ReloadInput) (actdef.CertReload, error) {
			log.add(fmt.Sprintf("reload agent_fetched=%t %s", in.AgentFetched, in.Service.Cert.NotAfter.Format(time.RFC3339)))
			return actdef.CertReload{InPlace: true, Serial: "0b", NotAfter: in.Service.Cert.NotAfter}, nil
		})
	mockAgentPath(env, f)

	s := &script{env: env}
	done := live(s)
	var renewed State
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalRenewCertificate, RenewCertificateRequest{}) }, s.next+30*time.Second)
	s.next += time.Minute
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&renewed))
	}, s.next)
	s.next += time.Minute
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}
	require.Equal(t, StatusLive, done.state.Status)
	rev := serveRevision(done.state.Serving.Spec, done.state.Serving.Code, done.state.Serving.Install)
	day := func(n int) string { return log.base.Add(time.Duration(n) * 24 * time.Hour).Format(time.RFC3339) }
	require.Equal(t, []string{
		"serve " + rev + " " + day(1), // Complete
		"renew",
		"serve " + rev + " " + day(2), // the same revision, with the new certificate
		"reload agent_fetched=true " + day(2),
	}, log.events)
	require.Equal(t, []string{"install", "test", "serve", "serve", "stop"}, f.kinds())
	require.NotEqual(t, f.cmds[2].ID, f.cmds[3].ID, "the renewal's serve is a command of its own")
	require.Equal(t, day(2), renewed.Cert.NotAfter.Format(time.RFC3339), "the state holds the new certificate")
	require.Equal(t, done.state.Live.Since, renewed.Live.Since, "the endpoint never stopped")
	require.Equal(t, done.state.Live.Endpoint, renewed.Live.Endpoint)
	last := renewed.History[len(renewed.History)-1]
	require.Equal(t, StepRenewCertificate, last.Step)
	require.True(t, last.OK, last.Message)
	require.True(t, strings.HasSuffix(last.Message, "reloaded in place by the server's agent"), last.Message)
}
