package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/blobs/s3store"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/internal/testenv/testpg"
	"github.com/algocloud/algocloud/internal/testgit"
	"github.com/algocloud/algocloud/workflows"
)

// TestSplitAPIAndWorkerShareOnlyBlobs runs `algocloud api` and `algocloud
// worker` as separate processes with DIFFERENT data folders: they share the
// Temporal server, PostgreSQL and a private S3 bucket (moto) for blobs, and no
// disk. An uploaded archive and extra file reach the worker through the
// bucket, Test Code's output and the code's listing reach the API through
// it, and Delete empties
// the deployment's part of it.
func TestSplitAPIAndWorkerShareOnlyBlobs(t *testing.T) {
	moto := testmoto.Start(t)
	// Credentials from the standard chain: moto's fake ones in the
	// environment the two processes inherit, nothing from this machine.
	testmoto.UseEnvCredentials(t)
	// Separate data folders: api and worker need the same platform key, or
	// the worker can neither decode the payloads the API encrypts nor open
	// the Git credentials it sealed.
	t.Setenv("ALGOCLOUD_ENCRYPTION_KEY", testEncryptionKey(t))
	const bucket, prefix = "algocloud-blobs-it", "blobs"
	ctx := context.Background()
	s3blobs, err := s3store.NewS3(ctx, s3store.S3Options{Bucket: bucket, Prefix: prefix, Endpoint: moto.Endpoint,
		Credentials: testmoto.Credentials})
	require.NoError(t, err)
	require.NoError(t, s3blobs.CreateBucket(ctx))

	// A cluster whose operator created the search attributes (docs/architecture.md).
	srv, err := temporaldev.Start(temporaldev.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SearchAttributes: workflows.SearchAttributeTypes()})
	require.NoError(t, err)
	defer srv.Stop()
	dsn := testpg.Start(t)
	workerData, apiData := t.TempDir(), t.TempDir()
	apiPort := testenv.FreePort(t)
	common := []string{"--database-url", dsn, "--temporal-address", srv.HostPort(), "--log-level", "info",
		"--blob-bucket", bucket, "--blob-prefix", prefix, "--aws-endpoint", moto.Endpoint}
	startProc(t, append([]string{"worker", "--data", workerData, "--infer-bin", inferBin, "--allow-private-git"}, common...)...)
	startProc(t, append([]string{"api", "--data", apiData, "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort)}, common...)...)

	tok, err := platform.CreateToken(ctx, dsn, "alice")
	require.NoError(t, err)
	c := testenv.NewAPIClient(t, fmt.Sprintf("http://127.0.0.1:%d", apiPort), tok)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Split blobs", "description": "integration test", "api_name": "splitblobs",
		"input": "image", "output": "json", "threads": 1,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)

	// Code Repo Integration by upload: the example as a .zip, plus an extra file.
	ex := filepath.Join(repoRoot(t), "examples", "measurements")
	files := map[string][]byte{}
	for _, n := range []string{"aai_main.py", "aai_pip-requirements.txt"} {
		b, err := os.ReadFile(filepath.Join(ex, n))
		require.NoError(t, err)
		files[n] = b
	}
	extra := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(extra, []byte("uploaded through the bucket\n"), 0o644))
	r = c.Upload("/api/v1/deployments/"+id+"/steps/fetch_code", map[string][]string{"archive": {zipFiles(t, files)}, "files": {extra}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	// The worker extracted it into its own data folder.
	got, err := os.ReadFile(filepath.Join(workerData, "servers", id, "code", "1", "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, "uploaded through the bucket\n", string(got))
	_, err = os.Stat(filepath.Join(workerData, "servers", id, "code", "1", "aai_main.py"))
	require.NoError(t, err)
	// The finished step's staged uploads are gone from the bucket.
	requireNoBlobs(t, s3blobs, "uploads/"+id)
	// The API shows the revision's files from the bucket alone (the
	// Integrate page's editor), not from the worker's disk.
	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/code/file?path=notes.txt", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, "uploaded through the bucket\n", string(r.Raw))
	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/code", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"path":"aai_main.py"`)

	for _, step := range []string{"install_requirements", "test"} {
		r = c.Step(id, step, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
	}
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	test, _ := st.Body["state"].(map[string]any)["test"].(map[string]any)
	require.NotNil(t, test, string(st.Raw))
	require.Equal(t, true, test["ok"], string(st.Raw))
	key, _ := test["output_key"].(string)
	require.Equal(t, "tests/"+id+"/1/output.json", key, string(st.Raw))
	require.Nil(t, test["output_file"], "no path on the worker's disk")

	// The API streams the output from the bucket.
	req, err := http.NewRequest(http.MethodGet, c.Base+"/api/v1/deployments/"+id+"/test/output", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.HTTP.Do(req)
	require.NoError(t, err)
	served, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(served))
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.Unmarshal(served, &out), string(served))
	require.NotEmpty(t, out)
	rc, err := s3blobs.Get(ctx, key)
	require.NoError(t, err)
	inBucket, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	require.Equal(t, string(inBucket), string(served))

	// Neither process put an upload or an output in its data folder.
	for _, dir := range []string{apiData, workerData} {
		for _, sub := range []string{"uploads", "blobs"} {
			require.Empty(t, regularFiles(t, filepath.Join(dir, sub)), "%s/%s", dir, sub)
		}
	}
	_, err = os.Stat(filepath.Join(workerData, "servers", id, "test-output"))
	require.True(t, os.IsNotExist(err), "the worker wrote the output only to the bucket")

	// Code from a private repository: the API seals the credentials into
	// the bucket, the worker (another process, another disk) opens them.
	const password = "S3cret-split-Pw"
	repo := gitRepo(t, ex)
	gitSrv := testgit.ServeHTTP(t, filepath.Dir(repo), "alice", password)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": gitSrv.URL + "/" + filepath.Base(repo),
		"git_auth": map[string]any{"username": "alice", "password": password}})

	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"with_credentials":true`)
	requireNoBlobs(t, s3blobs, "credentials/"+id)

	// Delete removes the deployment's blobs.
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	requireNoBlobs(t, s3blobs, "tests/"+id)
	requireNoBlobs(t, s3blobs, "code/"+id)
	_, err = s3blobs.Get(ctx, key)
	require.ErrorIs(t, err, blobs.ErrNotFound)
}

// requireNoBlobs checks that the bucket holds nothing under prefix.
func requireNoBlobs(t *testing.T, s *s3store.S3, prefix string) {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	require.NoError(t, err)
	require.Empty(t, keys, prefix)
}

// regularFiles lists the files under dir (none when it does not exist).
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
		return err
	})
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return out
}
