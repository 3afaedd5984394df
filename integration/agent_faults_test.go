package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// writeSlowSdist writes slowpkg-0.1.0.tar.gz into dir: a source
// distribution whose in-tree build backend (no build requirements: pip
// builds it offline) sleeps 8 s, then writes a pure-Python wheel whose
// module holds VALUE = 42. An install of it can be caught running.
func writeSlowSdist(t *testing.T, dir string) {
	t.Helper()
	backend := `import os, time, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    time.sleep(8)
    name = "slowpkg-0.1.0-py3-none-any.whl"
    info = "slowpkg-0.1.0.dist-info"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        z.writestr("slowpkg/__init__.py", "VALUE = 42\n")
        z.writestr(info + "/METADATA", "Metadata-Version: 2.1\nName: slowpkg\nVersion: 0.1.0\n")
        z.writestr(info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: algocloud-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(info + "/RECORD", "")
    return name
`
	files := [][2]string{
		{"slowpkg-0.1.0/PKG-INFO", "Metadata-Version: 2.1\nName: slowpkg\nVersion: 0.1.0\n"},
		{"slowpkg-0.1.0/pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"slowbackend\"\nbackend-path = [\".\"]\n"},
		{"slowpkg-0.1.0/slowbackend.py", backend},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(f[1]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slowpkg-0.1.0.tar.gz"), buf.Bytes(), 0o644))
}

// waitEvent waits until the deployment's progress log mentions sub.
func waitEvent(t *testing.T, c *client, id, sub string, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
		return strings.Contains(string(ev.Raw), sub)
	}, within, 100*time.Millisecond, "the progress log mentions %q", sub)
}

// duringStep runs step (a wizard step's request) in the background, waits
// for the moment in it that at() waits for, then calls strike (the fault:
// a signal to the agent) and waits for the step's answer (at most 4
// minutes). It returns the answer, when the fault struck and when the step
// answered, both counted from the step's start.
func duringStep(t *testing.T, step func() resp, at, strike func()) (r resp, struckAt, answeredAt time.Duration) {
	t.Helper()
	done := make(chan resp, 1)
	start := time.Now()
	go func() { done <- step() }()
	at()
	struckAt = time.Since(start)
	strike()
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("the step did not answer after the fault")
	}
	return r, struckAt, time.Since(start)
}

// kill is a strike of duringStep: SIGKILL to pid.
func kill(t *testing.T, pid int) func() {
	return func() { require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) }
}

