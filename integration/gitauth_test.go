package integration

import (
	"bytes"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testgit"
	"github.com/algocloud/algocloud/workflows"
)

// Code Repo Integration from private repositories, through the real API,
// embedded Temporal and worker: over HTTP with a password (the first
// listing fails, so FetchCode is retried with the sealed credentials), and
// over SSH with a deploy key checked against known_hosts. Afterwards neither
// the password nor the private key is in any event, any log line the
// platform wrote (debug level), the workflow's history (raw payload bytes) or
// any file of the data folder (metadata SQLite, temporal.db, blobs).
func TestFetchCodeWithGitCredentialsLeaksNothing(t *testing.T) {
	const password = "S3cret-it-Pw-7731"
	logs := &syncBuffer{}
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.AllowPrivateGit = true
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	stop := sync.OnceFunc(p.Stop)
	defer stop()
	c := newClient(t, p, devToken(t, p))

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "measurements"))
	root, name := filepath.Dir(repo), filepath.Base(repo)
	httpSrv := testgit.ServeHTTP(t, root, "alice", password)
	url := httpSrv.URL + "/" + name
	deploy := testgit.NewKey(t)
	sshSrv := testgit.ServeSSH(t, root, deploy.Signer.PublicKey())
	// A line of the key's base64 body: what a leak of the key would show.
	keyLines := strings.Split(strings.TrimSpace(string(deploy.PEM)), "\n")
	keyMarker := keyLines[len(keyLines)/2]

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Private code", "description": "integration test", "api_name": "privatecode",
		"input": "image", "output": "json", "threads": 1,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)

	// The old way, a password in the URL, is refused without echoing it.
	r = c.Step(id, "fetch_code", map[string]any{"git_url": strings.Replace(url, "http://", "http://alice:"+password+"@", 1)})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"field":"git_url"`)

	// A wrong password fails the step clearly, once (no retries), naming neither.
	refused := httpSrv.Refused.Load()
	r = c.Step(id, "fetch_code", map[string]any{"git_url": url, "git_auth": map[string]any{"username": "alice", "password": "Wrong-Pw-4410"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), "refused the credentials")
	require.NotContains(t, string(r.Raw), "Wrong-Pw-4410")
	require.Equal(t, refused+1, httpSrv.Refused.Load(), "a refused password is not retried")

	// The right one, with the host failing the first try: the retry
	// reads the sealed credentials again.
	httpSrv.FailNext.Store(1)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": url, "ref": "main",
		"git_auth": map[string]any{"username": "alice", "password": password}})

	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Zero(t, httpSrv.FailNext.Load(), "the first attempt met the failure")
	code := r.Body["state"].(map[string]any)["code"].(map[string]any)
	require.Equal(t, true, code["with_credentials"], string(r.Raw))
	require.Equal(t, url, code["git_url"])
	require.NotEmpty(t, code["commit"])

	// SSH: an impostor's host key is refused, the real one passes.
	r = c.Step(id, "fetch_code", map[string]any{"git_url": sshSrv.URL(name), "git_auth": map[string]any{
		"ssh_private_key": string(deploy.PEM), "known_hosts": sshSrv.KnownHostsFor(testgit.NewKey(t))}})

	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), "host key")
	r = c.Step(id, "fetch_code", map[string]any{"git_url": sshSrv.URL(name), "git_auth": map[string]any{
		"ssh_private_key": string(deploy.PEM), "known_hosts": sshSrv.KnownHosts()}})

	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	code = r.Body["state"].(map[string]any)["code"].(map[string]any)
	require.Equal(t, true, code["with_credentials"])

	secrets := []string{password, "Wrong-Pw-4410", keyMarker}
	noSecret := func(where string, b []byte) {
		t.Helper()
		for _, s := range secrets {
			require.False(t, bytes.Contains(b, []byte(s)), "%s holds a secret (%.6s...)", where, s)
		}
	}

	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events?limit=1000", nil)
	require.Equal(t, http.StatusOK, ev.Status)
	require.Contains(t, string(ev.Raw), "with password (redacted)", "the events say credentials were used")
	noSecret("GET .../events", ev.Raw)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	noSecret("GET deployment", st.Raw)

	// The history as stored (encrypted by the payload codec) and decoded
	// with the platform's key: neither holds a secret, the decoded one
	// carries the credentials' reference.
	raw := fetchHistory(t, p.Client, workflows.WorkflowID(id))
	var sawRef bool
	for _, hist := range []*historypb.History{raw, decodedHistory(t, p, raw)} {
		for _, e := range hist.Events {
			b, err := proto.Marshal(e) // payloads' raw bytes, not base64
			require.NoError(t, err)
			noSecret("history event "+e.GetEventType().String(), b)
			sawRef = sawRef || bytes.Contains(b, []byte(`"credentials":"credentials/`+id+`/`))
		}
	}
	require.True(t, sawRef, "the decoded history carries the credentials' reference")

	// The sealed credentials are gone once their step is over.
	_, err := os.Stat(filepath.Join(p.BlobDir(), "credentials", id))
	if err == nil {
		entries, _ := os.ReadDir(filepath.Join(p.BlobDir(), "credentials", id))
		require.Empty(t, entries, "sealed credentials left behind")
	}

	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	stop() // flush SQLite and Temporal's database before reading their bytes
	noSecret("the platform's logs", []byte(logs.String()))
	var files int
	require.NoError(t, filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		noSecret(path, b)
		files++
		return nil
	}))
	require.FileExists(t, filepath.Join(data, "algocloud.db"))
	require.Greater(t, files, 3)
}

// `algocloud deploy --git` fetches a private repository with the password
// from ALGOCLOUD_GIT_PASSWORD (DIR holds only algocloud.json), and neither
// its output nor the deployment's state and events show the password; the
// endpoint token is printed once on stdout and is in no event either.
func TestCLIDeployFromPrivateGit(t *testing.T) {
	const password = "S3cret-cli-Pw-5150"
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.AllowPrivateGit = true })
	defer p.Stop()
	tok := devToken(t, p)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	srv := testgit.ServeHTTP(t, filepath.Dir(repo), "alice", password)
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(repo, "algocloud.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "algocloud.json"), cfg, 0o644))

	cmd := exec.Command(algocloudBinary(t), "deploy", "--api", p.APIURL, "--git", srv.URL+"/"+filepath.Base(repo), "--ref", "main", dir)
	cmd.Env = append(os.Environ(), "ALGOCLOUD_TOKEN="+tok, "ALGOCLOUD_GIT_USERNAME=alice", "ALGOCLOUD_GIT_PASSWORD="+password)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "fetch_code (git, with credentials)")
	require.NotContains(t, string(out), password)
	token := regexp.MustCompile(`token\s+(ep_\S+)`).FindStringSubmatch(string(out))
	require.NotNil(t, token, string(out))

	c := newClient(t, p, tok)
	list := c.Do(http.MethodGet, "/api/v1/deployments", nil)
	require.Equal(t, http.StatusOK, list.Status)
	items, _ := list.Body["deployments"].([]any)
	require.Len(t, items, 1, string(list.Raw))
	id := items[0].(map[string]any)["id"].(string)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Contains(t, string(st.Raw), `"with_credentials":true`)
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events?limit=1000", nil)
	for _, s := range []string{password, token[1]} {
		require.NotContains(t, string(st.Raw), s)
		require.NotContains(t, string(ev.Raw), s)
	}
}
