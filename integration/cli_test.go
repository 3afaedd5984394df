package integration

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCLIDeployAndPredict runs the real binary's `deploy` on an example folder
// against the platform, then `predict` and `ls`, as the README shows.
func TestCLIDeployAndPredict(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	tok := devToken(t, p)
	bin := algocloudBinary(t)
	env := append(os.Environ(), "ALGOCLOUD_TOKEN="+tok)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("deploy", "--api", p.APIURL, filepath.Join(repoRoot(t), "examples", "segmentation"))
	require.NoError(t, err, out)
	endpoint := regexp.MustCompile(`endpoint\s+(https://\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`token\s+(ep_\S+)`).FindStringSubmatch(out)
	require.NotNil(t, endpoint, out)
	require.NotNil(t, token, out)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, p.CA.RootPEM(), 0o644))
	in := filepath.Join(t.TempDir(), "in.png")
	require.NoError(t, os.WriteFile(in, samplePNG(t, 48, 32), 0o644))
	result := filepath.Join(t.TempDir(), "mask.png")
	out, err = run("predict", "--endpoint", endpoint[1], "--token", token[1], "--ca", ca, "-o", result, in)
	require.NoError(t, err, out)
	b, err := os.ReadFile(result)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 48, img.Bounds().Dx())

	out, err = run("ls", "--api", p.APIURL)
	require.NoError(t, err, out)
	require.Contains(t, out, "live")

	// Without --ca, the hint names where the platform's CA is, by URL.
	out, err = run("predict", "--api", p.APIURL, "--endpoint", endpoint[1], "--token", token[1], "-o", result, in)
	require.Error(t, err, out)
	require.Contains(t, out, "curl -sS --fail -o algocloud-ca.pem "+p.APIURL+"/api/ca.pem", out)
	require.NotContains(t, out, "API/api/ca.pem", out)

	// The README's `algocloud logs -f otsu-segmentation`: deploy named it so.
	out, err = run("logs", "--api", p.APIURL, "otsu-segmentation")
	require.NoError(t, err, out)
	require.Regexp(t, `(?m)install +venv /`, out) // the server agent's install line, under its kind

	// New requirements and a passing test on the live deployment: ls says
	// tested (Complete is next) until the endpoint serves them.
	c := newClient(t, p, tok)
	list := c.Do(http.MethodGet, "/api/v1/deployments", nil)
	id := list.Body["deployments"].([]any)[0].(map[string]any)["id"].(string)
	for _, s := range []string{"install_requirements", "test"} {
		r := c.Step(id, s, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
	}
	out, err = run("ls", "--api", p.APIURL)
	require.NoError(t, err, out)
	require.Regexp(t, `otsu-segmentation\s.*\stested\s`, out)
}
