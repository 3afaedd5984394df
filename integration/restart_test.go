package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRestartBringsEndpointsBack stops the whole platform (its endpoints stop
// with it) and starts it again on the same data folder: every deployment's
// state is there and the live endpoint answers again with the same token.
func TestRestartBringsEndpointsBack(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	tok := devToken(t, p)
	c := newClient(t, p, tok)
	id, endpoint, epTok := walk(t, c, "survivor", "segmentation", "image")
	draft := createProvisioned(t, c, "draft")
	p.Stop()

	hc := endpointClient(t, p)
	_, err := hc.Get(endpoint + "/healthz")
	require.Error(t, err, "endpoints stop with the platform")

	p2 := startPlatform(t, data)
	defer p2.Stop()
	c2 := newClient(t, p2, tok)
	require.Eventually(t, func() bool {
		res, err := hc.Get(endpoint + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 60e9, 200e6, "the live endpoint comes back after a restart")
	res, out := predict(t, hc, endpoint, epTok, samplePNG(t, 16, 16))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))

	// An endpoint process that dies is restarted (by its server's agent).
	pid := endpointPID(t, data)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		res, err := hc.Get(endpoint + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK && endpointPID(t, data) != pid
	}, 60e9, 200e6, "a killed endpoint comes back")

	st := c2.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, "live", st.Str("state", "status"), string(st.Raw))
	st = c2.Do(http.MethodGet, "/api/v1/deployments/"+draft, nil)
	require.Equal(t, "provisioned", st.Str("state", "step"), string(st.Raw))
	// The draft continues where it was.
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "measurements"))
	r := c2.Step(draft, "fetch_code", map[string]any{"git_url": repo})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	require.Equal(t, 2, countServers(t, data), "one server per deployment, none duplicated")
}

// countServers counts server folders of the local provider.
func countServers(t testing.TB, data string) int {
	entries, err := os.ReadDir(filepath.Join(data, "servers"))
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// endpointPID is the pid of the one algocloud-infer process serving from
// data (the server's agent, which runs it, is not it).
func endpointPID(t testing.TB, data string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		argv := strings.Split(string(b), "\x00")
		if err == nil && filepath.Base(argv[0]) == "algocloud-infer" && strings.Contains(string(b), data) && !(len(argv) > 1 && argv[1] == "agent") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}
