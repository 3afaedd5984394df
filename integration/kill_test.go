package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
)

var (
	buildOnce   sync.Once
	platformBin string
	buildErr    error
)

// algocloudBinary builds cmd/algocloud once (it links the Temporal server).
func algocloudBinary(t *testing.T) string {
	buildOnce.Do(func() {
		platformBin = filepath.Join(filepath.Dir(inferBin), "algocloud")
		cmd := exec.Command("go", "build", "-o", platformBin, "./cmd/algocloud")
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build algocloud: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return platformBin
}

// devProcess is a running `algocloud dev`.
type devProcess struct {
	*testenv.Child
	api   string
	token string
}

var (
	apiLine   = regexp.MustCompile(`API and wizard\s+(http://\S+)`)
	tokenLine = regexp.MustCompile(`^\s+(ac_\S+)\s*$`)
)

// startDev runs the real binary on data (with extra flags, if any) and
// waits until it reports its API.
func startDev(t *testing.T, data string, apiPort, temporalPort int, extra ...string) *devProcess {
	args := append([]string{"dev", "--data", data, "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--temporal-port", fmt.Sprint(temporalPort), "--ui-port", "0", "--infer-bin", inferBin, "--log-level", "warn"}, extra...)
	cmd := exec.Command(algocloudBinary(t), args...)
	d := &devProcess{}
	child, err := testenv.StartChild(cmd, 2*time.Minute, func(line string) bool {
		if m := apiLine.FindStringSubmatch(line); m != nil {
			d.api = m[1]
		}
		if m := tokenLine.FindStringSubmatch(line); m != nil {
			d.token = m[1]
		}
		return strings.Contains(line, "Ctrl-C stops everything")
	})
	require.NoError(t, err, "algocloud dev")
	d.Child = child
	return d
}

// inferProcesses counts algocloud-infer processes serving from data.
func inferProcesses(t *testing.T, data string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		argv := strings.Split(string(b), "\x00")
		if err == nil && filepath.Base(argv[0]) == "algocloud-infer" && strings.Contains(string(b), data) {
			n++
		}
	}
	return n
}

const slowInitMain = `import time
import numpy as np

class AAI:
    def __init__(self):
        time.sleep(3)  # a model that takes a while to load

    def predict(self, x):
        return 255 - x

    def testing_input_data(self):
        return np.zeros((8, 8, 3), dtype=np.uint8)
`

// TestKillDevMidStepThenRestart kills the real `algocloud dev` with SIGKILL
// while Test Code runs, starts it again on the same data, and expects the step
// to finish by itself, then the deployment to complete with exactly one server
// and one endpoint process (beside the server's one agent), and a clean
// Ctrl-C at the end that stops them.
func TestKillDevMidStepThenRestart(t *testing.T) {
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDev(t, data, apiPort, temporalPort)
	require.NotEmpty(t, d.token, "first start prints the dev token")
	c := testenv.NewAPIClient(t, d.api, d.token)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "slow", "api_name": "slow", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{"aai_main.py": slowInitMain})
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)
	require.Equal(t, http.StatusOK, c.Step(id, "fetch_code", map[string]any{"git_url": repo}).Status)
	require.Equal(t, http.StatusOK, c.Step(id, "install_requirements", nil).Status)

	go func() { // this request dies with the process; the step must not
		_, _, _ = testenv.TryAPI(d.api, d.token, http.MethodPost, "/api/v1/deployments/"+id+"/steps/test", nil)
	}()
	require.Eventually(t, func() bool {
		ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
		return strings.Contains(string(ev.Raw), "booting the inference server")
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
	<-d.Done()
	require.Eventually(t, func() bool { return len(agentPIDs(t, id)) == 0 }, 10*time.Second, 100*time.Millisecond,
		"the server's agent dies with the platform")

	d2 := startDev(t, data, apiPort, temporalPort)
	require.Empty(t, d2.token, "the dev user already exists: no new token")
	c.Base = d2.api
	var st resp
	require.Eventually(t, func() bool {
		st = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
		return st.Str("state", "busy") == "" && st.Str("state", "step") == "tested"
	}, 2*time.Minute, 500*time.Millisecond, "the interrupted test finishes after the restart")

	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, 1, countServers(t, data), "no duplicated server")
	require.Equal(t, 1, len(agentPIDs(t, id)), "one agent for the server")
	require.Equal(t, 2, inferProcesses(t, data), "exactly the agent and the live endpoint run")

	require.NoError(t, d2.Cmd.Process.Signal(os.Interrupt))
	select {
	case <-d2.Done():
		require.NoError(t, d2.Err(), "Ctrl-C stops algocloud dev cleanly")
	case <-time.After(time.Minute):
		_ = d2.Cmd.Process.Kill()
		t.Fatal("algocloud dev did not stop on Ctrl-C")
	}
	require.Eventually(t, func() bool { return inferProcesses(t, data) == 0 }, 10*time.Second, 100*time.Millisecond)
}
