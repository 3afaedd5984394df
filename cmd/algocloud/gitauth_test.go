package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// deploy --git reads credentials from the environment only: none for a
// public repository, a password, or a key file that needs a known_hosts
// file; printing them never shows the secret.
func TestGitAuthFromEnv(t *testing.T) {
	for _, k := range []string{"ALGOCLOUD_GIT_USERNAME", "ALGOCLOUD_GIT_PASSWORD", "ALGOCLOUD_GIT_SSH_KEY_FILE", "ALGOCLOUD_GIT_KNOWN_HOSTS_FILE"} {
		t.Setenv(k, "")
	}
	a, err := gitAuthFromEnv()
	require.NoError(t, err)
	require.Nil(t, a, "a public repository")

	t.Setenv("ALGOCLOUD_GIT_PASSWORD", "S3cret-env")
	a, err = gitAuthFromEnv()
	require.NoError(t, err)
	require.Equal(t, "S3cret-env", a.Password)
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", *a, *a, *a, *a), "S3cret-env")
	t.Setenv("ALGOCLOUD_GIT_PASSWORD", "")

	dir := t.TempDir()
	key, hosts := filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(key, []byte("KEY"), 0o600))
	require.NoError(t, os.WriteFile(hosts, []byte("host ssh-ed25519 AAAA\n"), 0o644))
	t.Setenv("ALGOCLOUD_GIT_SSH_KEY_FILE", key)
	_, err = gitAuthFromEnv()
	require.ErrorContains(t, err, "ALGOCLOUD_GIT_KNOWN_HOSTS_FILE")
	t.Setenv("ALGOCLOUD_GIT_KNOWN_HOSTS_FILE", hosts)
	a, err = gitAuthFromEnv()
	require.NoError(t, err)
	require.Equal(t, "KEY", a.SSHPrivateKey)
	require.Equal(t, "host ssh-ed25519 AAAA\n", a.KnownHosts)
}
