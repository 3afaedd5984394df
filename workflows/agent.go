package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/spec"
)

// changeServerAgent versions servers with an agent (issue 10): Provision
// asks for a server agent (the local provider starts one with a credential
// of its own) and keeps the deployment's servers as a list (State.Servers),
// so commands address a server and replicas can come. A server that got an
// agent (compute.Server.Agent, recorded in this history by its
// ProvisionServer) has its Install, Test Code, Complete, Start, Stop and
// Delete run as agent commands (agenthub's RunOnServer); histories from
// before it provision without asking, keep no list and never see a server
// with an agent, so they replay the worker's steps.
const changeServerAgent = "server-agent"

// agentHeartbeat is RunOnServer's heartbeat timeout: the agent posts
// progress at least every third of it, so an agent that vanished (killed,
// cut off) is noticed within it and the retry hands the command out again.
const agentHeartbeat = 30 * time.Second

// planOptions are the options of the plan activities (PlanAgent*,
// AgentTestResult): they heartbeat, so one a killed worker had started is
// retried within the heartbeat timeout after the restart, not after its
// 2-minute limit (a Delete interrupted by a platform kill finishes in
// seconds, TestKillDevDuringDeleteThenRestart).
func planOptions(ctx workflow.Context) workflow.Context {
	return activityOptions(ctx, 2*time.Minute, heartbeat, 5)
}

// onAgent reports whether the deployment's server runs an agent.
func (d *deployment) onAgent() bool { return d.st.Server != nil && d.st.Server.Agent }

// commandID names the next agent command of step: the deployment, the step,
// what it acts on (a revision) and the deployment's command count, so each
// step run gets a new ID (a second Test Code of the same revision too) while
// every attempt of one run keeps it (the agent runs it at most once).
func (d *deployment) commandID(step, what string) string {
	d.st.AgentCommands++
	id := fmt.Sprintf("%s.%s.%d", d.st.DeploymentID, step, d.st.AgentCommands)
	if what != "" {
		id += "." + what
	}
	return id
}

// runOnServer has the server's agent run cmd; out (a pointer to a struct
// whose Output field has the kind's output type, or nil) receives its
// result, decoded by the data converter. Retries are unbounded within the
// time limit: each timed-out attempt is a hand-out lost (the agent
// vanished), not a failure of the command.
func runOnServer(ctx workflow.Context, limit time.Duration, cmd actdef.AgentCommand, out any) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: limit,
		HeartbeatTimeout:    agentHeartbeat,
		// ScheduleToClose bounds the whole, every re-sent hand-out included.
		ScheduleToCloseTimeout: 2 * limit,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 15 * time.Second,
		},
	})
	return workflow.ExecuteActivity(actx, actdef.RunOnServerName, cmd).Get(actx, out)
}

// installOnAgent is Install on a server with an agent.
func (d *deployment) installOnAgent(ctx workflow.Context, r InstallRequest, revision int) (actdef.InstallInfo, error) {
	actx := planOptions(ctx)
	in := actdef.AgentInstallInput{
		InstallInput:    actdef.InstallInput{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, Spec: d.st.Spec, Code: *d.st.Code, RequirementsTxt: r.RequirementsTxt},
		CommandID:       d.commandID("install", fmt.Sprintf("c%d-i%d", d.st.Code.Revision, revision)),
		InstallRevision: revision,
	}
	var plan actdef.AgentInstallPlan
	if err := workflow.ExecuteActivity(actx, a.PlanAgentInstall, in).Get(actx, &plan); err != nil {
		return actdef.InstallInfo{}, err
	}
	info := actdef.InstallInfo{CodeRevision: d.st.Code.Revision, Requirements: plan.Requirements}
	if plan.Skip {
		return info, nil
	}
	var res struct{ Output commands.InstallOutput }
	if err := runOnServer(ctx, 30*time.Minute, plan.Command, &res); err != nil {
		return actdef.InstallInfo{}, err
	}
	out := res.Output
	if out.Failed {
		msg := "pip install failed"
		if out.OOMKilled {
			msg += " (it used more memory than the server's sandbox allows and was killed)"
		}
		return actdef.InstallInfo{}, temporal.NewNonRetryableApplicationError(msg+":\n"+out.Output, actdef.InstallFailedErrorType, nil)
	}
	info.Python, info.Output = out.Python, out.Output
	return info, nil
}

// testOnAgent is Test Code on a server with an agent.
func (d *deployment) testOnAgent(ctx workflow.Context) (actdef.TestInfo, error) {
	actx := planOptions(ctx)
	rev := fmt.Sprintf("c%d-i%d", d.st.Code.Revision, d.st.Install.Revision)
	id := d.commandID("test", rev)
	in := actdef.AgentTestInput{Build: d.build(d.st.Spec, *d.st.Code, *d.st.Install), CommandID: id, Revision: rev + "-" + fmt.Sprint(d.st.AgentCommands)}
	var cmd actdef.AgentCommand
	if err := workflow.ExecuteActivity(actx, a.PlanAgentTest, in).Get(actx, &cmd); err != nil {
		return actdef.TestInfo{}, err
	}
	var res actdef.AgentOutcome
	if err := runOnServer(ctx, 10*time.Minute, cmd, &res); err != nil {
		return actdef.TestInfo{}, err
	}
	var info actdef.TestInfo
	rin := actdef.AgentTestResultInput{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, CommandID: id,
		CodeRevision: d.st.Code.Revision, InstallRevision: d.st.Install.Revision, Output: res.Output}
	err := workflow.ExecuteActivity(actx, a.AgentTestResult, rin).Get(actx, &info)
	return info, err
}

