package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// TestSkeletonONNX: ?environment=onnx serves the aai_onnx.json fetch_code
// writes (templates.ONNXSkeleton) naming ?model, for the two pairs onnx serves.
func TestSkeletonONNX(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/api/v1/skeleton?environment=onnx&input=image&output=json&model=models/cls.onnx", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Header().Get("Content-Disposition"), "aai_onnx.json")
	want, err := templates.ONNXSkeleton(spec.Image, spec.JSON, "models/cls.onnx")
	require.NoError(t, err)
	require.Equal(t, want, w.Body.String(), "the same file fetch_code writes")
	var cfg struct {
		Model       string         `json:"model"`
		Postprocess map[string]any `json:"postprocess"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cfg))
	require.Equal(t, "models/cls.onnx", cfg.Model)
	require.Equal(t, "json", cfg.Postprocess["kind"])

	// Without ?model it names model.onnx, as fetch_code does for a folder
	// with no model; image->image postprocesses to an image.
	w = e.do(http.MethodGet, "/api/v1/skeleton?environment=onnx&input=image&output=image", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &cfg))
	require.Equal(t, "model.onnx", cfg.Model)
	require.Equal(t, "image", cfg.Postprocess["kind"])

	// environment=python is the default's aai_main.py.
	w = e.do(http.MethodGet, "/api/v1/skeleton?environment=python&input=image&output=image", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "class AlgoClass")

	m := requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?environment=onnx&input=image&output=numpy", "tokA", nil), http.StatusBadRequest, "unsupported_type")
	require.Contains(t, m["message"], "image->image and image->json")
	m = requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?environment=tensorflow&input=image&output=image", "tokA", nil), http.StatusBadRequest, "invalid_query")
	require.Equal(t, []string{"environment"}, fieldNames(m))
	for _, bad := range []string{"../x.onnx", "/abs.onnx", "a/./b.onnx", "model.pt", ".hidden/m.onnx", `a\b.onnx`} {
		m = requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?environment=onnx&input=image&output=image&model="+url.QueryEscape(bad), "tokA", nil), http.StatusBadRequest, "invalid_query")
		require.Equal(t, []string{"model"}, fieldNames(m), bad)
	}
	m = requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?input=image&output=image&model=m.onnx", "tokA", nil), http.StatusBadRequest, "invalid_query")
	require.Equal(t, []string{"model"}, fieldNames(m), "model is for environment onnx")
}
