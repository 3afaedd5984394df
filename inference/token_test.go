package inference

import (
	"github.com/algocloud/algocloud/inference/inferapi"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// TestTokenFileRotatesAtOnce: a server reading its token hash from a file
// accepts the new token and refuses the old one at the very next request
// after the file is replaced (no restart, no waiting); a file that holds no
// hash, or is gone, keeps the current token; ReloadToken (SIGHUP) works.
func TestTokenFileRotatesAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token.sha256")
	require.NoError(t, inferapi.WriteTokenFile(file, tokenSHA("old-token")))
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.TokenSHA256, c.TokenFile = "", file
	})
	ts.waitReady(t)
	body := pngBytes(t, testImage(8, 8, 1))
	predict := func(token string) int {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "image/png")
		status, _, out := ts.do(t, req)
		if status != http.StatusOK {
			requireError(t, http.StatusUnauthorized, CodeUnauthorized, status, out)
		}
		return status
	}
	require.Equal(t, http.StatusOK, predict("old-token"))
	require.Equal(t, http.StatusUnauthorized, predict("new-token"))

	for i, tok := range []string{"new-token", "newer-token", "newest-token"} {
		require.NoError(t, inferapi.WriteTokenFile(file, tokenSHA(tok)))
		require.Equal(t, http.StatusUnauthorized, predict("old-token"), "rotation %d: the old token is refused at once", i)
		require.Equal(t, http.StatusOK, predict(tok), "rotation %d", i)
	}

	// Garbage and a missing file keep the current token, and say so in the log.
	require.NoError(t, os.WriteFile(file, []byte("not a hash"), 0o600))
	require.Equal(t, http.StatusOK, predict("newest-token"))
	require.Contains(t, ts.logs.String(), "endpoint token file holds no token hash")
	require.NoError(t, os.Remove(file))
	require.Equal(t, http.StatusOK, predict("newest-token"))
	require.Contains(t, ts.logs.String(), "endpoint token file unreadable")

	// SIGHUP's path.
	require.NoError(t, os.WriteFile(file, []byte(tokenSHA("hup-token")), 0o600))
	require.NoError(t, ts.srv.ReloadToken())
	require.Equal(t, http.StatusOK, predict("hup-token"))
	require.NotContains(t, ts.logs.String(), tokenSHA("hup-token"), "the hash is not logged")
}

// TestTokenFileChecked: a server whose token file is missing or holds no
// hash does not start; WriteTokenFile refuses what is not a hash.
func TestTokenFileChecked(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{TokenFile: filepath.Join(dir, "missing"), CodeDir: dir, Input: spec.Image, Output: spec.Image}
	_, err := NewServer(cfg, nil)
	require.ErrorContains(t, err, "token_file")
	require.NoError(t, os.WriteFile(cfg.TokenFile, []byte("abc"), 0o600))
	_, err = NewServer(cfg, nil)
	require.ErrorContains(t, err, "64 hex digits")
	require.Error(t, inferapi.WriteTokenFile(cfg.TokenFile, "abc"))
}

// TestPlatformTokenAcceptedBesideTheUsersAndSurvivesRotation: the platform
// caller's token (Config.PlatformTokenSHA256) is accepted beside the user's,
// keeps working when the user's token rotates, and a malformed hash is a
// config error.
func TestPlatformTokenAcceptedBesideTheUsersAndSurvivesRotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token.sha256")
	require.NoError(t, inferapi.WriteTokenFile(file, tokenSHA("user-token")))
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.TokenSHA256, c.TokenFile = "", file
		c.PlatformTokenSHA256 = tokenSHA("ep_platform_abc")
		c.AgentTokenSHA256 = tokenSHA("agent-local-token")
	})
	ts.waitReady(t)
	body := pngBytes(t, testImage(8, 8, 1))
	predict := func(token string) int {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "image/png")
		status, _, _ := ts.do(t, req)
		return status
	}
	require.Equal(t, http.StatusOK, predict("user-token"))
	require.Equal(t, http.StatusOK, predict("ep_platform_abc"))
	require.Equal(t, http.StatusUnauthorized, predict("ep_platform_abd"))
	require.NoError(t, inferapi.WriteTokenFile(file, tokenSHA("rotated")))
	require.Equal(t, http.StatusUnauthorized, predict("user-token"))
	require.Equal(t, http.StatusOK, predict("ep_platform_abc"), "a user's rotation leaves the platform caller alone")
	require.Equal(t, http.StatusOK, predict("agent-local-token"), "the server agent's own token (batch chunks) is accepted too")
	require.Equal(t, http.StatusUnauthorized, predict("agent-local-tokem"))

	cfg := Config{TokenSHA256: tokenSHA("x"), PlatformTokenSHA256: "nothex", Input: spec.Image, Output: spec.Image, CodeDir: t.TempDir()}
	_, err := NewServer(cfg, nil)
	require.ErrorContains(t, err, "platform_token_sha256")
	cfg = Config{TokenSHA256: tokenSHA("x"), AgentTokenSHA256: "nothex", Input: spec.Image, Output: spec.Image, CodeDir: t.TempDir()}
	_, err = NewServer(cfg, nil)
	require.ErrorContains(t, err, "agent_token_sha256")
}
