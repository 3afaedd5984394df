package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
)

// startDevArgs is startDev with extra flags.
func startDevArgs(t *testing.T, data string, apiPort, temporalPort int, extra ...string) *devProcess {
	args := append([]string{"dev", "--data", data, "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--temporal-port", fmt.Sprint(temporalPort), "--ui-port", "0", "--infer-bin", inferBin, "--log-level", "warn"}, extra...)
	d := &devProcess{}
	child, err := testenv.StartChild(exec.Command(algocloudBinary(t), args...), 2*time.Minute, func(line string) bool {
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

// TestAsyncPredictionsSurviveKilledDev accepts predictions, kills the real
// `algocloud dev` with SIGKILL while some are in the endpoint and the rest
// queued, starts it again on the same data, and expects every prediction to
// succeed exactly once. The algorithm appends each call's image width to a
// file, so the calls the endpoint received are counted: only a call that was
// in flight at the kill (its endpoint died with the platform, no answer) may
// be made again. The endpoint runs with --sandbox=none here only because a
// sandboxed worker has no writable place outside its private /tmp to count in.
func TestAsyncPredictionsSurviveKilledDev(t *testing.T) {
	data := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls.txt")
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDevArgs(t, data, apiPort, temporalPort, "--sandbox=none", "--webhook-allow-loopback")
	c := testenv.NewAPIClient(t, d.api, d.token)

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	counting := strings.Replace(string(src), "    def predict(self, x):\n", fmt.Sprintf(
		"    def predict(self, x):\n        if 20 <= x.shape[1] < 40:\n            with open(%q, 'a') as f:\n                f.write('%%d\\n' %% x.shape[1])\n            import time\n            time.sleep(2)\n", calls), 1)
	require.NotEqual(t, string(src), counting)
	commit(t, repo, map[string]string{"aai_main.py": counting})
	depID, _, epTok := walkRepo(t, c, "count", repo, "image")
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+depID+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	// The receiver outlives the platform's processes: it counts each
	// prediction's completed deliveries by webhook-id.
	var hookMu sync.Mutex
	hooks := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hookMu.Lock()
		hooks[req.Header.Get("webhook-id")]++
		hookMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	const n = 6
	ids := map[string]int{} // prediction id -> its image width
	for i := range n {
		w := 20 + i
		st, m, raw, _ := apiCall(t, d.api, http.MethodPost, "/api/v1/endpoints/count/predictions", epTok,
			map[string]any{"input": dataURI(samplePNG(t, w, 8)), "webhook": receiver.URL, "webhook_events_filter": []string{"completed"}})
		require.Equal(t, http.StatusAccepted, st, string(raw))
		ids[m["id"].(string)] = w
	}
	// Kill once the endpoint has started working on some of them.
	require.Eventually(t, func() bool { b, _ := os.ReadFile(calls); return len(b) > 0 }, time.Minute, 50*time.Millisecond)
	require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
	<-d.Done()
	before, _ := os.ReadFile(calls)
	inFlight := strings.Count(string(before), "\n")

	d2 := startDevArgs(t, data, apiPort, temporalPort, "--sandbox=none", "--webhook-allow-loopback")
	defer func() {
		_ = d2.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-d2.Done():
		case <-time.After(time.Minute):
			_ = d2.Cmd.Process.Kill()
		}
	}()
	for id := range ids {
		var m map[string]any
		require.Eventually(t, func() bool {
			_, m, _, _ = apiCall(t, d2.api, http.MethodGet, "/api/v1/endpoints/count/predictions/"+id, epTok, nil)
			return m["status"] == "succeeded" || m["status"] == "failed" || m["status"] == "canceled"
		}, 3*time.Minute, 250*time.Millisecond, "prediction %s finishes after the restart", id)
		require.Equal(t, "succeeded", m["status"], "%v", m)
	}
	after, err := os.ReadFile(calls)
	require.NoError(t, err)
	perWidth := map[string]int{}
	for _, l := range strings.Fields(string(after)) {
		perWidth[l]++
	}
	repeated := 0
	for _, w := range ids {
		k := fmt.Sprint(w)
		require.GreaterOrEqual(t, perWidth[k], 1, "width %d was predicted", w)
		repeated += perWidth[k] - 1
	}
	require.Eventually(t, func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		for id := range ids {
			if hooks[id+"-completed"] == 0 {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "every prediction's completed webhook fires")
	hookMu.Lock()
	t.Logf("%d predictions, %d calls in the endpoint at the kill, %d calls made again after the restart; webhooks received %v", n, inFlight, repeated, hooks)
	require.Len(t, hooks, n, "one webhook-id per prediction, no other event")
	hookMu.Unlock()
	require.LessOrEqual(t, repeated, inFlight, "only calls in flight at the kill are made again")
}

// apiCall is predCall against a base URL (the dev process's API).
func apiCall(t *testing.T, base, method, path, token string, body any) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		rd = strings.NewReader(string(mustJSON(t, body)))
	}
	req, err := http.NewRequest(method, base+path, nil)
	require.NoError(t, err)
	if rd != nil {
		req, err = http.NewRequest(method, base+path, rd)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return doReq(t, req)
}
