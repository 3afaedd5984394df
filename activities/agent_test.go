package activities

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
)

// minter records credentials minted and revoked (the hub's part is tested
// in agenthub and, with the real agent, in integration
// TestLocalServerRunsItsAgent).
type minter struct {
	mu      sync.Mutex
	minted  map[string]int
	revoked map[string]bool
}

func (m *minter) MintCredential(_ context.Context, server string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.minted[server]++
	return "ag_" + strings.Repeat("x", 43), nil
}

func (m *minter) RevokeCredential(_ context.Context, server string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked[server] = true
	return nil
}

func (m *minter) Artifact(context.Context, string, string, string) ([]byte, error) {
	return nil, os.ErrNotExist
}

func (m *minter) DeleteArtifacts(context.Context, string) error { return nil }

// The workflows name agenthub's activity by string.
func TestRunOnServerNameIsTheHubs(t *testing.T) {
	require.Equal(t, agenthub.ActivityName, actdef.RunOnServerName)
}

// Provision with an agent mints the server's credential once, writes it
// 0600 into <server>/agent and starts one supervised agent (a stand-in
// process here: the provider runs whatever its command is); the plans
// carry the worker's settings (sandbox groups per role and revision, the
// venv per install revision, the token file and hashes, never a token);
// Release stops the agent and revokes the credential.
func TestAgentProvisionPlansAndRelease(t *testing.T) {
	data := t.TempDir()
	// sh -c 'sleep 600; :' sh agent --dir ...: a process whose command
	// line holds the agent's arguments, as the real one's does. (Not
	// "exec sleep": once exec'd, the command line is "sleep 600", and a
	// second Start, not recognising it, started another agent.)
	prov, err := local.New(local.Options{DataDir: data, Command: []string{"/bin/sh", "-c", "sleep 600; :", "sh"}, StopGrace: time.Second})
	require.NoError(t, err)
	defer prov.Close()
	m := &minter{minted: map[string]int{}, revoked: map[string]bool{}}
	// The stand-in agent's control socket, where the plans ask whether it
	// answers (the real agent's is integration's; one that never answers
	// is TestAgentThatCannotStartFailsFast there). /bin/true stands in for
	// the agent's stop client at Release.
	statuses := serveAgentStatus(t, filepath.Join(data, "servers", "dep1", "agent"))
	a := &Activities{Provider: prov, PredictTimeout: 9 * time.Second, CredentialsKey: make([]byte, 32),
		Agents: &AgentSettings{Hub: m, Command: []string{"/bin/true"}, PlatformURL: "http://127.0.0.1:1"}}
	ctx := context.Background()
	sp := testSpecWith(spec.Spec{APIName: "seg", Requirements: []string{"numpy"}})
	in := actdef.ProvisionInput{DeploymentID: "dep1", Spec: sp, Agent: true}
	srv, err := a.ProvisionServer(ctx, in)
	require.NoError(t, err)
	require.True(t, srv.Agent)
	again, err := a.ProvisionServer(ctx, in)
	require.NoError(t, err)
	require.Equal(t, srv, again)
	require.Equal(t, 1, m.minted["dep1"], "a retried provision keeps the credential")
	fi, err := os.Stat(filepath.Join(srv.Workdir, "agent", "credential"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	st, err := prov.Status(ctx, compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: "agent"})
	require.NoError(t, err)
	require.Equal(t, compute.Running, st.State)

	// Without the ask (an old history's provision) no agent.
	plain, err := a.ProvisionServer(ctx, actdef.ProvisionInput{DeploymentID: "dep2", Spec: sp})
	require.NoError(t, err)
	require.False(t, plain.Agent)

	code := actdef.CodeInfo{Revision: 3, Dir: filepath.Join(srv.Workdir, "code", "3"), Requirements: []string{"pillow"}}
	require.NoError(t, os.MkdirAll(code.Dir, 0o755))
	plan, err := a.PlanAgentInstall(ctx, actdef.AgentInstallInput{
		InstallInput: actdef.InstallInput{DeploymentID: "dep1", Server: srv, Spec: sp, Code: code}, CommandID: "dep1.install.1", InstallRevision: 2})
	require.NoError(t, err)
	require.Equal(t, commands.KindInstall, plan.Command.Kind)
	require.Equal(t, "dep1", plan.Command.Server)
	var ins commands.Install
	require.NoError(t, json.Unmarshal(plan.Command.Payload, &ins))
	require.Equal(t, filepath.Join(srv.Workdir, "installs", "2", "venv"), ins.Venv)
	require.Equal(t, []string{"numpy", "pillow"}, ins.Requirements)
	require.Contains(t, string(ins.Sandbox), `"dep1.install"`)

	build := actdef.Build{DeploymentID: "dep1", Server: srv, Spec: sp, Code: code,
		Install: actdef.InstallInfo{Revision: 2, Python: ins.Venv + "/bin/python"}, Cert: actdef.CertInfo{CertFile: "/c.pem", KeyFile: "/k.pem"}}
	cmd, err := a.PlanAgentTest(ctx, actdef.AgentTestInput{Build: build, CommandID: "dep1.test.2", Revision: "c3-i2-2"})
	require.NoError(t, err)
	var tst commands.Test
	require.NoError(t, json.Unmarshal(cmd.Payload, &tst))
	var cfg inferapi.Config
	require.NoError(t, json.Unmarshal(tst.Config, &cfg))
	require.Equal(t, "dep1.test", cfg.Sandbox.Group)
	require.Empty(t, cfg.TokenSHA256, "the agent makes the test's token")
	require.Equal(t, ins.Venv+"/bin/python", cfg.Python)

	tok := strings.Repeat("ab", 32)
	cmd, err = a.PlanAgentServe(ctx, actdef.AgentServeInput{Build: build, CommandID: "dep1.serve.3", Revision: "c3-i2-s1", TokenSHA256: tok})
	require.NoError(t, err)
	var srvCmd commands.Serve
	require.NoError(t, json.Unmarshal(cmd.Payload, &srvCmd))
	require.Equal(t, tok, srvCmd.TokenSHA256)
	require.NoError(t, json.Unmarshal(srvCmd.Config, &cfg))
	require.Equal(t, "dep1.live.c3-i2-s1", cfg.Sandbox.Group, "two revisions never share a cgroup")
	require.Equal(t, filepath.Join(srv.Workdir, liveTokenFile), cfg.TokenFile)
	require.Empty(t, cfg.TokenSHA256)
	require.NotEmpty(t, cfg.PlatformTokenSHA256)
	_, err = a.PlanAgentServe(ctx, actdef.AgentServeInput{Build: build, CommandID: "dep1.serve.4", Revision: "r", TokenSHA256: "nope"})
	require.ErrorContains(t, err, "64 hex digits")

	require.GreaterOrEqual(t, statuses.Load(), int64(4), "each plan asked the agent's socket itself")

	require.NoError(t, a.ReleaseServer(ctx, srv))
	require.True(t, m.revoked["dep1"])
	_, err = os.Stat(srv.Workdir)
	require.True(t, os.IsNotExist(err))
	_, err = prov.Status(ctx, compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: "agent"})
	require.ErrorIs(t, err, compute.ErrNotFound)
}

