package inference

import (
	"github.com/algocloud/algocloud/internal/testenv"

	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/spec"
)

// TestSandboxedWorkerOutOfMemory: a predict that allocates past the
// sandbox's memory limit is killed by the kernel; the caller gets 422
// out_of_memory naming the limit; the worker restarts and the endpoint keeps
// serving; and the worker cannot read the server's own folder (its TLS key
// would be there) or the platform's environment.
func TestSandboxedWorkerOutOfMemory(t *testing.T) {
	testenv.RequireSandbox(t)
	runDir := t.TempDir()
	secret := filepath.Join(runDir, "key.pem")
	require.NoError(t, os.WriteFile(secret, []byte("KEY"), 0o600))
	t.Setenv("ALGOCLOUD_TEST_SECRET", "ENVSECRET")
	dir := codeDir(t, fmt.Sprintf(`
import os
class Algo:
    def __init__(self):
        pass
    def predict(self, data):
        if data.get("alloc"):
            x = bytearray(data["alloc"] * 1024 * 1024)
            for i in range(0, len(x), 4096):
                x[i] = 1
        try:
            key = open(%q).read()
        except OSError as e:
            key = type(e).__name__
        return {"key": key, "env": "ENVSECRET" in str(os.environ), "uid": os.getuid()}
    def testing_input_data(self):
        return {}
`, secret))
	ts := startServer(t, dir, spec.JSON, spec.JSON, func(c *Config) {
		c.RunDir = runDir
		c.Sandbox = &sandbox.Config{Mode: sandbox.ModeBwrap, Network: sandbox.NetNone, Group: fmt.Sprintf("inference-test-%d", os.Getpid()),
			Limits: sandbox.Limits{Label: "tiny", MemoryBytes: 128 << 20, Pids: 64, CPUs: 1}}
	})
	ts.waitReady(t)

	status, _, body := ts.post(t, "/predict", "application/json", []byte(`{}`))
	require.Equal(t, http.StatusOK, status, string(body))
	var got struct {
		Key string `json:"key"`
		Env bool   `json:"env"`
		UID int    `json:"uid"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, "FileNotFoundError", got.Key, "the server's folder is not visible")
	require.False(t, got.Env, "the platform's environment is not passed on")
	require.NotZero(t, got.UID)

	status, _, body = ts.post(t, "/predict", "application/json", []byte(`{"alloc": 600}`))
	require.Equal(t, http.StatusUnprocessableEntity, status, string(body))
	var e struct {
		Code, Message, Stage string
	}
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, CodeOutOfMemory, e.Code)
	require.Equal(t, StagePredict, e.Stage)
	require.Contains(t, e.Message, "predict used more than 128 MiB, the tiny limit")

	// The worker is replaced and the endpoint answers again.
	ts.waitReady(t)
	status, _, body = ts.post(t, "/predict", "application/json", []byte(`{}`))
	require.Equal(t, http.StatusOK, status, string(body))
}
