package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// Faults on the EC2 stand-in instance (the user data's own agent, started
// by agentStandIn): its agent SIGKILLed mid-install and mid-swap, and cut
// off from the platform's API for longer than a command's heartbeat. As on
// a real instance, a killed agent is started again by its unit
// (algocloud-agent.service: Restart=always, RestartSec=2, KillMode=process,
// so its revisions outlive it): restartStandInAgent plays systemd, running
// the unit's ExecStartPre (agent-setup.sh) and ExecStart again.

// ec2AgentWorld is a platform with EC2 agents on moto, one deployment
// provisioned with its stand-in agent running.
type ec2AgentWorld struct {
	ctx      context.Context
	w        *cloudWorld
	p        *platform.Platform
	c        *client
	si       *agentStandIn
	id       string
	userData string
}

// newEC2AgentWorld starts the platform with --ec2-agents (EC2Agents set
// explicitly, whatever the default) and provisions a deployment named
// apiName, its stand-in agent started from the user data.
func newEC2AgentWorld(t *testing.T, ctx context.Context, apiName string, mutate ...func(*platform.Options)) *ec2AgentWorld {
	t.Helper()
	e := &ec2AgentWorld{ctx: ctx, w: newCloudWorld(t, ctx)}
	port := testenv.FreePort(t)
	e.si = &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	reapStandIn(t, e.si.home)
	e.p = startEC2AgentPlatform(t, e.w, t.TempDir(), e.si, port, mutate...)
	t.Cleanup(e.p.Stop)
	e.c = newClient(t, e.p, devToken(t, e.p))
	r := e.c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "EC2 agent fault " + apiName, "api_name": apiName, "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	e.id = r.Str("id")
	_, e.userData = provisionWithAgent(t, ctx, e.c, e.w, e.si, e.id)
	return e
}

// agents lists the stand-in's live agent processes.
func (e *ec2AgentWorld) agents(t *testing.T) []int { return agentPIDs(t, ec2.AgentID(e.id)) }

// killAgent SIGKILLs the stand-in's agent process alone (KillMode=process:
// the revisions and installs it started are left to the next agent).
func (e *ec2AgentWorld) killAgent(t *testing.T) int {
	t.Helper()
	require.NotNil(t, e.si.cmd, "the stand-in's agent runs")
	pid := e.si.cmd.Process.Pid
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	_ = e.si.cmd.Wait()
	e.si.cmd = nil
	return pid
}

// killAndRestart is a strike of duringStep: the stand-in's agent
// SIGKILLed, then started again 2 s later (the unit's RestartSec).
func (e *ec2AgentWorld) killAndRestart(t *testing.T) func() {
	return func() {
		e.killAgent(t)
		time.Sleep(2 * time.Second)
		e.restartStandInAgent(t)
	}
}

// restartStandInAgent starts the agent again as its unit would after
// RestartSec: agent-setup.sh, then the ExecStart line.
func (e *ec2AgentWorld) restartStandInAgent(t *testing.T) {
	t.Helper()
	e.si.start(t, e.userData)
}

// revisionProcs lists the stand-in's algocloud-infer processes other than
// its agents (serving revisions, test servers).
func (e *ec2AgentWorld) revisionProcs(t *testing.T) []int {
	var out []int
	for _, pid := range procsWithArg(t, e.si.home) {
		argv := strings.Fields(cmdline(pid))
		if len(argv) > 1 && filepath.Base(argv[0]) == "algocloud-infer" && argv[1] != "agent" {
			out = append(out, pid)
		}
	}
	return out
}

