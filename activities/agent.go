package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/spec"
)

// AgentHub is the platform's side of the agents' command channel that the
// activities use (*agenthub.Hub): servers' credentials, and the files
// agents upload with their results.
type AgentHub interface {
	MintCredential(ctx context.Context, serverID string) (string, error)
	RevokeCredential(ctx context.Context, serverID string) error
	// Artifact reads a file an agent uploaded for one of its commands (a
	// test's output); DeleteArtifacts removes a server's.
	Artifact(ctx context.Context, serverID, commandID, name string) ([]byte, error)
	DeleteArtifacts(ctx context.Context, serverID string) error
}

// AgentSettings say how the worker gives local servers their agent. nil
// Activities.Agents: no agents (every step runs on the worker, as before).
type AgentSettings struct {
	// Hub mints each server's credential at provision and revokes it at
	// release, and holds the test outputs agents upload.
	Hub AgentHub
	// Command is the argv prefix of algocloud-infer (the local provider's
	// service command); the agent is its "agent" mode.
	Command []string
	// PlatformURL is the platform API's base URL the agents long-poll
	// (in dev, this process's own API).
	PlatformURL string
	// CAFile is the PEM file of the CA the API's certificate chains to;
	// empty for a plain-http loopback API (dev) or the system's roots.
	CAFile string
	// Remote gives remote servers (EC2) an agent too: the provider's user
	// data installs it with a credential made at launch
	// (ec2.Options.Agent), and each command's code revision is published
	// sealed to the bundle store for the agent to fetch (remoteagent.go);
	// environment onnx's ONNX Runtime library too (public, by SHA-256).
	Remote bool
}

// agentServiceName is the local provider's service that is the server's
// agent (beside "live" and "test" of servers without one).
const agentServiceName = "agent"

// AgentDir is a server's agent folder (credential, state, control socket,
// revision logs): <server folder>/agent. No sandbox mounts it: author code
// sees its code and venv only.
func AgentDir(srv compute.Server) string { return filepath.Join(srv.Workdir, "agent") }

// agentCredentialFile holds the server's agent credential, mode 0600.
func agentCredentialFile(srv compute.Server) string {
	return filepath.Join(AgentDir(srv), "credential")
}

// agentsFor reports whether this worker gives a deployment of sp an agent:
// agents are set up and the provider is the local one (no bundle store;
// ProvisionServer checks the server is the local provider's), or a remote
// one (EC2) with AgentSettings.Remote, for every environment (onnx's agent
// fetches the ONNX Runtime library: remoteONNX). Otherwise Install and
// Test Code run on the worker (docs/architecture.md).
func (a *Activities) agentsFor(spec.Spec) bool {
	switch {
	case a.Agents == nil:
		return false
	case a.Bundles == nil:
		return true
	default:
		return a.Agents.Remote
	}
}

// remoteAgent reports whether srv's agent is on a remote server (EC2): its
// paths are under commands.HomePlaceholder and its code is fetched.
func remoteAgent(srv compute.Server) bool { return srv.Provider != local.ProviderName }

