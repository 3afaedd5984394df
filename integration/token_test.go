package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/workflows"
)

// TestTokenRotationIsImmediate: a live endpoint (the real algocloud-infer
// with Python workers, local provider) refuses its old token as soon as the
// REST API answered the rotation, and accepts the new one, in the same
// process (no restart) and still live. A stopped deployment's rotation
// takes effect when it starts. On the way: /metrics needs the token, and
// the old token sent with a 788 KB image by Python's urllib reads its 401
// (the server discards the body instead of resetting the connection).
func TestTokenRotationIsImmediate(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, endpoint, first := walk(t, c, "seg", "segmentation", "image")
	hc := endpointClient(t, p)
	small := samplePNG(t, 32, 24)
	status := func(token string) int {
		res, out := predict(t, hc, endpoint, token, small)
		require.Contains(t, []int{http.StatusOK, http.StatusUnauthorized}, res.StatusCode, string(out))
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, status(first))

	metrics := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, endpoint+"/metrics", nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, metrics(""))
	require.Equal(t, http.StatusOK, metrics(first))

	before := deploymentState(t, p, id)
	ctx := context.Background()
	procBefore, err := p.Provider.Status(ctx, before.Live.Handle)
	require.NoError(t, err)

	rotate := func() (string, resp) {
		r := c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/token", nil)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		tok := r.Str("token")
		require.True(t, strings.HasPrefix(tok, "ep_"), string(r.Raw))
		return tok, r
	}
	second, r := rotate()
	// At once: no polling, no Complete.
	require.Equal(t, http.StatusUnauthorized, status(first), "the old token is refused as soon as the rotation answered")
	require.Equal(t, http.StatusOK, status(second))
	require.Contains(t, r.Str("token_note"), "refuses the previous token")
	after := deploymentState(t, p, id)
	require.Equal(t, workflows.StatusLive, after.Status)
	require.Equal(t, before.Live.Handle.PID, after.Live.Handle.PID, "same process: no restart")
	procAfter, err := p.Provider.Status(ctx, after.Live.Handle)
	require.NoError(t, err)
	require.Equal(t, procBefore.Restarts, procAfter.Restarts)
	require.Equal(t, http.StatusOK, metrics(second))
	require.Equal(t, http.StatusUnauthorized, metrics(first))

	// The old token with a large body, by a client that sends it all before
	// reading (urllib), three times: the 401, never a reset.
	big := noisyPNG(t, 788<<10)
	dir := t.TempDir()
	bigFile, caFile := filepath.Join(dir, "big.png"), filepath.Join(dir, "root.pem")
	require.NoError(t, os.WriteFile(bigFile, big, 0o600))
	require.NoError(t, os.WriteFile(caFile, p.CA.RootPEM(), 0o600))
	out, err := exec.Command("/usr/bin/python3", "-c", `
import ssl, sys, urllib.error, urllib.request
url, ca, path, token = sys.argv[1:]
body = open(path, "rb").read()
for i in range(3):
    req = urllib.request.Request(url + "/predict", data=body, method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "image/png"})
    try:
        urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=60)
        print(200)
    except urllib.error.HTTPError as e:
        print(e.code)
`, endpoint, caFile, bigFile, first).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "401\n401\n401\n", string(out))

	// A stopped deployment stores the rotation; Start serves it.
	r = c.Step(id, "stop", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	third, r := rotate()
	require.Contains(t, r.Str("token_note"), "when it next starts")
	r = c.Step(id, "start", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, http.StatusOK, status(third))
	require.Equal(t, http.StatusUnauthorized, status(second))
	require.Equal(t, http.StatusUnauthorized, status(first))

	// The history (rotations live, stopped and draft-less) replays with the
	// current code (decoded with the platform's key, as the corpus is kept
	// decoded); with ALGOCLOUD_UPDATE_HISTORY=1 it is captured into the
	// workflows package's replay corpus.
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(decodedHistory(t, p, fetchHistory(t, p.Client, workflows.WorkflowID(id))))
	require.NoError(t, err)
	require.Contains(t, string(js), workflows.UpdateRotateToken)
	if os.Getenv("ALGOCLOUD_UPDATE_HISTORY") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join(repoRoot(t), "workflows", "testdata", "histories", "rotate-token-update.json"), js, 0o644))
	}
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Deployment)
	h, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
}

// noisyPNG is a PNG of random pixels (incompressible) of at least size bytes.
func noisyPNG(t *testing.T, size int) []byte {
	side := 16
	for side*side*4 < size {
		side++
	}
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	_, _ = rand.Read(img.Pix)
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	require.GreaterOrEqual(t, b.Len(), size, fmt.Sprint(b.Len()))
	return b.Bytes()
}
