package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testgit"
	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/source"
)

func withCredentialsKey(t *testing.T) (func(*Config), []byte) {
	key, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	return func(c *Config) { c.CredentialsKey = key }, key
}

// A git_url with a password (or a token as user) is refused, naming git_url
// and never echoing it; git_auth is checked field by field.
func TestFetchCodeRefusesSecretsInURLAndBadGitAuth(t *testing.T) {
	mod, _ := withCredentialsKey(t)
	e := newEnv(t, mod)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/steps/fetch_code"
	key := testgit.NewKey(t)
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"password in URL", map[string]any{"git_url": "https://alice:S3cret-url-pw@example.com/a.git"}, "git_url"},
		{"token as user", map[string]any{"git_url": "https://S3cret-url-pw@example.com/a.git"}, "git_url"},
		{"ssh password", map[string]any{"git_url": "ssh://git:S3cret-url-pw@example.com/a.git"}, "git_url"},
		{"key without known_hosts", map[string]any{"git_url": "git@example.com:a.git",
			"git_auth": map[string]any{"ssh_private_key": string(key.PEM)}}, "git_auth.known_hosts"},
		{"key for https", map[string]any{"git_url": "https://example.com/a.git",
			"git_auth": map[string]any{"ssh_private_key": string(key.PEM), "known_hosts": "example.com ssh-ed25519 AAAA"}}, "git_url"},
		{"not a key", map[string]any{"git_url": "git@example.com:a.git",
			"git_auth": map[string]any{"ssh_private_key": "S3cret-url-pw", "known_hosts": "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0ZJxV9Q1bvfpQwJ8u5Yqk6y3lLxBXb2Hc2hGQ0Jy+"}}, "git_auth.ssh_private_key"},
		{"empty", map[string]any{"git_url": "https://example.com/a.git", "git_auth": map[string]any{"username": "alice"}}, "git_auth.password"},
		{"password for ssh", map[string]any{"git_url": "git@example.com:a.git", "git_auth": map[string]any{"password": "S3cret-url-pw"}}, "git_url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := e.do(http.MethodPost, path, "tokA", c.body)
			require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			require.Equal(t, []string{c.field}, fieldNames(jsonOf(t, w)), w.Body.String())
			require.NotContains(t, w.Body.String(), "S3cret-url-pw")
			require.NotContains(t, w.Body.String(), "PRIVATE KEY")
		})
	}
	require.Zero(t, e.wf.callCount(), "nothing reached the workflow")
	require.NotContains(t, e.logs.String(), "S3cret-url-pw")

	body, ct := multipartBody(t, part{field: "git_url", body: "https://example.com/a.git"},
		part{field: "git_auth", body: `{"password": "S3cret-url-pw", "extra": 1}`})
	w := e.do(http.MethodPost, path, "tokA", body, "Content-Type", ct)
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Equal(t, []string{"git_auth"}, fieldNames(jsonOf(t, w)))
	require.NotContains(t, w.Body.String(), "S3cret-url-pw")

	noKey := newEnv(t)
	id = noKey.create("tokA", "edges")
	w = noKey.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA",
		map[string]any{"git_url": "https://example.com/a.git", "git_auth": map[string]any{"password": "S3cret-url-pw"}})
	requireError(t, w, http.StatusServiceUnavailable, "credentials_unavailable")
}

// Valid git_auth (JSON body or multipart part) is sealed into the blob store
// under credentials/<id>/; the update carries only that key, the blob holds
// no plaintext, and it is removed once the step is over.
func TestFetchCodeSealsGitAuth(t *testing.T) {
	const password = "S3cret-sealed-pw"
	mod, key := withCredentialsKey(t)
	e := newEnv(t, mod)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/steps/fetch_code"
	var opened []source.GitCredentials
	e.wf.onUpdate = func(_, _ string, arg any, st workflows.State) (workflows.State, error) {
		r := arg.(workflows.FetchCodeRequest)
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		require.NotContains(t, string(raw), password, "the workflow's input holds no secret")
		require.True(t, strings.HasPrefix(r.Credentials, source.CredentialsPrefix+"/"+id+"/"), r.Credentials)
		rc, err := e.blobs.Get(context.Background(), r.Credentials)
		require.NoError(t, err)
		box, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		require.NotContains(t, string(box), password)
		plain, err := sealed.Open(key, "git credentials "+id, box)
		require.NoError(t, err)
		var g source.GitCredentials
		require.NoError(t, json.Unmarshal(plain, &g))
		opened = append(opened, g)
		return st, nil
	}
	w := e.do(http.MethodPost, path, "tokA", map[string]any{"git_url": "https://example.com/a.git",
		"git_auth": map[string]any{"username": "alice", "password": password}})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	body, ct := multipartBody(t, part{field: "git_url", body: "https://example.com/a.git"},
		part{field: "git_auth", body: `{"password": "` + password + `"}`}, part{"files", "model.pt", "weights"})
	w = e.do(http.MethodPost, path, "tokA", body, "Content-Type", ct)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	require.Equal(t, []source.GitCredentials{{Username: "alice", Password: password}, {Password: password}}, opened)
	require.Empty(t, filesUnder(t, e.uploads), "the sealed credentials are removed once the step is over")
	require.NotContains(t, e.logs.String(), password)
}