// TestAgentKilledMidInstall: the server's agent SIGKILLed while pip builds
// a requirement (8 s) in Install; the provider starts the agent again, the
// step completes (the command runs again on the new agent), the algorithm
// imports the package in Test Code, and one agent runs for the server.
func TestAgentKilledMidInstall(t *testing.T) {
	wheels := t.TempDir()
	writeSlowSdist(t, wheels)
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id := createProvisioned(t, c, "agent-kill-install")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	commit(t, repo, map[string]string{
		"aai_pip-requirements.txt": "slowpkg==0.1.0\n",
		"aai_main.py":              strings.Replace(string(src), "import numpy as np\n", "import numpy as np\nimport slowpkg\nassert slowpkg.VALUE == 42\n", 1),
	})
	require.Equal(t, http.StatusOK, c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"}).Status)
	agents := agentPIDs(t, id)
	require.Len(t, agents, 1)

	var building []int
	r, killedAt, took := duringStep(t, func() resp { return c.Step(id, "install_requirements", nil) }, func() {
		waitEvent(t, c, id, "slowpkg", time.Minute) // pip is at it
		time.Sleep(time.Second)
		for _, pid := range procsWithArg(t, filepath.Join(data, "servers", id)) {
			if descendsFrom(t, pid, agents[0]) {
				building = append(building, pid)
			}
		}
		require.NotEmpty(t, building, "the install runs under the agent when it is killed")
	}, kill(t, agents[0]))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	now := agentPIDs(t, id)
	require.Len(t, now, 1, "exactly one agent for the server")
	require.NotEqual(t, agents[0], now[0], "the provider started a new agent")
	require.Equal(t, os.Getpid(), parentOf(t, now[0]))
	for _, pid := range building {
		require.False(t, syscall.Kill(pid, 0) == nil && !zombie(pid), "pid %d of the killed install is gone", pid)
	}
	r = c.Step(id, "test", nil)
	require.Equal(t, http.StatusOK, r.Status, "the installed package imports: %s", r.Raw)
	require.Len(t, agentPIDs(t, id), 1)
	// The recovery: the kill to the answer, the re-run's pip build (8 s) included.
	t.Logf("FIGURES agent killed mid-install: killed at %v, install answered at %v (%v after the kill)",
		killedAt.Round(time.Millisecond), took.Round(time.Millisecond), (took - killedAt).Round(time.Millisecond))
}

// TestAgentKilledMidSwapUnderLoad: a live deployment under 3 clients; a
// Complete swaps in a revision whose __init__ takes 4 s, and the agent is
// SIGKILLed while the new revision boots. The step finishes, every answer
// of each client is the old revision's until the new one's (never back),
// one agent and one serving process run afterwards; failed requests are
// counted and logged (the design promises no duplicate serving process
// whatever moment the agent dies, and a socket the serving revision keeps).
func TestAgentKilledMidSwapUnderLoad(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Swap kill", "api_name": "agent-kill-swap", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	throughTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	img := samplePNG(t, 32, 24)
	ok, oldBody := predict(t, hc, endpoint, token, img)
	require.Equal(t, http.StatusOK, ok.StatusCode, string(oldBody))
	agents := agentPIDs(t, id)
	require.Len(t, agents, 1)

	load := startSwapLoad(t, hc, endpoint, token, img, oldBody, 3)
	defer load.wait()
	time.Sleep(2 * time.Second)
	stageSlowRevision(t, c, id, repo, load)

	before := map[int]bool{}
	for _, pid := range procsWithArg(t, filepath.Join(data, "servers", id)) {
		before[pid] = true
	}
	var booting int
	r, killedAt, took := duringStep(t, func() resp { return c.Step(id, "complete", nil) }, func() {
		// Wait for the new revision's process (it boots for 4 s), then kill the agent.
		require.Eventually(t, func() bool {
			for _, pid := range procsWithArg(t, filepath.Join(data, "servers", id)) {
				if pid != agents[0] && parentOfQuiet(pid) == agents[0] && strings.Contains(cmdline(pid), "algocloud-infer") {
					if !before[pid] { // not the serving revision
						booting = pid
						return true
					}
				}
			}
			return false
		}, time.Minute, 50*time.Millisecond, "the new revision starts")
		time.Sleep(time.Second)
	}, kill(t, agents[0]))
	t.Logf("killed the agent %d %v after Complete began, the new revision %d booting", agents[0], killedAt.Round(time.Millisecond), booting)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	requireSwapped(t, load, swapped{
		c: c, id: id, agents: func() []int { return agentPIDs(t, id) }, killed: agents[0],
		revisions: func() int { return inferProcesses(t, data) - 1 }, // less the agent
		figures:   "agent killed mid-swap", killedAt: killedAt, took: took,
	})
}

// TestKillDevMidInstallAndComplete: the real `algocloud dev` SIGKILLed
// while its server's agent runs pip (Install), started again on the same
// data: the step finishes by itself; then SIGKILLed while Complete boots
// the revision (its __init__ takes 3 s), started again: the deployment
// goes live, with one agent and one serving process for the server.
func TestKillDevMidInstallAndComplete(t *testing.T) {
	wheels := t.TempDir()
	writeSlowSdist(t, wheels)
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	flags := []string{"--pip-find-links", wheels, "--pip-no-index"}
	d := startDev(t, data, apiPort, temporalPort, flags...)
	defer func() { _ = d.Cmd.Process.Kill() }()
	token := d.token // printed at the first start only
	c := testenv.NewAPIClient(t, d.api, token)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "kill dev", "api_name": "kill-dev-agent", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{
		"aai_pip-requirements.txt": "slowpkg==0.1.0\n",
		"aai_main.py":              strings.Replace(slowInitMain, "import numpy as np\n", "import numpy as np\nimport slowpkg\nassert slowpkg.VALUE == 42\n", 1),
	})
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)
	require.Equal(t, http.StatusOK, c.Step(id, "fetch_code", map[string]any{"git_url": repo}).Status)
	serverDir := filepath.Join(data, "servers", id)

	restart := func(step string) {
		t.Helper()
		require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
		<-d.Done()
		require.Eventually(t, func() bool { return len(agentPIDs(t, id)) == 0 }, 10*time.Second, 100*time.Millisecond,
			"the server's agent dies with the platform")
		d = startDev(t, data, apiPort, temporalPort, flags...)
		c.Base = d.api
		var st resp
		require.Eventually(t, func() bool {
			st = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
			return st.Str("state", "busy") == "" && st.Str("state", "step") == step
		}, 3*time.Minute, 500*time.Millisecond, "the interrupted step finishes after the restart (%s)", step)
		require.Len(t, agentPIDs(t, id), 1, "one agent for the server")
	}

	// Install: killed while pip builds slowpkg.
	go func() {
		_, _, _ = testenv.TryAPI(d.api, token, http.MethodPost, "/api/v1/deployments/"+id+"/steps/install_requirements", nil)
	}()
	waitEvent(t, c, id, "slowpkg", time.Minute)
	time.Sleep(time.Second)
	start := time.Now()
	restart("requirements_installed")
	t.Logf("FIGURES dev killed mid-install: the step finished %v after the kill", time.Since(start).Round(time.Millisecond))
	r = c.Step(id, "test", nil)
	require.Equal(t, http.StatusOK, r.Status, "the installed package imports: %s", r.Raw)

	// Complete: killed while the revision boots.
	before := map[int]bool{}
	for _, pid := range procsWithArg(t, serverDir) {
		before[pid] = true
	}
	go func() {
		_, _, _ = testenv.TryAPI(d.api, token, http.MethodPost, "/api/v1/deployments/"+id+"/steps/complete", nil)
	}()
	require.Eventually(t, func() bool {
		for _, pid := range procsWithArg(t, serverDir) {
			if cl := cmdline(pid); !before[pid] && strings.Contains(cl, "algocloud-infer") && !strings.Contains(cl, "algocloud-infer agent") {
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond, "the revision starts")
	time.Sleep(time.Second)
	start = time.Now()
	restart("completed")
	t.Logf("FIGURES dev killed mid-complete: the step finished %v after the kill", time.Since(start).Round(time.Millisecond))
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	live, _ := st.Body["state"].(map[string]any)["live"].(map[string]any)
	require.NotNil(t, live, string(st.Raw))
	require.Equal(t, 1, countServers(t, data), "no duplicated server")
	require.Eventually(t, func() bool { return inferProcesses(t, data) == 2 }, time.Minute, 200*time.Millisecond,
		"exactly the agent and the live endpoint run")

	require.NoError(t, d.Cmd.Process.Signal(os.Interrupt))
	select {
	case <-d.Done():
	case <-time.After(time.Minute):
		t.Fatal("algocloud dev did not stop on Ctrl-C")
	}
	require.Eventually(t, func() bool { return inferProcesses(t, data) == 0 }, 10*time.Second, 100*time.Millisecond)
}

// TestAgentThatCannotStartFailsFast: a server whose agent exits as soon as
// it starts (here algocloud-infer's agent mode behind a wrapper that fails
// it, as a bad flag or a broken binary would) fails Provision within
// seconds with an error that says so and shows the agent's own words,
// instead of leaving its commands pending to the step's time limit; the
// provider does not keep restarting it afterwards. The rest of
// algocloud-infer (the agent's status client) is the real binary.
func TestAgentThatCannotStartFailsFast(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "infer-agent-broken")
	script := "#!/bin/sh\n" +
		"if [ \"$1\" = agent ] && [ \"$2\" != status ] && [ \"$2\" != stop ]; then\n" +
		"  echo 'agent: cannot use its folder: simulated failure' >&2\n  exit 3\nfi\n" +
		"exec " + inferBin + " \"$@\"\n"
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) { o.InferCommand = []string{wrapper} })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Broken agent", "api_name": "broken-agent", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")

	start := time.Now()
	r = c.Step(id, "provision", nil)
	took := time.Since(start)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Equal(t, "step_failed", r.Str("code"), string(r.Raw))
	require.Contains(t, string(r.Raw), "cannot start", string(r.Raw))
	require.Contains(t, string(r.Raw), "simulated failure", "the agent's own words: %s", r.Raw)
	require.Less(t, took, 30*time.Second, "failed fast, not at the step's time limit (agent heartbeat 30 s, commands 10 to 30 min)")
	time.Sleep(2 * time.Second) // a supervisor still at it would have restarted it by now
	_, err := p.Provider.Status(context.Background(), compute.Handle{Provider: local.ProviderName, ServerID: id, Name: "agent"})
	require.ErrorIs(t, err, compute.ErrNotFound, "the agent service was stopped, not left restarting")
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Contains(t, st.Body["error"], "cannot start", string(st.Raw))
	t.Logf("FIGURES agent that cannot start: provision failed after %v", took.Round(time.Millisecond))
}

