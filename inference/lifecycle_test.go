package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/algocloud/algocloud/inference/inferapi"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

func TestInitFailures(t *testing.T) {
	cases := []struct {
		name, code, message, traceback string
		python                         string
	}{
		{name: "init raises", code: "import numpy\nclass AAI:\n    def __init__(self):\n        raise RuntimeError('model.bin is missing')\n    def predict(self, x):\n        return x\n",
			message: "model.bin is missing", traceback: "RuntimeError: model.bin is missing"},
		{name: "import fails", code: "import not_a_module_anywhere\n",
			message: "No module named 'not_a_module_anywhere'", traceback: "ModuleNotFoundError"},
		{name: "no class", code: "def predict(x):\n    return x\n", message: "defines no class with a predict method"},
		{name: "two classes", code: "class A:\n    def predict(self, x): pass\nclass B:\n    def predict(self, x): pass\n", message: "several classes"},
		{name: "exits in init", code: "import os, sys\nprint('loading weights', file=sys.stderr, flush=True)\nos._exit(5)\n",
			message: "exit status 5"},
		{name: "no python", code: "class AAI:\n    def predict(self, x): return x\n", python: "/nonexistent/python3", message: "start Python"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, codeDir(t, c.code), spec.Image, spec.Image, func(cfg *Config) {
				cfg.Threads = 2
				if c.python != "" {
					cfg.Python = c.python
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			err := inferapi.WaitReady(ctx, ts.Client, ts.URL)
			var ie *InitError
			require.True(t, errors.As(err, &ie), "WaitReady: %v", err)
			require.Equal(t, CodeInitFailed, ie.Code)
			require.Contains(t, ie.Message, c.message)
			require.Contains(t, ie.Traceback, c.traceback)
			if c.name == "exits in init" {
				require.Contains(t, ie.Message, "loading weights", "the worker's last output is in the message")
			}

			resp, err := ts.Client.Get(ts.URL + "/readyz")
			require.NoError(t, err)
			var body APIError
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			resp.Body.Close()
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			require.Equal(t, CodeInitFailed, body.Code)

			status, _, b := ts.post(t, "/predict", "image/png", pngBytes(t, testImage(4, 4, 0)))
			e := requireError(t, http.StatusServiceUnavailable, CodeInitFailed, status, b)
			require.Contains(t, e.Message, c.message)
			res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
			require.NoError(t, err)
			require.False(t, res.OK)
			require.Equal(t, CodeInitFailed, res.Code)
		})
	}
}

// waitFile waits for path to exist (the Python side's signal to the test).
func waitFile(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, time.Minute, 10*time.Millisecond, "waiting for %s", path)
}

func TestReadinessAndConcurrency(t *testing.T) {
	// __init__ blocks until the test creates "go"; two predicts must be in
	// flight at once (one per worker) before either returns.
	code := `
import os, time
def wait_for(name):
    for _ in range(3000):
        if os.path.exists(name):
            return
        time.sleep(0.01)
    raise TimeoutError(name)

class AAI:
    def __init__(self):
        wait_for("go")

    def predict(self, x):
        open("arrived-%d" % os.getpid(), "w").close()
        while len([f for f in os.listdir(".") if f.startswith("arrived-")]) < 2:
            time.sleep(0.01)
        return {"pid": os.getpid()}

    def testing_input_data(self):
        return None
`
	dir := codeDir(t, code)
	ts := startServer(t, dir, spec.Image, spec.JSON, func(c *Config) { c.Threads = 2 })
	resp, err := ts.Client.Get(ts.URL + "/readyz")
	require.NoError(t, err)
	var e APIError
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, CodeNotReady, e.Code)
	resp, err = ts.Client.Get(ts.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
	ts.waitReady(t)
	pids := make([]int, 2)
	var wg sync.WaitGroup
	for i := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body := ts.post(t, "/predict", "image/png", pngBytes(t, testImage(4, 4, 0)))
			require.Equal(t, http.StatusOK, status, string(body))
			var out struct{ PID int }
			require.NoError(t, json.Unmarshal(body, &out))
			pids[i] = out.PID
		}()
	}
	wg.Wait()
	require.NotEqual(t, pids[0], pids[1])

	t.Run("test input that is no image", func(t *testing.T) {
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.False(t, res.OK)
		require.Equal(t, http.StatusInternalServerError, res.Status)
		require.Equal(t, CodeTestInputFailed, res.Code)
		require.Contains(t, res.Message, "testing_input_data returned a value the input type cannot carry: expected a numpy array, got NoneType")
	})
}

func TestGracefulDrain(t *testing.T) {
	code := `
import os, time
class AAI:
    def predict(self, x):
        open("started", "w").close()
        while not os.path.exists("release"):
            time.sleep(0.01)
        return x
`
	dir := codeDir(t, code)
	ts := startServer(t, dir, spec.Image, spec.Image, nil)
	ts.waitReady(t)
	type answer struct {
		status int
		body   []byte
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(pngBytes(t, testImage(5, 5, 0))))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := ts.Client.Do(req)
		if err != nil {
			got <- answer{0, []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		got <- answer{resp.StatusCode, b.Bytes()}
	}()
	waitFile(t, filepath.Join(dir, "started"))
	ts.cancel() // SIGTERM, in the binary
	// The listener closes first: new connections are refused while the request runs.
	require.Eventually(t, func() bool {
		_, err := (&http.Client{Timeout: time.Second}).Get(ts.URL + "/healthz")
		return err != nil && strings.Contains(err.Error(), "refused")
	}, 30*time.Second, 10*time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("the in-flight request ended before its predict returned: %d %s", a.status, a.body)
	default:
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "release"), nil, 0o644))
	a := <-got
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	ts.stop(t)
	require.Contains(t, ts.logs.String(), "exit status 0", "the worker ended on its own when its pipe closed")
}