// ensureAgent makes sure srv's agent runs: its credential minted (once; a
// file already there is kept) and written 0600 into the agent's folder,
// and the provider's supervised "agent" service started (or re-adopted:
// Start re-attaches to a live one). The agent adopts the revisions it
// left serving.
func (a *Activities) ensureAgent(ctx context.Context, srv compute.Server) error {
	if a.Agents == nil {
		return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("server %s has an agent, but this worker is not set up for agents (no platform URL)", srv.ID))
	}
	if remoteAgent(srv) {
		// Its user data runs it as a systemd unit, with the credential
		// minted at launch: nothing to start from here.
		return nil
	}
	dir := AgentDir(srv)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent folder of %s: %w", srv.ID, err)
	}
	cred := agentCredentialFile(srv)
	if _, err := os.Stat(cred); errors.Is(err, os.ErrNotExist) {
		c, err := a.Agents.Hub.MintCredential(ctx, srv.ID)
		if err != nil {
			return fmt.Errorf("agent of %s: %w", srv.ID, err)
		}
		if err := writeSecretFile(cred, []byte(c+"\n")); err != nil {
			return fmt.Errorf("agent of %s: write credential: %w", srv.ID, err)
		}
	} else if err != nil {
		return fmt.Errorf("agent of %s: %w", srv.ID, err)
	}
	args := []string{"agent", "--dir", dir, "--listen", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)),
		"--platform", a.Agents.PlatformURL, "--server", srv.ID, "--credential-file", cred}
	if a.Agents.CAFile != "" {
		args = append(args, "--ca-file", a.Agents.CAFile)
	}
	svc := compute.ServiceSpec{Server: srv, Name: agentServiceName, Port: srv.Port, ConfigFile: cred, Restart: true, Args: args}
	_, err := a.Provider.Start(ctx, svc)
	if errors.Is(err, local.ErrOtherArgs) {
		// It runs with older arguments (the platform's URL changed across a
		// restart): started again, it adopts the revisions it leaves.
		h := compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: agentServiceName}
		if err := a.Provider.Stop(ctx, h); err != nil && !errors.Is(err, compute.ErrNotFound) {
			return fmt.Errorf("restart the agent of %s: %w", srv.ID, err)
		}
		_, err = a.Provider.Start(ctx, svc)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, exec.ErrNotFound) {
			// The agent's binary cannot be run at all: no retry fixes that.
			return nonRetryable(actdef.AgentFailedErrorType, fmt.Errorf("the agent of server %s cannot start: %w", srv.ID, err))
		}
		return fmt.Errorf("start the agent of %s: %w", srv.ID, err)
	}
	return a.waitAgentUp(ctx, srv)
}

// agentStartWait bounds how long ensureAgent waits for the agent to answer
// on its control socket; agentCrashLoop is how many restarts by the
// provider's supervisor within that wait, with no answer, make an agent
// that cannot start (a healthy one does not exit).
const (
	agentStartWait = time.Minute
	agentCrashLoop = 2
)

