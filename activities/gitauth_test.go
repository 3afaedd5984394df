package activities

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testgit"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/source"

	"github.com/algocloud/algocloud/activities/actdef"
)

// gitRepoIn makes a repository "algo" under root with aai_main.py, using the
// git command line.
func gitRepoIn(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "algo")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, MainFile), []byte("class AlgoClass: pass\n"), 0o644))
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "one"},
	} {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
}

// FetchCode opens the credentials the API sealed into the blob store (the
// input carries only their key), clones the private repository with them,
// and records "with credentials" but never the secret. Another deployment's
// reference, a wrong key and a deleted credential fail without retries.
func TestFetchCodeWithSealedCredentials(t *testing.T) {
	const password = "S3cret-activity-pw"
	ctx := context.Background()
	root := t.TempDir()
	gitRepoIn(t, root)
	srv := testgit.ServeHTTP(t, root, "alice", password)
	store, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	key, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	a := &Activities{Blobs: store, CredentialsKey: key, AllowPrivateGit: true}
	ref, err := source.SealGitCredentials(ctx, store, key, "dep1", source.GitCredentials{Username: "alice", Password: password})
	require.NoError(t, err)
	rc, err := store.Get(ctx, ref)
	require.NoError(t, err)
	box, _ := io.ReadAll(rc)
	rc.Close()
	require.NotContains(t, string(box), password, "sealed at rest")

	sp := spec.Spec{Environment: spec.EnvPython, Input: spec.Image, Output: spec.Image}
	fetch := func(dep, ref string) (actdef.CodeInfo, error) {
		return a.FetchCode(ctx, actdef.FetchCodeInput{DeploymentID: dep, Server: compute.Server{Workdir: t.TempDir()}, Spec: sp,
			Source: actdef.CodeSource{GitURL: srv.URL + "/algo", Credentials: ref}, Revision: 1})
	}
	info, err := fetch("dep1", ref)
	require.NoError(t, err)
	require.True(t, info.WithCredentials)
	require.Equal(t, srv.URL+"/algo", info.GitURL)
	require.FileExists(t, filepath.Join(info.Dir, MainFile))
	cfg, err := os.ReadFile(filepath.Join(info.Dir, ".git", "config"))
	require.NoError(t, err)
	require.NotContains(t, string(cfg), password)

	nonRetryableErr := func(err error) {
		t.Helper()
		var ae *temporal.ApplicationError
		require.True(t, errors.As(err, &ae), "%v", err)
		require.True(t, ae.NonRetryable(), "%v", err)
		require.NotContains(t, err.Error(), password)
	}
	_, err = fetch("dep2", ref)
	nonRetryableErr(err)
	require.Contains(t, err.Error(), "not this deployment's")

	// The same sealed bytes under dep2's prefix: the label binds them to dep1.
	require.NoError(t, store.Put(ctx, "credentials/dep2/x", bytes.NewReader(box), -1))
	_, err = fetch("dep2", "credentials/dep2/x")
	nonRetryableErr(err)

	other, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	a.CredentialsKey = other
	_, err = fetch("dep1", ref)
	nonRetryableErr(err)
	require.Contains(t, err.Error(), "same encryption key")
	a.CredentialsKey = key

	_, err = a.FetchCode(ctx, actdef.FetchCodeInput{DeploymentID: "dep1", Server: compute.Server{Workdir: t.TempDir()}, Spec: sp,
		Source: actdef.CodeSource{GitURL: srv.URL + "/algo"}, Revision: 1})
	require.Error(t, err, "without the credentials the repository is private")

	require.NoError(t, a.DeleteBlobs(ctx, "dep1"))
	_, err = store.Get(ctx, ref)
	require.ErrorIs(t, err, blobs.ErrNotFound, "Delete removes the sealed credentials")
	_, err = fetch("dep1", ref)
	nonRetryableErr(err)
	require.Contains(t, err.Error(), "give them again")
}
