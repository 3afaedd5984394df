package source

import (
	"context"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// testRepo is a real repository on disk:
//
//	c1 (main-1, tags v1 annotated and light) ── c2 (main-2) = main
//	  └─ c3 (dev-1) = dev
type testRepo struct {
	dir        string
	repo       *git.Repository
	c1, c2, c3 string
}

var sig = &object.Signature{Name: "Ada", Email: "ada@example.test", When: time.Unix(1_700_000_000, 0)}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "algo")
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	require.NoError(t, err)
	r := &testRepo{dir: dir, repo: repo}
	r.c1 = r.commit(t, "main-1")
	r.c2 = r.commit(t, "main-2")

	wt, err := repo.Worktree()
	require.NoError(t, err)
	require.NoError(t, wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(r.c1), Branch: "refs/heads/dev", Create: true}))
	r.c3 = r.commit(t, "dev-1")
	require.NoError(t, wt.Checkout(&git.CheckoutOptions{Branch: plumbing.Main}))

	_, err = repo.CreateTag("v1", plumbing.NewHash(r.c1), &git.CreateTagOptions{Tagger: sig, Message: "first"})
	require.NoError(t, err)
	_, err = repo.CreateTag("light", plumbing.NewHash(r.c1), nil)
	require.NoError(t, err)
	return r
}

// commit writes aai_main.py with version and commits it on the current branch.
func (r *testRepo) commit(t *testing.T, version string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(r.dir, "aai_main.py"), []byte("VERSION = '"+version+"'\n"), 0o644))
	wt, err := r.repo.Worktree()
	require.NoError(t, err)
	_, err = wt.Add("aai_main.py")
	require.NoError(t, err)
	h, err := wt.Commit(version, &git.CommitOptions{Author: sig})
	require.NoError(t, err)
	return h.String()
}

func readMain(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "aai_main.py"))
	require.NoError(t, err)
	return string(b)
}

func TestClone_Refs(t *testing.T) {
	r := newTestRepo(t)
	cases := []struct {
		ref, commit, version string
	}{
		{"", r.c2, "main-2"},
		{"main", r.c2, "main-2"},
		{"dev", r.c3, "dev-1"},
		{"refs/heads/dev", r.c3, "dev-1"},
		{"v1", r.c1, "main-1"},
		{"light", r.c1, "main-1"},
		{r.c3, r.c3, "dev-1"},
		{r.c1[:7], r.c1, "main-1"},
	}
	for _, tc := range cases {
		t.Run("ref="+tc.ref, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "code")
			res, err := Clone(context.Background(), CloneOptions{URL: r.dir, Ref: tc.ref, Dest: dest, AllowLocal: true})
			require.NoError(t, err)
			require.Equal(t, tc.commit, res.Commit)
			require.Equal(t, "VERSION = '"+tc.version+"'\n", readMain(t, dest))
			require.DirExists(t, filepath.Join(dest, ".git"))
			entries, err := os.ReadDir(filepath.Dir(dest))
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary siblings left")
		})
	}
}

func TestClone_FileURL(t *testing.T) {
	r := newTestRepo(t)
	dest := filepath.Join(t.TempDir(), "code")
	res, err := Clone(context.Background(), CloneOptions{URL: "file://" + r.dir, Ref: "dev", Dest: dest, AllowLocal: true})
	require.NoError(t, err)
	require.Equal(t, r.c3, res.Commit)
}

func TestClone_Idempotent(t *testing.T) {
	r := newTestRepo(t)
	dest := filepath.Join(t.TempDir(), "code")
	opts := CloneOptions{URL: r.dir, Ref: "main", Dest: dest, AllowLocal: true}
	res, err := Clone(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, r.c2, res.Commit)

	// A marker shows whether the tree was replaced.
	marker := filepath.Join(dest, "marker")
	require.NoError(t, os.WriteFile(marker, []byte("x"), 0o644))
	res, err = Clone(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, r.c2, res.Commit)
	require.FileExists(t, marker, "same commit: no re-clone")

	// The same SHA by prefix is also already there.
	res, err = Clone(context.Background(), CloneOptions{URL: r.dir, Ref: r.c2[:10], Dest: dest, AllowLocal: true})
	require.NoError(t, err)
	require.Equal(t, r.c2, res.Commit)
	require.FileExists(t, marker)

	// The branch moved: a new tree.
	c4 := r.commit(t, "main-3")
	res, err = Clone(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, c4, res.Commit)
	require.Equal(t, "VERSION = 'main-3'\n", readMain(t, dest))
	require.NoFileExists(t, marker)

	// Another ref: another tree.
	res, err = Clone(context.Background(), CloneOptions{URL: r.dir, Ref: "dev", Dest: dest, AllowLocal: true})
	require.NoError(t, err)
	require.Equal(t, r.c3, res.Commit)
	require.Equal(t, "VERSION = 'dev-1'\n", readMain(t, dest))
	entries, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	require.Len(t, entries, 1, "old trees and temporary folders removed")
}