// waitAgentUp waits until srv's agent answers on its control socket (at
// once for one that runs already). An agent that the provider keeps
// restarting (a bad flag, a broken binary, a folder it cannot use) fails
// the step within seconds, non-retryable, with the end of its log, instead
// of leaving the step's command pending until its time limit. One that
// runs but does not answer within agentStartWait is a retryable error.
func (a *Activities) waitAgentUp(ctx context.Context, srv compute.Server) error {
	h := compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: agentServiceName}
	first, err := a.Provider.Status(ctx, h)
	if err != nil {
		return fmt.Errorf("status of the agent of %s: %w", srv.ID, err)
	}
	deadline := time.Now().Add(agentStartWait)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if a.agentAnswers(ctx, srv) {
			return nil
		}
		st, err := a.Provider.Status(ctx, h)
		if err != nil {
			return fmt.Errorf("status of the agent of %s: %w", srv.ID, err)
		}
		if n := st.Restarts - first.Restarts; n >= agentCrashLoop {
			// Stopped, not left looping: the step's next try starts it again.
			if err := a.Provider.Stop(ctx, h); err != nil && !errors.Is(err, compute.ErrNotFound) {
				a.log().Warn("stop the agent that cannot start", "server", srv.ID, "error", err)
			}
			return nonRetryable(actdef.AgentFailedErrorType, fmt.Errorf(
				"the agent of server %s cannot start: it exited %d times in a row (%s); the end of its log:\n%s",
				srv.ID, n+1, st.Detail, agentLogTail(srv)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent of server %s did not answer within %s (%s)", srv.ID, agentStartWait, st.Detail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// agentAnswers reports whether srv's agent answers GET /v1/status on its
// control socket. It dials the socket itself (well under a millisecond)
// rather than running "algocloud-infer agent status" (an exec: tens of
// milliseconds on every step).
func (a *Activities) agentAnswers(ctx context.Context, srv compute.Server) bool {
	sock, closeDir, err := agentSocket(AgentDir(srv))
	if err != nil {
		return false
	}
	defer closeDir()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, "http://agent/v1/status", nil)
	if err != nil {
		return false
	}
	res, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// maxSocketPath is the longest unix socket path connect takes (sun_path's
// 108 bytes, its NUL included).
const maxSocketPath = 107

// agentSocket is the address of the agent's control socket in dir: its
// path, or, when that is too long for a unix socket address (a deep data
// folder), the same file named through an open descriptor of dir, as the
// agent binds it (cmd/algocloud-infer controlSocket). closeDir must be
// called once the address has been dialled.
func agentSocket(dir string) (addr string, closeDir func(), err error) {
	path := filepath.Join(dir, "agent.sock")
	if len(path) <= maxSocketPath {
		return path, func() {}, nil
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("agent folder %s: %w", dir, err)
	}
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/agent.sock", func() { _ = syscall.Close(fd) }, nil
}

// agentLogTail is the end of the local provider's log of srv's agent
// (<server folder>/logs/agent.log), for the error of an agent that cannot
// start.
func agentLogTail(srv compute.Server) string {
	b, err := os.ReadFile(filepath.Join(srv.Workdir, "logs", agentServiceName+".log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(strings.TrimSpace(string(b)), 1500)
}

// writeSecretFile writes b to path, mode 0600 from its creation, replacing
// what was there at once (a temporary file renamed).
func writeSecretFile(path string, b []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// stopAgent stops srv's agent with its revisions (the agent's own stop,
// through its control socket, then the provider's service) and revokes its
// credential: Release's part for a server with an agent. What is already
// gone is no error.
func (a *Activities) stopAgent(ctx context.Context, srv compute.Server) error {
	if a.Agents != nil && len(a.Agents.Command) > 0 {
		if _, err := os.Stat(filepath.Join(AgentDir(srv), "agent.sock")); err == nil {
			args := append(append([]string(nil), a.Agents.Command[1:]...), "agent", "stop", "--dir", AgentDir(srv))
			cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			out, err := exec.CommandContext(cctx, a.Agents.Command[0], args...).CombinedOutput()
			cancel()
			if err != nil {
				// An agent that is not running cannot stop its revisions;
				// the provider's Release below ends its process group.
				a.log().Warn("agent stop", "server", srv.ID, "error", err, "output", tail(string(out), 500))
			}
		}
	}
	if err := a.Provider.Stop(ctx, compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: agentServiceName}); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return fmt.Errorf("stop the agent of %s: %w", srv.ID, err)
	}
	if a.Agents != nil {
		if err := a.Agents.Hub.RevokeCredential(ctx, srv.AgentServer()); err != nil {
			return fmt.Errorf("revoke the agent credential of %s: %w", srv.ID, err)
		}
		if err := a.Agents.Hub.DeleteArtifacts(ctx, srv.AgentServer()); err != nil {
			return err
		}
	}
	return nil
}

// command makes the AgentCommand of kind for srv with payload.
func command(deploymentID string, srv compute.Server, id, kind string, payload any) (actdef.AgentCommand, error) {
	if err := protocol.ValidID(id); err != nil {
		return actdef.AgentCommand{}, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("command id %q: %w", id, err))
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return actdef.AgentCommand{}, fmt.Errorf("encode %s payload: %w", kind, err)
	}
	return actdef.AgentCommand{Server: srv.AgentServer(), ID: id, Kind: kind, Deployment: deploymentID, Payload: b}, nil
}

// PlanAgentInstall is Install on a server with an agent: it writes a
// replaced aai_pip-requirements.txt, merges the requirements as
// InstallRequirements does and builds the agent's install command (venv
// <server folder>/installs/<install revision>/venv, the install sandbox's
// limits and network). pip itself runs on the server, by the agent.
func (a *Activities) PlanAgentInstall(ctx context.Context, in actdef.AgentInstallInput) (actdef.AgentInstallPlan, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "PlanAgentInstall" })()
	fileReqs := in.Code.Requirements
	if in.RequirementsTxt != nil {
		reqs, err := spec.ParseRequirements(*in.RequirementsTxt)
		if err != nil {
			return actdef.AgentInstallPlan{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		if err := python.WriteRequirementsFile(filepath.Join(in.Code.Dir, RequirementsFile), reqs); err != nil {
			return actdef.AgentInstallPlan{}, fmt.Errorf("write %s: %w", RequirementsFile, err)
		}
		fileReqs = reqs
	}
	reqs := mergeRequirements(in.Spec.Requirements, fileReqs)
	if in.Spec.Environment == spec.EnvONNX && len(reqs) == 0 {
		a.event(ctx, in.DeploymentID, "install_requirements", "environment onnx: no requirements, so no venv (the model runs in ONNX Runtime)")
		return actdef.AgentInstallPlan{Skip: true, Requirements: reqs}, nil
	}
	if err := a.ensureAgent(ctx, in.Server); err != nil {
		return actdef.AgentInstallPlan{}, err
	}
	box, err := a.sandboxConfig(in.Server, in.Spec, "install")
	if err != nil {
		return actdef.AgentInstallPlan{}, nonRetryable(actdef.BadInputErrorType, err)
	}
	boxJSON, err := json.Marshal(box)
	if err != nil {
		return actdef.AgentInstallPlan{}, fmt.Errorf("encode sandbox: %w", err)
	}
	venv := filepath.Join(in.Server.Workdir, "installs", strconv.Itoa(in.InstallRevision), "venv")
	payload := commands.Install{CodeDir: in.Code.Dir, Venv: venv, Requirements: reqs, Sandbox: boxJSON,
		IndexURL: a.Pip.IndexURL, FindLinks: a.Pip.FindLinks, NoIndex: a.Pip.NoIndex}
	if remoteAgent(in.Server) {
		code, err := a.publishCode(ctx, in.DeploymentID, in.Code.Dir)
		if err != nil {
			return actdef.AgentInstallPlan{}, err
		}
		venv = remoteHome + "/installs/" + strconv.Itoa(in.InstallRevision) + "/venv"
		payload.Fetch, payload.CodeDir, payload.Venv = []commands.Fetch{code}, code.Into, venv
	}
	cmd, err := command(in.DeploymentID, in.Server, in.CommandID, commands.KindInstall, payload)
	if err != nil {
		return actdef.AgentInstallPlan{}, err
	}
	if a.Sandbox.Unconfined() {
		a.event(ctx, in.DeploymentID, "install_requirements", "WARNING: %s", UnconfinedWarning)
	}
	a.event(ctx, in.DeploymentID, "install_requirements", "installing on server %s by its agent: venv %s, %d requirement(s)", in.Server.ID, venv, len(reqs))
	return actdef.AgentInstallPlan{Command: cmd, Requirements: reqs}, nil
}

// PlanAgentTest is Test Code on a server with an agent: the test server's
// config as RunTest builds it (role test: group "<server>.test"; no token,
// the agent makes one that never leaves it), run by the agent.
func (a *Activities) PlanAgentTest(ctx context.Context, in actdef.AgentTestInput) (actdef.AgentCommand, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "PlanAgentTest" })()
	if err := a.ensureAgent(ctx, in.Server); err != nil {
		return actdef.AgentCommand{}, err
	}
	cfg, err := a.serviceConfig(in.Server, 0, in.Build, "", "test")
	if err != nil {
		return actdef.AgentCommand{}, err
	}
	cfg.Listen = net.JoinHostPort(in.Server.Host, "0")
	payload := commands.Test{Revision: in.Revision, ReadyTimeoutSeconds: 120}
	if remoteAgent(in.Server) {
		// The code revision fetched there; the venv is the one its install
		// made there (InstallInfo.Python is the agent's path); the test
		// server listens on the server's loopback, in plain HTTP, to the
		// agent only.
		code, err := a.publishCode(ctx, in.DeploymentID, in.Code.Dir)
		if err != nil {
			return actdef.AgentCommand{}, err
		}
		payload.Fetch, cfg.CodeDir = []commands.Fetch{code}, code.Into
		cfg.Listen, cfg.CertFile, cfg.KeyFile = "127.0.0.1:0", "", ""
		ort, err := a.remoteONNX(ctx, in.DeploymentID, in.Spec.Environment, "test", &cfg)
		if err != nil {
			return actdef.AgentCommand{}, err
		}
		payload.Fetch = append(payload.Fetch, ort...)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return actdef.AgentCommand{}, fmt.Errorf("encode test config: %w", err)
	}
	payload.Config = b
	a.event(ctx, in.DeploymentID, "test", "testing on server %s by its agent (%d thread(s))", in.Server.ID, in.Spec.Threads)
	return command(in.DeploymentID, in.Server, in.CommandID, commands.KindTest, payload)
}

// AgentTestResult turns a test command's output into Test Code's result:
// the output artifact the agent uploaded is copied to the test-output blob
// (the wizard shows it from there), as RunTest's output is.
func (a *Activities) AgentTestResult(ctx context.Context, in actdef.AgentTestResultInput) (actdef.TestInfo, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "AgentTestResult" })()
	var out commands.TestOutput
	if err := json.Unmarshal(in.Output, &out); err != nil {
		return actdef.TestInfo{}, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("the agent's test output: %w", err))
	}
	info := actdef.TestInfo{
		OK: out.OK, At: time.Now().UTC(), CodeRevision: in.CodeRevision, InstallRevision: in.InstallRevision,
		Status: out.Status, Code: out.Code, Message: out.Message, Stage: out.Stage, Traceback: out.Traceback,
		ContentType: out.ContentType, Summary: out.Summary, InputSummary: out.InputSummary, DurationMS: out.DurationMS,
	}
	if a.Sandbox.Unconfined() {
		info.Unsandboxed, info.Warning = true, UnconfinedWarning
	}
	if !out.OK {
		a.event(ctx, in.DeploymentID, "test", "test failed: %s", out.Message)
		return info, nil
	}
	if out.OutputArtifact != "" && a.Agents != nil && a.Blobs != nil {
		// Copied, not referenced: the wizard reads tests/<deployment>/...
		// as for every test, and a server's artifacts go with it.
		b, err := a.Agents.Hub.Artifact(ctx, in.Server.AgentServer(), in.CommandID, out.OutputArtifact)
		if err != nil {
			return actdef.TestInfo{}, fmt.Errorf("read the test's output artifact: %w", err)
		}
		if info.OutputKey, err = a.putTestOutput(ctx, in.DeploymentID, in.CodeRevision, out.ContentType, b); err != nil {
			return actdef.TestInfo{}, fmt.Errorf("store test output: %w", err)
		}
	}
	a.event(ctx, in.DeploymentID, "test", "test passed: %s", out.Summary)
	return info, nil
}

