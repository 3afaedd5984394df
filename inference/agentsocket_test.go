package inference

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
)

// TestAgentSocketServesTheSameAPI: with Config.AgentSocket the server also
// serves plain HTTP on that Unix socket (the agent's batch chunks: no TLS,
// no TCP), made 0600, with the same token check as its port (the agent's
// token and the user's accepted, anything else 401), and the socket file is
// gone once the server has drained. A file at the path that is not a socket
// is left alone and the server serves its port only.
func TestAgentSocketServesTheSameAPI(t *testing.T) {
	dir := t.TempDir()
	// Deeper than a socket address may be (108 bytes): bound and dialed
	// through the folder's descriptor (inferapi.ListenUnix, DialUnix).
	deep := filepath.Join(dir, strings.Repeat("d", 100))
	require.NoError(t, os.Mkdir(deep, 0o700))
	sock := filepath.Join(deep, "a.sock")
	require.Greater(t, len(sock), 108)
	// A socket a killed server left behind is replaced.
	fd, err := syscall.Open(deep, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	require.NoError(t, err)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("/proc/self/fd/%d/a.sock", fd)})
	require.NoError(t, err)
	old.SetUnlinkOnClose(false)
	require.NoError(t, old.Close())
	require.NoError(t, syscall.Close(fd))
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.AgentTokenSHA256 = tokenSHA("agent-local-token")
		c.AgentSocket = sock
	})
	ts.waitReady(t)
	require.Eventually(t, func() bool {
		fi, err := os.Stat(sock)
		return err == nil && fi.Mode()&os.ModeSocket != 0 && fi.Mode().Perm() == 0o600
	}, 10*time.Second, 10*time.Millisecond, "the agent socket is a 0600 socket")

	uc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return inferapi.DialUnix(ctx, sock)
		}}}
	body := pngBytes(t, testImage(8, 8, 1))
	predict := func(c *http.Client, base, token string) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, base+"/predict", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "image/png")
		res, err := c.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var b strings.Builder
		_, err = io.Copy(&b, res.Body)
		require.NoError(t, err)
		return res.StatusCode, []byte(b.String())
	}
	st, viaSocket := predict(uc, "http://revision", "agent-local-token")
	require.Equal(t, http.StatusOK, st, string(viaSocket))
	st, viaPort := predict(ts.Client, ts.URL, testToken)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, viaPort, viaSocket, "the socket serves the same predict as the port")
	st, _ = predict(uc, "http://revision", "agent-local-tokem")
	require.Equal(t, http.StatusUnauthorized, st, "the socket checks the token like the port")
	st, _ = predict(uc, "http://revision", "")
	require.Equal(t, http.StatusUnauthorized, st)

	ts.stop(t)
	_, err = os.Lstat(sock)
	require.ErrorIs(t, err, os.ErrNotExist, "a drained server leaves no socket behind")

	// Something else at the path: not replaced, and the port still serves.
	other := filepath.Join(dir, "not-a-socket")
	require.NoError(t, os.WriteFile(other, []byte("keep"), 0o600))
	ts2 := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.AgentTokenSHA256 = tokenSHA("agent-local-token")
		c.AgentSocket = other
	})
	ts2.waitReady(t)
	st, _ = predict(ts2.Client, ts2.URL, "agent-local-token")
	require.Equal(t, http.StatusOK, st)
	b, err := os.ReadFile(other)
	require.NoError(t, err)
	require.Equal(t, "keep", string(b))
	require.Contains(t, ts2.logs.String(), "agent socket not opened")
}