func TestClone_Errors(t *testing.T) {
	r := newTestRepo(t)
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "code")

	for _, ref := range []string{"nope", "deadbeef", "0123456789012345678901234567890123456789"} {
		_, err := Clone(ctx, CloneOptions{URL: r.dir, Ref: ref, Dest: dest, AllowLocal: true})
		require.ErrorIs(t, err, ErrRefNotFound, ref)
		require.ErrorContains(t, err, ref)
		require.NoDirExists(t, dest)
	}

	_, err := Clone(ctx, CloneOptions{URL: filepath.Join(t.TempDir(), "missing"), Dest: dest, AllowLocal: true})
	require.ErrorIs(t, err, ErrUnreachable)

	_, err = Clone(ctx, CloneOptions{URL: r.dir, Dest: dest})
	require.ErrorIs(t, err, ErrForbiddenURL, "local paths need AllowLocal")
	_, err = Clone(ctx, CloneOptions{URL: "file://" + r.dir, Dest: dest})
	require.ErrorIs(t, err, ErrForbiddenURL)

	forbidden := []string{
		"ext::sh -c touch% /tmp/pwned",
		"ext::sh",
		"fd::17",
		"ftp://example.com/repo.git",
		"http://127.0.0.1:1/repo.git",
		"https://localhost/repo.git",
		"http://[::1]/repo.git",
		"http://169.254.169.254/latest/meta-data",
		"http://10.1.2.3/repo.git",
		"ssh://git@127.0.0.1/repo.git",
		"git://192.168.1.1/repo.git",
		"git@127.0.0.1:org/repo.git",
		// Addresses the Git check used to let through (refused before any dial).
		"git://[64:ff9b::a9fe:a9fe]/repo.git",
		"ssh://git@[2002:a9fe:a9fe::1]/repo.git",
		"https://[::a9fe:a9fe]/repo.git",
		"http://192.0.0.170/repo.git",
		"git://198.18.0.1/repo.git",
		"ssh://git@240.0.0.1/repo.git",
		"ssh://git@[fd00:ec2::254]:2222/repo.git",
		"--upload-pack=touch /tmp/pwned",
		"",
	}
	for _, u := range forbidden {
		_, err := Clone(ctx, CloneOptions{URL: u, Dest: dest, AllowLocal: true})
		require.ErrorIs(t, err, ErrForbiddenURL, u)
	}

	// Allowed by policy, but nothing listens there.
	_, err = Clone(ctx, CloneOptions{URL: "http://127.0.0.1:1/repo.git", Dest: dest, AllowPrivate: true})
	require.ErrorIs(t, err, ErrUnreachable)
	require.NoDirExists(t, dest)
}

func TestClone_Cancelled(t *testing.T) {
	r := newTestRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Clone(ctx, CloneOptions{URL: r.dir, Dest: filepath.Join(t.TempDir(), "code"), AllowLocal: true})
	require.ErrorIs(t, err, context.Canceled)
}

// httpRepo serves the repository's parent folder with git's own smart HTTP
// server (git http-backend behind net/http/cgi) and returns the repo's URL.
func httpRepo(t *testing.T, r *testRepo) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git http-backend not installed")
	}
	srv := httptest.NewServer(&cgi.Handler{
		Path:   backend,
		Env:    []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.dir), "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard,
	})
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(r.dir)
}

func TestClone_OverHTTP(t *testing.T) {
	r := newTestRepo(t)
	url := httpRepo(t, r)
	dest := filepath.Join(t.TempDir(), "code")

	_, err := Clone(context.Background(), CloneOptions{URL: url, Dest: dest})
	require.ErrorIs(t, err, ErrForbiddenURL, "loopback needs AllowPrivate")

	res, err := Clone(context.Background(), CloneOptions{URL: url, Ref: "v1", Dest: dest, AllowPrivate: true})
	require.NoError(t, err)
	require.Equal(t, r.c1, res.Commit)
	require.Equal(t, "VERSION = 'main-1'\n", readMain(t, dest))

	res, err = Clone(context.Background(), CloneOptions{URL: url, Ref: r.c3[:8], Dest: dest, AllowPrivate: true})
	require.NoError(t, err)
	require.Equal(t, r.c3, res.Commit)

	_, err = Clone(context.Background(), CloneOptions{URL: url + "-missing", Dest: dest, AllowPrivate: true})
	require.ErrorIs(t, err, ErrUnreachable)
}

func TestClone_CredentialsNotKept(t *testing.T) {
	r := newTestRepo(t)
	url := strings.Replace(httpRepo(t, r), "http://", "http://user:s3cret@", 1)
	dest := filepath.Join(t.TempDir(), "code")
	opts := CloneOptions{URL: url, Dest: dest, AllowPrivate: true}
	_, err := Clone(context.Background(), opts)
	require.NoError(t, err)
	cfg, err := os.ReadFile(filepath.Join(dest, ".git", "config"))
	require.NoError(t, err)
	require.NotContains(t, string(cfg), "s3cret")

	marker := filepath.Join(dest, "marker")
	require.NoError(t, os.WriteFile(marker, nil, 0o644))
	_, err = Clone(context.Background(), opts)
	require.NoError(t, err)
	require.FileExists(t, marker, "still recognised as the same clone")

	_, err = Clone(context.Background(), CloneOptions{URL: url + "-missing", Dest: dest, AllowPrivate: true})
	require.ErrorIs(t, err, ErrUnreachable)
	require.NotContains(t, err.Error(), "s3cret", "errors do not leak the password")
}

// go-git users in the process that do not go through Clone (no guard on the
// endpoint) get the strict default policy, not an unchecked dial; Clone's
// own guard with an allowing policy reaches the same server.
func TestGuard_DefaultIsPublicOnly(t *testing.T) {
	r := newTestRepo(t)
	url := httpRepo(t, r)
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})

	_, err := remote.ListContext(context.Background(), &git.ListOptions{})
	require.ErrorContains(t, err, "not a public address")

	g, release := newGuard(&netpolicy.Dialer{Policy: netpolicy.Policy{Allow: netpolicy.Loopback}})
	defer release()
	refs, err := remote.ListContext(context.Background(), &git.ListOptions{ProxyOptions: g.proxyOptions()})
	require.NoError(t, err)
	require.NotEmpty(t, refs)
}