// PlanAgentServe is Complete and Start on a server with an agent: the live
// config as StartService builds it, with the revision's own sandbox group
// ("<server>.live.<revision>": two revisions never share a cgroup) and the
// token file the agent writes the endpoint token's hash into.
func (a *Activities) PlanAgentServe(ctx context.Context, in actdef.AgentServeInput) (actdef.AgentCommand, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "PlanAgentServe" })()
	if b, err := hex.DecodeString(in.TokenSHA256); err != nil || len(b) != sha256.Size {
		return actdef.AgentCommand{}, nonRetryable(actdef.BadInputErrorType, errors.New("the endpoint token hash is not 64 hex digits"))
	}
	if err := a.ensureAgent(ctx, in.Server); err != nil {
		return actdef.AgentCommand{}, err
	}
	cfg, err := a.serviceConfig(in.Server, in.Server.Port, in.Build, "", "live")
	if err != nil {
		return actdef.AgentCommand{}, err
	}
	cfg.Sandbox.Group = in.Server.ID + ".live." + in.Revision
	cfg.TokenSHA256, cfg.TokenFile = "", filepath.Join(in.Server.Workdir, liveTokenFile)
	cfg.PlatformTokenSHA256 = call.PlatformTokenSHA256(a.CredentialsKey, in.DeploymentID)
	payload := commands.Serve{Revision: in.Revision, TokenSHA256: strings.ToLower(in.TokenSHA256)}
	if remoteAgent(in.Server) {
		if payload.Fetch, err = a.remoteServe(ctx, in, &cfg); err != nil {
			return actdef.AgentCommand{}, err
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return actdef.AgentCommand{}, fmt.Errorf("encode live config: %w", err)
	}
	payload.Config = b
	return command(in.DeploymentID, in.Server, in.CommandID, commands.KindServe, payload)
}

// PlanAgentStop is Stop (and Delete's first part) on a server with an
// agent: the agent drains and stops the live revision.
func (a *Activities) PlanAgentStop(ctx context.Context, in actdef.AgentStopInput) (actdef.AgentCommand, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "PlanAgentStop" })()
	if err := a.ensureAgent(ctx, in.Server); err != nil {
		return actdef.AgentCommand{}, err
	}
	return command(in.DeploymentID, in.Server, in.CommandID, commands.KindStop, struct{}{})
}
