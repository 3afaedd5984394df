package platformbench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/bench/boot"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// TestRawConfig: the raw baseline's copy of a live config (which, as the
// platform writes it, names a token_file) is served on the new address and
// authorises the baseline's own token, not the deployment's.
func TestRawConfig(t *testing.T) {
	dir := t.TempDir()
	_, liveSum, err := boot.NewToken(32)
	require.NoError(t, err)
	tokenFile := filepath.Join(dir, "token.sha256")
	require.NoError(t, inferapi.WriteTokenFile(tokenFile, liveSum))
	live := filepath.Join(dir, "live.json")
	require.NoError(t, inferapi.WriteConfig(live, inferapi.Config{Name: "seg", Listen: "127.0.0.1:1",
		TokenSHA256: liveSum, TokenFile: tokenFile, CodeDir: dir, Python: "/usr/bin/python3", Threads: 1,
		Input: "image", Output: "image"}))

	_, sum, err := boot.NewToken(32)
	require.NoError(t, err)
	out, err := rawConfig(live, "127.0.0.1:2", sum)
	require.NoError(t, err)
	path := filepath.Join(dir, "raw.json")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	cfg, err := inferapi.LoadConfig(path)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:2", cfg.Listen)
	require.Equal(t, sum, cfg.TokenSHA256)
	require.Empty(t, cfg.TokenFile, "a token_file would override the baseline's token")
	require.Equal(t, "seg", cfg.Name)
}
