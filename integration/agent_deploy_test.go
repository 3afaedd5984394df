package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
)

// TestDeployThroughTheAgent is the wizard's walk on a platform whose local
// servers run their agent: install, Test Code and the live endpoint run on
// the server, launched by its agent (every process of the server's folder
// descends from the agent, none is the platform's own child), the test's
// output reaches the wizard through the agent's artifact, and a redeploy
// (new code, install, test, complete) under 4 clients' load swaps the
// revision with no failed request. It logs the figures of
// docs/benchmarks.md (Server agent), with Test Code on the worker's path
// (a platform without agents) measured in the same run.
func TestDeployThroughTheAgent(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Agent deploy", "api_name": "agent-deploy", "input": "image", "output": "image", "threads": 2})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	var testTimes []time.Duration
	timed := func(step string, body any) resp {
		t.Helper()
		start := time.Now()
		r := c.Step(id, step, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
		if step == "test" {
			testTimes = append(testTimes, time.Since(start))
		}
		return r
	}
	for _, s := range []string{"provision", "fetch_code", "install_requirements", "test"} {
		var body any
		if s == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		timed(s, body)
	}
	// The test's output, uploaded by the agent, served to the wizard.
	res := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/test/output", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Raw))
	require.True(t, strings.HasPrefix(string(res.Raw), "\x89PNG"), "the mask PNG")
	r = timed("complete", nil)
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.NotEmpty(t, token, string(r.Raw))
	ok, body := predict(t, hc, endpoint, token, samplePNG(t, 32, 24))
	require.Equal(t, http.StatusOK, ok.StatusCode, string(body))

	// Who runs the author code: the agent, not the platform.
	serverDir := filepath.Join(data, "servers", id)
	agents := agentPIDs(t, id)
	require.Len(t, agents, 1, "one agent per server")
	agent := agents[0]
	require.Equal(t, os.Getpid(), parentOf(t, agent))
	procs := procsWithArg(t, serverDir)
	require.NotEmpty(t, procs)
	for _, pid := range procs {
		if pid == agent {
			continue
		}
		require.NotEqual(t, os.Getpid(), parentOf(t, pid), "pid %d (%s) is the platform's child", pid, cmdline(pid))
		require.True(t, descendsFrom(t, pid, agent), "pid %d (%s) descends from the agent %d", pid, cmdline(pid), agent)
	}
	events := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Contains(t, string(events.Raw), "by its agent", "the progress log says where it ran")

	// A redeploy under load: 4 clients call throughout; none fails.
	var stop atomic.Bool
	var failed, answered atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstAfter atomic.Int64 // unix nanos of the first answer begun after Complete returned
	var completedAt atomic.Int64
	img := samplePNG(t, 32, 24)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				begun := time.Now()
				req, _ := http.NewRequest(http.MethodPost, endpoint+"/predict", strings.NewReader(string(img)))
				req.Header.Set("Content-Type", "image/png")
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				if err != nil || res.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Logf("failed request: %v %v", err, statusOf(res))
					continue
				}
				answered.Add(1)
				mu.Lock()
				lat = append(lat, time.Since(begun))
				mu.Unlock()
				if ca := completedAt.Load(); ca != 0 && begun.UnixNano() >= ca {
					firstAfter.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	before := append([]time.Duration(nil), lat...)
	mu.Unlock()
	commit(t, repo, map[string]string{"README.md": "revision 2\n"})
	timed("fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	timed("install_requirements", nil)
	timed("test", nil)
	mu.Lock()
	swapFrom := len(lat)
	mu.Unlock()
	start := time.Now()
	timed("complete", nil)
	swap := time.Since(start)
	completedAt.Store(time.Now().UnixNano())
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	require.Zero(t, failed.Load(), "every request through the swap is answered")
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, 2.0, st.Body["state"].(map[string]any)["live"].(map[string]any)["code_revision"], string(st.Raw))
	require.Equal(t, []int{agent}, agentPIDs(t, id), "the same agent swapped the revision")
	first := time.Duration(firstAfter.Load() - completedAt.Load())
	mu.Lock()
	during := lat[swapFrom:]
	mu.Unlock()
	t.Logf("FIGURES agent: %d answered, %d failed; p99 before %v, p99 during swap %v; complete (new revision serving) %v; first answer after complete %v",
		answered.Load(), failed.Load(), p99(before), p99(during), swap.Round(time.Millisecond), first.Round(time.Millisecond))

	// Test Code through the agent against the worker's path, same machine, same run.
	p.Stop()
	p2 := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.Agents = false })
	defer p2.Stop()
	c2 := newClient(t, p2, devToken(t, p2))
	r = c2.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Worker path", "api_name": "worker-path", "input": "image", "output": "image", "threads": 2})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id2 := r.Str("id")
	var workerTests []time.Duration
	for _, s := range []string{"provision", "fetch_code", "install_requirements", "test", "test"} {
		var body any
		if s == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		begun := time.Now()
		r = c2.Step(id2, s, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
		if s == "test" {
			workerTests = append(workerTests, time.Since(begun))
		}
	}
	require.False(t, r.Body["state"].(map[string]any)["server"].(map[string]any)["agent"] == true)
	t.Logf("FIGURES Test Code: through the agent %v; on the worker %v", testTimes, workerTests)
}

func statusOf(res *http.Response) string {
	if res == nil {
		return ""
	}
	return res.Status
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*99)/100].Round(time.Millisecond)
}

// procsWithArg lists the live processes one of whose arguments mentions s.
func procsWithArg(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || zombie(pid) {
			continue
		}
		if strings.Contains(cmdline(pid), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

// descendsFrom reports whether ancestor is among pid's ancestors.
func descendsFrom(t *testing.T, pid, ancestor int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		pid = parentOfQuiet(pid)
		if pid == ancestor {
			return true
		}
	}
	return false
}

func parentOfQuiet(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