// TestAgentKilledMidTestCode: the wizard's Test Code through the workflow,
// the server's agent SIGKILLed while its test server loads the algorithm
// (__init__ takes 4 s). The provider starts the agent again, the test runs
// again there (the platform re-hands the command to the new agent at
// once), the step answers with a passing test logged once, one agent runs
// for the server, and no test server is left: the killed agent's dies with
// it (before the provider starts the next agent), the new one's stops with
// its test.
func TestAgentKilledMidTestCode(t *testing.T) {
	w := newSlowTestCode(t, "agent-kill-test")

	var testServer int
	goneBeforeRestart := false
	r, killedAt, took := duringStep(t, func() resp { return w.c.Step(w.id, "test", nil) }, func() {
		require.Eventually(t, func() bool {
			for _, pid := range w.testServers(t) {
				if descendsFrom(t, pid, w.agent) {
					testServer = pid
					return true
				}
			}
			return false
		}, time.Minute, 50*time.Millisecond, "the agent boots its test server")
		time.Sleep(time.Second) // in __init__
	}, func() {
		require.NoError(t, syscall.Kill(w.agent, syscall.SIGKILL))
		killed := time.Now()
		defer func() {
			t.Logf("FIGURES the killed agent's test server was gone %v after the kill", time.Since(killed).Round(time.Millisecond))
		}()
		// The test server dies with its agent (Pdeathsig), before the
		// provider starts a new agent (500 ms later at the earliest), whose
		// start would reap it otherwise.
		require.Eventually(t, func() bool {
			if syscall.Kill(testServer, 0) == nil && !zombie(testServer) {
				return false
			}
			goneBeforeRestart = len(agentPIDs(t, w.id)) == 0
			return true
		}, 10*time.Second, 10*time.Millisecond, "the killed agent's test server (pid %d) is gone", testServer)
	})
	require.True(t, goneBeforeRestart, "the test server died with its agent, not at the next agent's start")
	w.requireTestPassed(t, r)
	now := agentPIDs(t, w.id)
	require.Len(t, now, 1, "exactly one agent for the server")
	require.NotEqual(t, w.agent, now[0], "the provider started a new agent")
	ev := eventsText(t, w.c, w.id)
	require.Equal(t, 1, strings.Count(ev, "test passed"), "the outcome is logged once: %s", ev)
	require.Equal(t, 2, strings.Count(ev, "booting the inference server"), "the test ran again on the new agent, once: %s", ev)
	t.Logf("FIGURES agent killed mid-test: killed at %v, Test Code answered at %v (%v after the kill, the 4 s __init__ of the re-run included)",
		killedAt.Round(time.Millisecond), took.Round(time.Millisecond), (took - killedAt).Round(time.Millisecond))
}

