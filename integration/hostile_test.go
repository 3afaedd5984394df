package integration

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testhostile"
)

// TestHostileAlgorithmIsContained deploys, beside a friendly endpoint, a
// hostile algorithm whose package's build backend (during the install),
// __init__, Test Code and predict each try to read the CA key, the other
// server's code and TLS key, the databases, its own TLS key and the
// platform's environment; write outside its folder; see, kill or ptrace the
// platform and the other endpoint; reach the API, the Temporal frontend and
// UI and the other endpoint on loopback; and gain privileges. Every attempt
// fails. Then it allocates past its memory limit (422 out_of_memory naming
// the limit, the endpoint keeps serving), forks without end (stops at the
// task limit) and fills the disk (stops at its private /tmp's size). Nothing
// of the platform changes and the other endpoint serves throughout.
func TestHostileAlgorithmIsContained(t *testing.T) {
	if err := sandbox.Available(); err != nil {
		t.Fatalf("the sandbox must run here (scripts/setup.sh installs bubblewrap): %v", err)
	}
	data := t.TempDir()
	wheels := t.TempDir()
	uiPort := testenv.FreePort(t)
	t.Setenv("ALGOCLOUD_HOSTILE_MARKER", "PLATFORM-ENVIRONMENT-MARKER")
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
		o.UIPort = uiPort
		// A quarter of t3.small's limits: 512 MiB, so the memory test is quick.
		o.Sandbox = activities.SandboxSettings{Mode: sandbox.ModeBwrap, Scale: 0.25}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)

	// The friendly neighbour, live.
	idA, urlA, tokA := walk(t, c, "neighbour", "segmentation", "image")
	pingA := func() {
		t.Helper()
		res, out := predict(t, hc, urlA, tokA, samplePNG(t, 16, 16))
		require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	}
	pingA()
	serverA := filepath.Join(data, "servers", idA)
	codeA := findFile(t, serverA, "aai_main.py")
	keyA := findFile(t, serverA, certs.KeyFile)
	inferA := pidWithArg(t, serverA)
	portA := urlPort(t, urlA)

	caKey := filepath.Join(data, "ca", certs.RootKeyFile)
	watched := []string{caKey, codeA, keyA}
	before := hashes(t, watched)
	apiPort := urlPort(t, p.APIURL)
	_, tport, err := net.SplitHostPort(p.Temporal.HostPort())
	require.NoError(t, err)
	temporalPort, _ := strconv.Atoi(tport)

	targets := testhostile.Targets{
		// The neighbour's agent credential and state (the agent runs it,
		// outside every sandbox: no sandbox mounts <server>/agent).
		Read: []string{caKey, codeA, keyA, filepath.Join(data, "algocloud.db"), filepath.Join(data, "temporal.db"),
			filepath.Join(serverA, "agent", "credential"), filepath.Join(serverA, "agent", "state.json"),
			// The agent's own token, which its batch chunks call the live
			// revision with (batch journals are under agent/batches/).
			filepath.Join(serverA, "agent", "agent-token")},
		Write:      []string{filepath.Join(data, "owned"), filepath.Join(serverA, "owned"), filepath.Join(data, "ca", "owned")},
		Connect:    []int{apiPort, temporalPort, uiPort, portA},
		Kill:       []int{os.Getpid(), inferA},
		EnvMarkers: []string{"PLATFORM-ENVIRONMENT-MARKER"},
	}
	_, err = testhostile.Sdist(wheels, "0.1.0", targets)
	require.NoError(t, err)

	// The hostile one: JSON in, JSON out, its package built from source.
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Hostile", "api_name": "hostile", "input": "json", "output": "json", "threads": 2})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	idB := r.Str("id")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{"aai_main.py": testhostile.Algorithm(targets), "aai_pip-requirements.txt": "hostile==0.1.0\n"})
	r = throughTest(t, c, idB, repo)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	requireContained(t, "Test Code", testOutput(t, c, idB))

	// Its own endpoint's TLS key is a target too: known once it is live.
	r = c.Step(idB, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	tokB := r.Str("token")
	require.NotEmpty(t, tokB, string(r.Raw))
	serverB := filepath.Join(data, "servers", idB)
	targets.Read = append(targets.Read, findFile(t, serverB, certs.KeyFile), filepath.Join(serverB, "live.json"),
		filepath.Join(serverB, "agent", "credential"), filepath.Join(serverB, "agent", "agent-token"))
	watched = append(watched, findFile(t, serverB, certs.KeyFile))
	before = mergeHashes(before, hashes(t, watched[len(watched)-1:]))
	commit(t, repo, map[string]string{"aai_main.py": testhostile.Algorithm(targets)})
	for _, s := range []string{"fetch_code", "install_requirements", "test", "complete"} {
		body := map[string]any(nil)
		if s == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		r = c.Step(idB, s, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
	}
	urlB := r.Str("endpoint") // the redeploy keeps the token of the first Complete
	callB := func(body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, urlB+"/predict", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokB)
		res, err := hc.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		out, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(out, &m), string(out))
		return res.StatusCode, m
	}
	status, got := callB(`{"do": "probe"}`)
	require.Equal(t, http.StatusOK, status, got)
	requireContained(t, "live endpoint", got)
	pingA()

	// Memory: past 512 MiB the kernel kills the worker; the caller is told.
	status, got = callB(`{"do": "oom", "mib": 2048}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, got)
	require.Equal(t, "out_of_memory", got["code"], got)
	require.Contains(t, got["message"], "predict used more than 512 MiB, the t3.small limit")
	require.Eventually(t, func() bool { s, _ := callB(`{"do": "noop"}`); return s == http.StatusOK }, time.Minute, 500*time.Millisecond,
		"the endpoint serves again once the worker restarted")

	// A fork bomb stops at the task limit.
	status, got = callB(`{"do": "fork"}`)
	require.Equal(t, http.StatusOK, status, got)
	forked := got["forked"].(float64)
	require.Less(t, forked, float64(1024), "stopped at the task limit")

	// Filling the disk stops at the private /tmp's size (the code is read-only).
	status, got = callB(`{"do": "fill"}`)
	require.Equal(t, http.StatusOK, status, got)
	require.Less(t, got["wrote_mib"].(float64), float64(1024), got)

	status, got = callB(`{"do": "probe"}`)
	require.Equal(t, http.StatusOK, status, got)
	requireContained(t, "live endpoint after the attacks", got)
	pingA()

	// Nothing of the platform changed; nothing was written outside.
	require.Equal(t, before, hashes(t, watched))
	for _, w := range targets.Write {
		require.NoFileExists(t, w)
	}
	// Test Code says nothing of an unsandboxed run.
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+idB, nil)
	require.NotContains(t, string(st.Raw), "UNSANDBOXED")
}

// requireContained fails on any attempt of a probe's answer that was not
// blocked, and checks that the build backend's, __init__'s and predict's
// attempts all ran.
func requireContained(t *testing.T, where string, got map[string]any) {
	t.Helper()
	for _, phase := range []string{"install", "init", "predict"} {
		m, ok := got[phase].(map[string]any)
		require.True(t, ok, "%s: no %s results in %v", where, phase, got)
		results := map[string]string{}
		for k, v := range m {
			results[k], _ = v.(string)
		}
		require.GreaterOrEqual(t, len(results), 15, "%s %s: %v", where, phase, results)
		require.Empty(t, testhostile.Breaches(results), "%s: attempts from %s got through", where, phase)
	}
}

// testOutput is Test Code's output (JSON) of the latest test.
func testOutput(t *testing.T, c *client, id string) map[string]any {
	t.Helper()
	r := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/test/output", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	return r.Body
}

// findFile finds the one file named name below root.
func findFile(t *testing.T, root, name string) string {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name && !strings.Contains(p, "/venv/") {
			found = append(found, p)
		}
		return nil
	}))
	require.NotEmpty(t, found, "no %s under %s", name, root)
	return found[len(found)-1]
}

// pidWithArg finds a process whose command line mentions s.
func pidWithArg(t *testing.T, s string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) && strings.Contains(string(b), "algocloud-infer") {
			return pid
		}
	}
	t.Fatalf("no algocloud-infer process for %s", s)
	return 0
}

func urlPort(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err, raw)
	return port
}

func hashes(t *testing.T, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		out[p] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return out
}

func mergeHashes(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}
