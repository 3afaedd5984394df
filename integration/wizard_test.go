package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
)

func samplePNG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func predict(t testing.TB, hc *http.Client, endpoint, token string, body []byte) (*http.Response, []byte) {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/predict", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, out
}

// walk runs configure..complete for an example and returns the id, endpoint and token.
func walk(t *testing.T, c *client, apiName, example, output string) (id, endpoint, token string) {
	t.Helper()
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", example))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Example " + example, "description": "integration test", "api_name": apiName,
		"input": "image", "output": output, "threads": 2,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id = r.Str("id")
	require.NotEmpty(t, id, string(r.Raw))
	r = throughTest(t, c, id, repo)
	// Tested but not completed: nothing is served on the endpoint's port yet.
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	srv, _ := st.Body["state"].(map[string]any)["server"].(map[string]any)
	require.NotNil(t, srv, string(st.Raw))
	addr := net.JoinHostPort(srv["host"].(string), fmt.Sprint(int(srv["port"].(float64))))
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("%s answers before Complete Deployment", addr)
	}
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token = r.Str("endpoint"), r.Str("token")
	require.Equal(t, "https://"+addr, endpoint)
	require.NotEmpty(t, endpoint, string(r.Raw))
	require.NotEmpty(t, token, string(r.Raw))
	return id, endpoint, token
}

func TestWizardEndToEnd(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)

	// image -> image: the segmentation example returns a mask PNG.
	segID, segURL, segTok := walk(t, c, "seg", "segmentation", "image")
	res, out := predict(t, hc, segURL, segTok, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, "image/png", res.Header.Get("Content-Type"))
	img, err := png.Decode(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 96, 64), img.Bounds())

	// image -> JSON: the measurements example.
	_, mURL, mTok := walk(t, c, "measure", "measurements", "json")
	res, out = predict(t, hc, mURL, mTok, samplePNG(t, 40, 30))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), string(out))
	require.NotEmpty(t, m)

	// Each endpoint has its own token.
	res, _ = predict(t, hc, segURL, mTok, samplePNG(t, 8, 8))
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	// Listing shows both as live.
	r := c.Do(http.MethodGet, "/api/v1/deployments", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"live"`)

	// The API name is taken while seg exists.
	r = c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "dup", "api_name": "seg", "input": "image", "output": "image"})
	require.Equal(t, http.StatusConflict, r.Status, string(r.Raw))

	// Delete tears everything down and frees the name.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+segID, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	_, err = hc.Get(segURL + "/healthz")
	require.Error(t, err, "the deleted endpoint must not answer")
	_, err = os.Stat(filepath.Join(p.UploadDir(), "..", "servers", segID))
	require.True(t, os.IsNotExist(err), "the server folder is removed")
	r = c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "again", "api_name": "seg", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
}

var _ = platform.Options{}
