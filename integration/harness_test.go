// Package integration runs the whole platform in-process, as `algocloud dev`
// does: the embedded Temporal server on SQLite, the store, the worker with the
// local compute provider, the API, real inference servers and real Python.
package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

var inferBin string

func TestMain(m *testing.M) {
	// The inference server is its own binary; build it once for the package.
	dir, err := os.MkdirTemp("", "algocloud-it-*")
	if err != nil {
		panic(err)
	}
	inferBin = filepath.Join(dir, "algocloud-infer")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	cmd := exec.Command("go", "build", "-o", inferBin, "./cmd/algocloud-infer")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build algocloud-infer:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// startPlatform starts every piece on dataDir, as `algocloud dev` does.
func startPlatform(t testing.TB, dataDir string, mutate ...func(*platform.Options)) *platform.Platform {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("ALGOCLOUD_TEST_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	opts := platform.Options{
		DataDir: dataDir, Embedded: true, RunAPI: true, RunWorker: true, APIAddr: "127.0.0.1:0",
		InferCommand: []string{inferBin}, AllowLocalGit: true, PredictTimeout: 20 * time.Second,
		// Local servers run their agent (as `algocloud dev` does): author
		// code runs there, never in the worker.
		Agents: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	for _, m := range mutate {
		m(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := platform.Start(ctx, opts)
	require.NoError(t, err)
	return p
}

// client calls the REST API as one user; resp is its decoded answer.
type (
	client = testenv.APIClient
	resp   = testenv.APIResp
)

func newClient(t testing.TB, p *platform.Platform, token string) *client {
	return testenv.NewAPIClient(t, p.APIURL, token)
}

// throughTest runs provision, fetch_code (the Git repository repo at main),
// install_requirements and test, each answering 200, and returns the test
// step's answer.
func throughTest(t testing.TB, c *client, id, repo string) resp {
	t.Helper()
	r := c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, "provision: %s", r.Raw)
	return fetchInstallTest(t, c, id, repo)
}

// fetchInstallTest is throughTest after provision (a test that boots its
// stand-in between the two).
func fetchInstallTest(t testing.TB, c *client, id, repo string) resp {
	t.Helper()
	var r resp
	for _, s := range []struct {
		step string
		body any
	}{
		{"fetch_code", map[string]any{"git_url": repo, "ref": "main"}},
		{"install_requirements", nil},
		{"test", nil},
	} {
		r = c.Step(id, s.step, s.body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s.step, r.Raw)
	}
	return r
}

// endpointClient verifies endpoints with the platform's CA (never skips verification).
func endpointClient(t testing.TB, p *platform.Platform) *http.Client {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(p.CA.RootPEM()))
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// gitRepo makes a real Git repository from a folder's files, committed on main.
func gitRepo(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "algorithm"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	return dir
}

// commit writes files into repo and commits them.
func commit(t testing.TB, repo string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644))
	}
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "change"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
}

func devToken(t testing.TB, p *platform.Platform) string {
	tok, err := p.EnsureDevUser(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	return tok
}

// mustCA loads the CA a separate process created in data.
func mustCA(t testing.TB, data string) *certs.CA {
	ca, err := certs.LoadOrCreateCA(filepath.Join(data, "ca"))
	require.NoError(t, err)
	return ca
}