// reapStandIn ends, at the test's end, every process group the stand-in
// left (its agents' groups: revisions started by a killed agent stay in
// the dead agent's group, which the stand-in's own stop does not reach).
func reapStandIn(t *testing.T, home string) {
	t.Cleanup(func() {
		for _, pid := range procsWithArg(t, home) {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != syscall.Getpgrp() {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			} else {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// TestEC2AgentKilledMidInstall: the instance's agent SIGKILLed while pip
// builds a requirement (8 s) in Install, and started again by its unit 2 s
// later; the step completes (the command is handed to the new agent), the
// killed install's processes are gone, one agent runs, and Test Code on the
// instance imports the package.
func TestEC2AgentKilledMidInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wheels := t.TempDir()
	writeSlowSdist(t, wheels)
	e := newEC2AgentWorld(t, ctx, "ec2-kill-install", func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
	})
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	commit(t, repo, map[string]string{
		"aai_pip-requirements.txt": "slowpkg==0.1.0\n",
		"aai_main.py":              strings.Replace(string(src), "import numpy as np\n", "import numpy as np\nimport slowpkg\nassert slowpkg.VALUE == 42\n", 1),
	})
	require.Equal(t, http.StatusOK, e.c.Step(e.id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"}).Status)
	agents := e.agents(t)
	require.Len(t, agents, 1)

	var building []int
	r, killedAt, took := duringStep(t, func() resp { return e.c.Step(e.id, "install_requirements", nil) }, func() {
		waitEvent(t, e.c, e.id, "slowpkg", time.Minute) // pip is at it
		time.Sleep(time.Second)
		for _, pid := range procsWithArg(t, e.si.home) {
			if descendsFrom(t, pid, agents[0]) {
				building = append(building, pid)
			}
		}
		require.NotEmpty(t, building, "the install runs under the agent when it is killed")
	}, e.killAndRestart(t))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	now := e.agents(t)
	require.Len(t, now, 1, "exactly one agent for the server")
	require.NotEqual(t, agents[0], now[0], "a new agent")
	for _, pid := range building {
		require.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil || zombie(pid) }, 10*time.Second, 100*time.Millisecond,
			"pid %d of the killed install is gone", pid)
	}
	r = e.c.Step(e.id, "test", nil)
	require.Equal(t, http.StatusOK, r.Status, "the installed package imports: %s", r.Raw)
	require.Len(t, e.agents(t), 1)
	t.Logf("FIGURES EC2 agent killed mid-install: killed at %v, restarted 2 s later, install answered at %v (%v after the kill)",
		killedAt.Round(time.Millisecond), took.Round(time.Millisecond), (took - killedAt).Round(time.Millisecond))
}

// TestEC2AgentKilledMidSwapUnderLoad: a live EC2 agent deployment under 3
// clients; a redeploy's Complete swaps in a revision whose __init__ takes
// 4 s, and the instance's agent is SIGKILLed while the new revision boots
// (started again by its unit 2 s later). The step finishes, the old
// revision answers until the new one does (never back), no request fails,
// and one agent and one serving process run afterwards.
func TestEC2AgentKilledMidSwapUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := newEC2AgentWorld(t, ctx, "ec2-kill-swap")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	endpoint, token := e.deploy(t, repo)
	hc := ec2AgentClient(e.p.CA.Pool(), e.si.listen)
	hc.Transport.(*http.Transport).DisableKeepAlives = false // clients keep connections, as real ones do
	img := samplePNG(t, 32, 24)
	ok, oldBody := predict(t, hc, endpoint, token, img)
	require.Equal(t, http.StatusOK, ok.StatusCode, string(oldBody))
	agents := e.agents(t)
	require.Len(t, agents, 1)

	load := startSwapLoad(t, hc, endpoint, token, img, oldBody, 3)
	defer load.wait()
	time.Sleep(2 * time.Second)
	stageSlowRevision(t, e.c, e.id, repo, load)
	var serving []int
	require.Eventually(t, func() bool { serving = e.revisionProcs(t); return len(serving) == 1 }, 30*time.Second, 100*time.Millisecond,
		"one serving revision before the swap (the test server gone)")

	var booting int
	r, killedAt, took := duringStep(t, func() resp { return e.c.Step(e.id, "complete", nil) }, func() {
		require.Eventually(t, func() bool {
			for _, pid := range e.revisionProcs(t) {
				if pid != serving[0] && descendsFrom(t, pid, agents[0]) {
					booting = pid
					return true
				}
			}
			return false
		}, time.Minute, 50*time.Millisecond, "the new revision starts")
		time.Sleep(time.Second)
	}, e.killAndRestart(t))
	t.Logf("killed the agent %d %v after Complete began, the new revision %d booting then", agents[0], killedAt.Round(time.Millisecond), booting)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	requireSwapped(t, load, swapped{
		c: e.c, id: e.id, agents: func() []int { return e.agents(t) }, killed: agents[0],
		revisions: func() int { return len(e.revisionProcs(t)) },
		figures:   "EC2 agent killed mid-swap", killedAt: killedAt, took: took,
	})
}

// TestEC2AgentCutOffFromAPI: the instance's agent gone for 40 s (longer
// than a command's 30 s heartbeat timeout) while Test Code of a redeploy
// waits for it: the step keeps waiting (the command is handed out again,
// not failed), the live revision keeps answering meanwhile, and once the
// agent is back (its unit starts it again) the step finishes with a
// passing test, run once by the new agent.
func TestEC2AgentCutOffFromAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := newEC2AgentWorld(t, ctx, "ec2-cut-off")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	endpoint, token := e.deploy(t, repo)
	hc := ec2AgentClient(e.p.CA.Pool(), e.si.listen)
	commit(t, repo, map[string]string{"NOTES.txt": "second revision\n"})
	stepsThrough(t, e.c, e.id, repo, "install_requirements")

	e.killAgent(t)
	const away = 40 * time.Second
	done := make(chan resp, 1)
	start := time.Now()
	go func() { done <- e.c.Step(e.id, "test", nil) }()
	served := 0
	for time.Since(start) < away {
		select {
		case r := <-done:
			t.Fatalf("Test Code answered while the agent was away: %d %s", r.Status, r.Raw)
		case <-time.After(2 * time.Second):
		}
		res, out := predict(t, hc, endpoint, token, samplePNG(t, 16, 16))
		require.Equal(t, http.StatusOK, res.StatusCode, "the live revision serves while its agent is away: %s", out)
		served++
	}
	st := e.c.Do(http.MethodGet, "/api/v1/deployments/"+e.id, nil)
	require.Equal(t, "test", st.Str("state", "busy"), "the step still waits: %s", st.Raw)
	back := time.Now()
	e.restartStandInAgent(t)

	var r resp
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("Test Code did not finish after the agent came back")
	}
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	st = e.c.Do(http.MethodGet, "/api/v1/deployments/"+e.id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["test"].(map[string]any)["ok"], string(st.Raw))
	require.Len(t, e.agents(t), 1)
	ev := eventsText(t, e.c, e.id)
	t.Logf("FIGURES EC2 agent cut off %v: Test Code answered %v after it came back (%v after the step began); %d predictions answered meanwhile",
		away, time.Since(back).Round(time.Millisecond), time.Since(start).Round(time.Millisecond), served)
	require.Equal(t, 2, strings.Count(ev, "booting the inference server"), "the redeploy's test ran once, on the agent that came back: %s", ev)
}

