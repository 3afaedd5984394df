package integration

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
)

// onnxDetector is PP-OCRv4's text detector, installed by scripts/onnxruntime.sh.
const onnxDetector = "ch_PP-OCRv4_det_infer.onnx"

// requireONNX returns the detector's path once ONNX Runtime is found; without
// it the test skips (or fails when ALGOCLOUD_REQUIRE_ONNX is set, as in CI).
func requireONNX(t *testing.T) string {
	t.Helper()
	model := filepath.Join(repoRoot(t), "third_party/onnxruntime/models", onnxDetector)
	_, libErr := onnxrt.LibraryPath("")
	_, modelErr := os.Stat(model)
	if libErr != nil || modelErr != nil {
		msg := "ONNX Runtime or the test model is missing (run scripts/onnxruntime.sh)"
		if os.Getenv("ALGOCLOUD_REQUIRE_ONNX") != "" {
			t.Fatalf("%s: %v %v", msg, libErr, modelErr)
		}
		t.Skipf("%s; set ALGOCLOUD_REQUIRE_ONNX=1 to fail instead: %v %v", msg, libErr, modelErr)
	}
	return model
}

// stripes is a w×h image of dark text-like strokes on white.
func stripes(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := uint8(255)
			if y > h/3 && y < h/2 && x > w/8 && x < w*7/8 && (x/6)%2 == 0 {
				c = 0
			}
			img.SetNRGBA(x, y, color.NRGBA{c, c, c, 255})
		}
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// zipFiles writes a .zip holding files (name → content) and returns its path.
func zipFiles(t *testing.T, files map[string][]byte) string {
	p := filepath.Join(t.TempDir(), "code.zip")
	f, err := os.Create(p)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for name, b := range files {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return p
}

// TestWizardONNX walks the wizard with environment onnx on `algocloud dev`'s
// pieces: a Git repository holding only a model gets the generated
// aai_onnx.json, which passes Test Code; then an upload (a .zip with the
// author's aai_onnx.json and sample image, plus the model as an extra file)
// is tested, completed and served: the live HTTPS endpoint answers a text
// probability map of the request's size.
func TestWizardONNX(t *testing.T) {
	model := requireONNX(t)
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)

	// An ONNX model serves image->image and image->json only.
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "OCR", "api_name": "ocr-npy",
		"environment": "onnx", "input": "image", "output": "numpy"})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	require.Contains(t, r.Str("message"), "environment onnx serves image->image and image->json", string(r.Raw))

	r = c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Text detector", "description": "PP-OCRv4", "api_name": "ocr", "environment": "onnx",
		"input": "image", "output": "image", "threads": 1, "max_batch_size": 4, "max_queue_delay_ms": 5,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	// 1. Only the model: the generated aai_onnx.json names it, and runs.
	src := t.TempDir()
	b, err := os.ReadFile(model)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(src, "models"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "models", "det.onnx"), b, 0o644))
	r = c.Step(id, "fetch_code", map[string]any{"git_url": gitRepo(t, src), "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	code := r.Body["state"].(map[string]any)["code"].(map[string]any)
	require.Equal(t, true, code["generated_main"], string(r.Raw))
	gen, err := os.ReadFile(filepath.Join(code["dir"].(string), onnxrt.ConfigFile))
	require.NoError(t, err)
	require.Contains(t, string(gen), `"model": "models/det.onnx"`)
	for _, step := range []string{"install_requirements", "test"} {
		r = c.Step(id, step, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
	}
	test := r.Body["state"].(map[string]any)["test"].(map[string]any)
	require.Equal(t, true, test["ok"], string(r.Raw))
	require.Contains(t, test["summary"], "PNG 320x320", "the generated test image is 320x320 (dynamic input size)")

	// 2. The author's configuration and sample image in a .zip, the model as
	// an extra file.
	cfg := `{"model": "` + onnxDetector + `", "testing_input": "sample.png",
		"preprocess": {"width": 320, "height": 320, "resize": "letterbox", "channel_order": "BGR",
			"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
		"postprocess": {"kind": "image", "restore_size": true}}`
	archive := zipFiles(t, map[string][]byte{onnxrt.ConfigFile: []byte(cfg), "sample.png": stripes(t, 200, 80)})
	r = c.Upload("/api/v1/deployments/"+id+"/steps/fetch_code", map[string][]string{"archive": {archive}, "files": {model}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, step := range []string{"install_requirements", "test"} {
		r = c.Step(id, step, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
	}
	test = r.Body["state"].(map[string]any)["test"].(map[string]any)
	require.Equal(t, true, test["ok"], string(r.Raw))
	require.Contains(t, test["summary"], "PNG 200x80", "Test Code sent sample.png; the map has its size")
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")

	res, out := predict(t, hc, endpoint, token, stripes(t, 300, 120))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, "image/png", res.Header.Get("Content-Type"))
	mask, err := png.Decode(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 300, 120), mask.Bounds())

	res, out = predict(t, hc, endpoint, token, []byte("not an image"))
	require.Equal(t, http.StatusBadRequest, res.StatusCode, string(out))
	var e map[string]any
	require.NoError(t, json.Unmarshal(out, &e))
	require.Equal(t, "not_an_image", e["code"])

	// The clients listing's OpenAPI document is the endpoint's own bytes
	// (environment onnx and batching included), naming this model.
	res, err = hc.Get(strings.TrimRight(endpoint, "/") + "/openapi.json")
	require.NoError(t, err)
	served, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(served))
	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	listed := r.Body["clients"].(map[string]any)["openapi"].(map[string]any)["content"].(string)
	require.Equal(t, string(served), listed, "the clients listing's openapi.json is not the endpoint's /openapi.json")
	require.Contains(t, listed, `"example": "ocr"`)
	require.NotContains(t, listed, "otsu")
	require.Contains(t, listed, "ONNX Runtime")
}
