package integration

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testpg"
	"github.com/algocloud/algocloud/workflows"
)

// startProc runs the algocloud binary with args and waits until its log says
// it is running.
func startProc(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(algocloudBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once && strings.Contains(line, "algocloud running") {
				once = true
				close(ready)
			}
			if strings.Contains(line, "level=ERROR") {
				fmt.Fprintln(os.Stderr, args[0]+": "+line)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("algocloud %s did not start", args[0])
	}
	return cmd
}

// TestSeparateAPIAndWorkerOnPostgres runs the production shape: a Temporal
// server (here the embedded one, standing in for a cluster), PostgreSQL, and
// `algocloud api` and `algocloud worker` as separate processes.
func TestSeparateAPIAndWorkerOnPostgres(t *testing.T) {
	// A cluster whose operator created the search attributes (docs/architecture.md).
	srv, err := temporaldev.Start(temporaldev.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SearchAttributes: workflows.SearchAttributeTypes()})
	require.NoError(t, err)
	defer srv.Stop()
	dsn := testpg.Start(t)
	data := t.TempDir()
	apiPort := testenv.FreePort(t)
	common := []string{"--data", data, "--database-url", dsn, "--temporal-address", srv.HostPort(), "--log-level", "info"}

	startProc(t, append([]string{"worker", "--infer-bin", inferBin, "--allow-local-git"}, common...)...)
	startProc(t, append([]string{"api", "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort)}, common...)...)

	tok, err := platform.CreateToken(t.Context(), dsn, "alice")
	require.NoError(t, err)
	c := testenv.NewAPIClient(t, fmt.Sprintf("http://127.0.0.1:%d", apiPort), tok)
	id, endpoint, epTok := walk(t, c, "split", "measurements", "json")

	pool := endpointClient(t, &platform.Platform{CA: mustCA(t, data)})
	res, out := predict(t, pool, endpoint, epTok, samplePNG(t, 20, 10))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	_, err = os.Stat(filepath.Join(data, "servers", id))
	require.True(t, os.IsNotExist(err))
}