// deploy walks the deployment to live with repo's code on the stand-in and
// returns its endpoint and token.
func (e *ec2AgentWorld) deploy(t *testing.T, repo string) (string, string) {
	t.Helper()
	r := stepsThrough(t, e.c, e.id, repo, "complete")
	return r.Str("endpoint"), r.Str("token")
}

// cutProxy is a TCP proxy from the stand-in's agent to the platform's API
// that the test can cut: while cut, it closes every connection it carries
// and each new one at once, as a network partition the agent cannot tell
// from a dead platform would; the agent process itself keeps running.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

// newCutProxy proxies a new loopback port to target (host:port).
func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		_ = c.Close()
		_ = up.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track records a proxied pair, unless the proxy is cut.
func (p *cutProxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c], p.conns[up] = true, true
	return true
}

// setCut cuts the proxy (closing what it carries) or lets traffic through again.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			_ = c.Close()
		}
		clear(p.conns)
	}
}

// TestEC2AgentCutOffMidTestCode: the instance's agent reaches the
// platform's API through a proxy; the proxy is cut for 40 s (longer than a
// command's 30 s heartbeat timeout) while the agent runs Test Code (its
// test server in a 4 s __init__), the agent process running on. The step
// waits, the live revision keeps answering, and once the network is back
// the step finishes with a passing test, the same agent having stayed up
// throughout (no restart, no second agent).
func TestEC2AgentCutOffMidTestCode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := newEC2AgentWorld(t, ctx, "ec2-cut-mid-test")
	// The agent again, this time reaching the API through the proxy (the
	// user data's --platform pointed at it); nothing serves yet.
	argv, err := ec2.AgentExecStart(e.userData)
	require.NoError(t, err)
	platformURL := ""
	for i := 1; i < len(argv); i++ {
		if argv[i-1] == "--platform" {
			platformURL = argv[i]
		}
	}
	u, err := url.Parse(platformURL)
	require.NoError(t, err)
	require.Equal(t, "http", u.Scheme, "the dev API is plain HTTP on loopback")
	proxy := newCutProxy(t, u.Host)
	e.si.stop()
	e.userData = strings.ReplaceAll(e.userData, "--platform "+platformURL, "--platform http://"+proxy.ln.Addr().String())
	e.restartStandInAgent(t)

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	endpoint, token := e.deploy(t, repo)
	hc := ec2AgentClient(e.p.CA.Pool(), e.si.listen)
	commit(t, repo, map[string]string{"aai_main.py": slowInit4sMain})
	stepsThrough(t, e.c, e.id, repo, "install_requirements")
	agents := e.agents(t)
	require.Len(t, agents, 1)
	serving := e.revisionProcs(t)

	const away = 40 * time.Second
	served := 0
	var back time.Time
	r, cutAt, _ := duringStep(t, func() resp { return e.c.Step(e.id, "test", nil) }, func() {
		require.Eventually(t, func() bool { return len(e.revisionProcs(t)) > len(serving) }, time.Minute, 50*time.Millisecond,
			"the agent boots its test server")
	}, func() {
		proxy.setCut(true)
		for cut := time.Now(); time.Since(cut) < away; served++ {
			time.Sleep(2 * time.Second)
			res, out := predict(t, hc, endpoint, token, samplePNG(t, 16, 16))
			require.Equal(t, http.StatusOK, res.StatusCode, "the live revision serves while its agent is cut off: %s", out)
		}
		st := e.c.Do(http.MethodGet, "/api/v1/deployments/"+e.id, nil)
		require.Equal(t, "test", st.Str("state", "busy"), "the step still waits: %s", st.Raw)
		proxy.setCut(false)
		back = time.Now()
	})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	st := e.c.Do(http.MethodGet, "/api/v1/deployments/"+e.id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["test"].(map[string]any)["ok"], string(st.Raw))
	answered := time.Since(back)
	require.Equal(t, agents, e.agents(t), "the same agent throughout, no second one")
	// How the command came back: the agent's own lines about it (result
	// delivered, or refused as stale and the command run again).
	var lines []string
	for _, l := range strings.Split(e.si.log.String(), "\n") {
		if strings.Contains(l, "result") || strings.Contains(l, "stale") || strings.Contains(l, ".test.") {
			lines = append(lines, l)
		}
	}
	t.Logf("the agent on its test command:\n%s", strings.Join(lines, "\n"))
	t.Logf("FIGURES EC2 agent cut off %v mid-Test Code (cut %v after the step began): answered %v after the network came back; %d predictions answered meanwhile",
		away, cutAt.Round(time.Millisecond), answered.Round(time.Millisecond), served)
}