func testSpecWith(sp spec.Spec) spec.Spec {
	sp.Input, sp.Output, sp.Threads = spec.Image, spec.Image, 1
	return sp.WithDefaults()
}

// serveAgentStatus answers GET /v1/status on dir/agent.sock, as an agent's
// control socket does, and counts the requests.
func serveAgentStatus(t *testing.T, dir string) *atomic.Int64 {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	l, err := net.Listen("unix", filepath.Join(dir, "agent.sock"))
	require.NoError(t, err)
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
		_, _ = w.Write([]byte(`{"serving":null}`))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &n
}

// TestAgentAnswersDialsTheSocket: the check reads the control socket
// directly, also through a folder whose socket path is too long for a
// unix address, and says no when nothing listens.
func TestAgentAnswersDialsTheSocket(t *testing.T) {
	deep := t.TempDir()
	for len(filepath.Join(deep, "agent", "agent.sock")) <= maxSocketPath {
		deep = filepath.Join(deep, "a-rather-long-folder-name")
	}
	srv := compute.Server{ID: "s1", Workdir: deep}
	a := &Activities{Agents: &AgentSettings{}}
	require.False(t, a.agentAnswers(context.Background(), srv), "nothing listens yet")
	require.NoError(t, os.MkdirAll(AgentDir(srv), 0o700))
	addr, closeDir, err := agentSocket(AgentDir(srv))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(addr, "/proc/self/fd/"), addr)
	l, err := net.Listen("unix", addr)
	closeDir()
	require.NoError(t, err)
	n := atomic.Int64{}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte(`{}`))
	})}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	start := time.Now()
	require.True(t, a.agentAnswers(context.Background(), srv))
	t.Logf("FIGURES agent status through its socket: %v", time.Since(start))
	require.EqualValues(t, 1, n.Load())
}