// TestAgentStoppedMidTestCode: the server's agent SIGSTOPped while Test
// Code's server loads the algorithm (__init__ takes 4 s): alive, so nothing
// restarts it, but silent, as a hung agent or one cut off from the API is.
// The platform notices within two of the agent's 5 s poll periods (the
// step's log says the agent stopped polling; the activity attempt is
// failed for a retry), not at the 30 s heartbeat timeout. Let go on
// (SIGCONT), the same agent process gets the command again under a new
// lease and answers it with the test it was running: the test ran once,
// passed, and no test server is left.
func TestAgentStoppedMidTestCode(t *testing.T) {
	w := newSlowTestCode(t, "agent-stop-test")
	// The hub looks for silent agents from 30 s after its start (agents
	// that polled the API before a restart need that long to poll again).
	time.Sleep(time.Until(w.started.Add(31 * time.Second)))

	var noticed time.Duration
	r, stoppedAt, took := duringStep(t, func() resp { return w.c.Step(w.id, "test", nil) }, func() {
		waitEvent(t, w.c, w.id, "booting the inference server", time.Minute)
		time.Sleep(time.Second) // in __init__
	}, func() {
		require.NoError(t, syscall.Kill(w.agent, syscall.SIGSTOP))
		at := time.Now()
		defer func() { _ = syscall.Kill(w.agent, syscall.SIGCONT) }() // whatever happens
		waitEvent(t, w.c, w.id, "stopped polling", 30*time.Second)
		noticed = time.Since(at)
		require.Equal(t, []int{w.agent}, agentPIDs(t, w.id), "the same agent, stopped, not restarted")
	})
	require.Less(t, noticed, 20*time.Second, "noticed well before the 30 s heartbeat timeout")
	w.requireTestPassed(t, r)
	require.Equal(t, []int{w.agent}, agentPIDs(t, w.id), "one agent, the same process")
	ev := eventsText(t, w.c, w.id)
	require.Equal(t, 1, strings.Count(ev, "booting the inference server"), "the test ran once: the agent answered it under the new lease: %s", ev)
	require.Equal(t, 1, strings.Count(ev, "test passed"), ev)
	t.Logf("FIGURES agent stopped mid-test: stopped at %v, noticed %v after, Test Code answered at %v (%v after the stop)",
		stoppedAt.Round(time.Millisecond), noticed.Round(time.Millisecond), took.Round(time.Millisecond), (took - stoppedAt).Round(time.Millisecond))
}
