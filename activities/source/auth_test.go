package source

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/algocloud/algocloud/internal/testgit"
)

// A private repository over HTTP (git http-backend behind basic auth) is
// cloned with Auth, refused without it, and a wrong password is
// ErrBadCredentials whose message holds neither password.
func TestClone_HTTPBasicAuth(t *testing.T) {
	const user, password = "alice", "S3cret-http-pw"
	r := newTestRepo(t)
	srv := testgit.ServeHTTP(t, filepath.Dir(r.dir), user, password)
	url := srv.URL + "/" + filepath.Base(r.dir)
	dest := filepath.Join(t.TempDir(), "code")

	_, err := Clone(context.Background(), CloneOptions{URL: url, Dest: dest, AllowPrivate: true})
	require.ErrorIs(t, err, ErrUnreachable, "no credentials: the private repository is unreachable")

	_, err = Clone(context.Background(), CloneOptions{URL: url, Dest: dest, AllowPrivate: true,
		Auth: &Auth{Username: user, Password: "wrong-pw-123"}})
	require.ErrorIs(t, err, ErrBadCredentials)
	require.NotContains(t, err.Error(), "wrong-pw-123")
	require.NotContains(t, err.Error(), password)

	res, err := Clone(context.Background(), CloneOptions{URL: url, Ref: "dev", Dest: dest, AllowPrivate: true,
		Auth: &Auth{Username: user, Password: password}})
	require.NoError(t, err)
	require.Equal(t, r.c3, res.Commit)
	require.Equal(t, "VERSION = 'dev-1'\n", readMain(t, dest))
}

// A private repository over SSH is cloned with its deploy key when the
// server's host key is in known_hosts; an unknown host key, an impostor's
// key, a key the server does not know and a missing known_hosts all fail
// with ErrBadCredentials before any code is fetched.
func TestClone_SSHDeployKey(t *testing.T) {
	r := newTestRepo(t)
	deploy := testgit.NewKey(t)
	srv := testgit.ServeSSH(t, filepath.Dir(r.dir), deploy.Signer.PublicKey())
	url := srv.URL(filepath.Base(r.dir))
	dest := filepath.Join(t.TempDir(), "code")
	clone := func(a *Auth) (Result, error) {
		return Clone(context.Background(), CloneOptions{URL: url, Dest: dest, AllowPrivate: true, Auth: a})
	}

	res, err := clone(&Auth{SSHPrivateKey: deploy.PEM, KnownHosts: []byte(srv.KnownHosts())})
	require.NoError(t, err)
	require.Equal(t, r.c2, res.Commit)
	require.Equal(t, "VERSION = 'main-2'\n", readMain(t, dest))

	impostor := testgit.NewKey(t)
	_, err = clone(&Auth{SSHPrivateKey: deploy.PEM, KnownHosts: []byte(srv.KnownHostsFor(impostor))})
	require.ErrorIs(t, err, ErrBadCredentials, "a host key other than the one known_hosts pins is refused")
	require.Contains(t, err.Error(), "host key")

	otherHost := knownhosts.Line([]string{"[127.0.0.1]:1"}, srv.HostKey.Signer.PublicKey())
	_, err = clone(&Auth{SSHPrivateKey: deploy.PEM, KnownHosts: []byte(otherHost)})
	require.ErrorIs(t, err, ErrBadCredentials, "a known_hosts without this host refuses it")

	stranger := testgit.NewKey(t)
	refused := srv.Refused.Load()
	_, err = clone(&Auth{SSHPrivateKey: stranger.PEM, KnownHosts: []byte(srv.KnownHosts())})
	require.ErrorIs(t, err, ErrBadCredentials, "a key the server does not authorise")
	require.Greater(t, srv.Refused.Load(), refused)
	require.NotContains(t, err.Error(), "PRIVATE KEY")

	_, err = clone(&Auth{SSHPrivateKey: deploy.PEM})
	require.ErrorIs(t, err, ErrBadCredentials)
	require.Contains(t, err.Error(), "known_hosts is required")
}

func TestAuth_Check(t *testing.T) {
	key := testgit.NewKey(t)
	kh := []byte("[127.0.0.1]:2222 " + string(key.Signer.PublicKey().Type()) + " AAAAC3NzaC1lZDI1NTE5AAAAIGq0\n")
	good := testgit.NewKey(t)
	goodKH := []byte("example.com " + string(ssh.MarshalAuthorizedKey(good.Signer.PublicKey())))
	cases := []struct {
		name, url string
		auth      Auth
		want      string // "" for valid
	}{
		{"password https", "https://example.com/r.git", Auth{Password: "tk-123"}, ""},
		{"password ssh", "ssh://git@example.com/r.git", Auth{Password: "tk-123"}, "needs an https URL"},
		{"key https", "https://example.com/r.git", Auth{SSHPrivateKey: key.PEM, KnownHosts: goodKH}, "needs an ssh URL"},
		{"key ssh", "git@example.com:r.git", Auth{SSHPrivateKey: key.PEM, KnownHosts: goodKH}, ""},
		{"no known hosts", "ssh://example.com/r.git", Auth{SSHPrivateKey: key.PEM}, "known_hosts is required"},
		{"bad known hosts", "ssh://example.com/r.git", Auth{SSHPrivateKey: key.PEM, KnownHosts: kh}, "known_hosts"},
		{"bad key", "ssh://example.com/r.git", Auth{SSHPrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"), KnownHosts: goodKH}, "not a PEM"},
		{"both", "ssh://example.com/r.git", Auth{SSHPrivateKey: key.PEM, KnownHosts: goodKH, Password: "x"}, "not both"},
		{"empty", "https://example.com/r.git", Auth{}, "give a password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.auth.Check(c.url)
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadCredentials)
			require.Contains(t, err.Error(), c.want)
			var ce *CredentialsError
			require.ErrorAs(t, err, &ce)
			require.NotEmpty(t, ce.Field)
			require.NotContains(t, err.Error(), "tk-123")
		})
	}
}

// Auth never prints its secrets, whichever way it is formatted or logged.
func TestAuth_NeverPrinted(t *testing.T) {
	a := &Auth{Username: "alice", Password: "S3cret-pw", SSHPrivateKey: nil}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "auth", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), b.String()} {
		require.NotContains(t, s, "S3cret-pw")
	}
	require.False(t, UserinfoPassword("git@example.com:r.git"))
	require.False(t, UserinfoPassword("ssh://git@example.com/r.git"))
	require.True(t, UserinfoPassword("ssh://git:pw@example.com/r.git"))
	require.True(t, UserinfoPassword("https://alice:S3cret@example.com/r.git"))
	require.True(t, UserinfoPassword("https://ghp_token@example.com/r.git"), "a token alone in the user part is a secret too")
	require.False(t, UserinfoPassword("https://example.com/r.git"))
	require.Equal(t, "https://example.com/r.git", Redact("https://alice:S3cret@example.com/r.git"))
}
