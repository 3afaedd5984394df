package templates_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// TestClientsLiveSystemRoots runs the clients generated for a publicly
// trusted endpoint (--certs acme: no CA URL) against a live HTTPS endpoint.
// The test root stands in for the system's roots through SSL_CERT_FILE, which
// OpenSSL (and so curl and Python's ssl) reads for its default trust store:
// the clients verify with the system's roots and fetch no CA file, and
// without that root they refuse the endpoint.
func TestClientsLiveSystemRoots(t *testing.T) {
	requireTools(t)
	ca := newTestCA(t)
	var lc liveCase
	for _, c := range liveCases() {
		if c.in == spec.Image && c.out == spec.Image {
			lc = c
		}
	}
	ep := startEndpoint(t, lc.in, lc.out, lc.code, &ca)
	clients, err := templates.Clients(templates.ClientData{Name: "Live", APIName: "live", Endpoint: ep.URL, Input: lc.in, Output: lc.out})
	require.NoError(t, err)
	input := lc.input(t)

	// run runs a client in a fresh folder; it returns the folder, the
	// command's output and its error.
	run := func(systemRoots string, name string, args ...string) (string, string, error) {
		dir := t.TempDir()
		for _, c := range clients {
			require.NoError(t, os.WriteFile(filepath.Join(dir, c.Filename), []byte(c.Content), 0o644))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "input.png"), input, 0o644))
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, templates.TokenEnv + "=" + liveToken, "SSL_CERT_FILE=" + systemRoots}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return dir, out.String(), err
	}
	for _, c := range []struct{ name, cmd, script string }{
		{"curl", "/bin/sh", "predict.sh"},
		{"python snippet", python, "example.py"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, out, err := run(ca.RootFile, c.cmd, c.script)
			require.NoError(t, err, out)
			lc.check(t, dir, out)
			_, err = os.Stat(filepath.Join(dir, templates.DefaultCAFile))
			require.True(t, os.IsNotExist(err), "no CA file is downloaded")

			// Another trust store (an empty one): the endpoint is refused.
			empty := filepath.Join(t.TempDir(), "empty.pem")
			require.NoError(t, os.WriteFile(empty, nil, 0o644))
			dir, out, err = run(empty, c.cmd, c.script)
			require.Error(t, err, "the endpoint was not verified: %s", out)
			require.Regexp(t, `(?i)certificate`, out)
			_, err = os.Stat(filepath.Join(dir, "output.png"))
			require.True(t, os.IsNotExist(err), "no output without a verified endpoint")
		})
	}
}
