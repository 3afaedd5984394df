package templates

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// The aai_onnx.json skeleton is a configuration onnxrt accepts (unknown
// fields are errors there), for image->image and image->json only.
func TestONNXSkeleton(t *testing.T) {
	for _, tc := range []struct {
		out  spec.IOType
		kind string
	}{{spec.Image, "image"}, {spec.JSON, "json"}} {
		text, err := ONNXSkeleton(spec.Image, tc.out, `models/my "net".onnx`)
		require.NoError(t, err)
		require.True(t, json.Valid([]byte(text)), text)
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, onnxrt.ConfigFile), []byte(text), 0o644))
		c, err := onnxrt.LoadConfig(dir)
		require.NoError(t, err, text)
		require.Equal(t, `models/my "net".onnx`, c.Model)
		require.Equal(t, tc.kind, c.Postprocess.Kind)
		require.Equal(t, 8, c.MaxBatchSize)
	}
	_, err := ONNXSkeleton(spec.Image, spec.Numpy, "m.onnx")
	require.ErrorIs(t, err, ErrUnsupportedPair)
	_, err = ONNXSkeleton(spec.JSON, spec.JSON, "m.onnx")
	require.ErrorIs(t, err, ErrUnsupportedPair)
}