// serveRevision names what a serve command runs: code revision, install
// and a hash of the settings the inference server reads (types, threads,
// batching, metrics, network, limits), so a change of any of them is a new
// revision, swapped in.
func serveRevision(sp spec.Spec, code actdef.CodeInfo, install actdef.InstallInfo) string {
	settings := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%d|%t|%s|%d", sp.Environment, sp.InstanceType, sp.Input, sp.Output,
		sp.Threads, sp.MaxBatchSize, sp.MaxQueueDelayMS, sp.PublicMetrics, sp.Network, sp.MaxQueueSize)
	sum := sha256.Sum256([]byte(settings))
	return fmt.Sprintf("c%d-i%d-s%s", code.Revision, install.Revision, hex.EncodeToString(sum[:4]))
}

// serveOnAgent is Complete, Start, token rotation and reconcile on a server
// with an agent: the agent starts the revision, or swaps it in beside the
// serving one with no downtime, or (already serving) only rewrites the
// token file.
func (d *deployment) serveOnAgent(ctx workflow.Context, serving *Serving) (actdef.ServiceInfo, error) {
	return d.serveOnAgentWith(ctx, serving, *d.st.Cert)
}

// serveOnAgentWith is serveOnAgent with the certificate cert (a renewal's,
// before the state takes it): on a remote server the agent fetches it.
func (d *deployment) serveOnAgentWith(ctx workflow.Context, serving *Serving, cert actdef.CertInfo) (actdef.ServiceInfo, error) {
	actx := planOptions(ctx)
	rev := serveRevision(serving.Spec, serving.Code, serving.Install)
	build := d.build(serving.Spec, serving.Code, serving.Install)
	build.Cert = cert
	in := actdef.AgentServeInput{Build: build,
		CommandID: d.commandID("serve", rev), Revision: rev, TokenSHA256: d.st.TokenSHA256}
	var cmd actdef.AgentCommand
	if err := workflow.ExecuteActivity(actx, a.PlanAgentServe, in).Get(actx, &cmd); err != nil {
		return actdef.ServiceInfo{}, err
	}
	var res struct{ Output commands.ServeOutput }
	if err := runOnServer(ctx, 10*time.Minute, cmd, &res); err != nil {
		return actdef.ServiceInfo{}, err
	}
	out := res.Output
	if out.Failed {
		msg := "the new revision did not start: " + out.Error
		if out.Serving != "" {
			msg += " (revision " + out.Serving + " still serves)"
		}
		if out.Traceback != "" {
			msg += "\n" + out.Traceback
		}
		return actdef.ServiceInfo{}, temporal.NewNonRetryableApplicationError(msg, actdef.InitFailedErrorType, nil)
	}
	if out.Serving != rev {
		return actdef.ServiceInfo{}, errors.New("the agent serves " + out.Serving + ", not " + rev)
	}
	srv := *d.st.Server
	addr := fmt.Sprintf("%s:%d", srv.Host, srv.Port)
	// Since is the agent's: when the revision began to serve there. A
	// re-serve of the revision that serves (reconcile after a platform
	// restart, Start, token rotation) keeps it, as the endpoint never
	// stopped; a swap or a fresh start has a new one.
	since := out.Since.UTC()
	if out.Since.IsZero() { // an agent that does not say
		since = workflow.Now(ctx)
	}
	endpoint := "https://" + addr
	if srv.AgentID != "" && d.st.DNS != nil && d.st.DNS.Name != "" {
		// A remote server's agent (EC2): clients call it by the name its
		// certificate is for, which Provision pointed at its address.
		endpoint = "https://" + d.st.DNS.Name
		if srv.Port != 443 {
			endpoint += fmt.Sprintf(":%d", srv.Port)
		}
	}
	return actdef.ServiceInfo{
		Handle:   compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: "agent", Address: addr},
		Endpoint: endpoint, CodeRevision: serving.Code.Revision, Since: since,
	}, nil
}

// stopOnAgent is Stop (and Delete's first part) on a server with an agent.
func (d *deployment) stopOnAgent(ctx workflow.Context) error {
	actx := planOptions(ctx)
	in := actdef.AgentStopInput{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, CommandID: d.commandID("stop", "")}
	var cmd actdef.AgentCommand
	if err := workflow.ExecuteActivity(actx, a.PlanAgentStop, in).Get(actx, &cmd); err != nil {
		return err
	}
	return runOnServer(ctx, 5*time.Minute, cmd, nil)
}
