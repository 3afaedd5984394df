package python

import (
	"github.com/algocloud/algocloud/internal/testenv"

	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testhostile"
)

// TestInstallSandboxed_HostileBuildBackend makes a venv and pip-installs a
// package from source whose build backend (run by pip) tries to read the
// platform's secrets, write outside the venv, reach a service on loopback
// and kill or trace this process: every attempt fails, the install works,
// and the secrets are unchanged.
func TestInstallSandboxed_HostileBuildBackend(t *testing.T) {
	testenv.RequireSandbox(t)
	if _, err := os.Stat(systemPython); err != nil {
		t.Skip("no " + systemPython)
	}
	data := t.TempDir()
	require.NoError(t, os.Chmod(data, 0o700))
	key := filepath.Join(data, "ca", "root-key.pem")
	require.NoError(t, os.MkdirAll(filepath.Dir(key), 0o700))
	require.NoError(t, os.WriteFile(key, []byte("CA KEY"), 0o600))
	server := filepath.Join(data, "servers", "mine")
	require.NoError(t, os.MkdirAll(server, 0o755))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	t.Setenv("ALGOCLOUD_PLATFORM_MARKER", "PLATFORM-ENV-MARKER")

	wheels := t.TempDir()
	_, err = testhostile.Sdist(wheels, "0.1.0", testhostile.Targets{
		Read:       []string{key},
		Write:      []string{filepath.Join(data, "owned"), filepath.Join(server, "owned")},
		Connect:    []int{ln.Addr().(*net.TCPAddr).Port},
		Kill:       []int{os.Getpid()},
		EnvMarkers: []string{"PLATFORM-ENV-MARKER"},
	})
	require.NoError(t, err)

	box, err := sandbox.New(sandbox.Config{Mode: sandbox.ModeBwrap, Network: sandbox.NetNone,
		Group: fmt.Sprintf("python-test-%d", os.Getpid()), StateDir: server,
		Limits: sandbox.Limits{Label: "test", MemoryBytes: 1 << 30, Pids: 256, CPUs: 2, DiskBytes: 1 << 30}})
	require.NoError(t, err)
	defer box.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	py, err := EnsureVenvIn(ctx, box, systemPython, filepath.Join(server, "venv"))
	require.NoError(t, err)
	out, err := Install(ctx, py, []string{"hostile==0.1.0"},
		InstallOptions{NoIndex: true, FindLinks: []string{wheels}, Box: box}, nil)
	require.NoError(t, err, out)

	got, err := run(ctx, box, []sandbox.Mount{{Path: filepath.Join(server, "venv")}}, py, "-c",
		"import json, hostile_result; print(json.dumps(hostile_result.RESULTS))")
	require.NoError(t, err, string(got))
	var results map[string]string
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(string(got))), &results), string(got))
	require.GreaterOrEqual(t, len(results), 8, results)
	require.Empty(t, testhostile.Breaches(results), "every attempt from the build backend is blocked")
	b, err := os.ReadFile(key)
	require.NoError(t, err)
	require.Equal(t, "CA KEY", string(b))
	require.NoFileExists(t, filepath.Join(data, "owned"))
	require.NoFileExists(t, filepath.Join(server, "owned"))
}
