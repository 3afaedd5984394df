package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
)

// onnxClassifier is PaddleOCR's text direction classifier (0° or 180°),
// installed by scripts/onnxruntime.sh beside the detector.
const onnxClassifier = "ch_ppocr_mobile_v2.0_cls_infer.onnx"

// classifierConfig serves onnxClassifier as image->json, as PaddleOCR
// preprocesses it (BGR, 192x48 letterboxed at the top left, [-1, 1]), with
// its best class named by labels.txt.
const classifierConfig = `{
  "model": "models/cls.onnx",
  "testing_input": "sample.png",
  "preprocess": {"width": 192, "height": 48, "resize": "letterbox", "anchor": "topleft", "pad_value": 127.5,
    "channel_order": "BGR", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
  "postprocess": {"kind": "json", "top_k": 1, "labels": "labels.txt"},
  "max_batch_size": 4
}
`

// requireClassifier returns the direction classifier's path once ONNX
// Runtime and the models are there (requireONNX skips or fails without).
func requireClassifier(t *testing.T) string {
	t.Helper()
	model := filepath.Join(filepath.Dir(requireONNX(t)), onnxClassifier)
	if _, err := os.Stat(model); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_ONNX") != "" {
			t.Fatalf("the direction classifier is missing (run scripts/onnxruntime.sh): %v", err)
		}
		t.Skipf("the direction classifier is missing (run scripts/onnxruntime.sh): %v", err)
	}
	return model
}

// directions is the JSON the classifier deployment answers: its one output's
// best class.
type directions map[string][]struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

// requireDirection checks an answer is the classifier's best class: label 0
// or 180 (labels.txt), index matching it, a probability as the score.
func requireDirection(t *testing.T, body []byte) {
	t.Helper()
	var d directions
	require.NoError(t, json.Unmarshal(body, &d), string(body))
	require.Len(t, d, 1, "one output: %s", body)
	for _, top := range d {
		require.Len(t, top, 1, "top_k 1: %s", body)
		require.Contains(t, []string{"0", "180"}, top[0].Label, string(body))
		require.Equal(t, map[string]int{"0": 0, "180": 1}[top[0].Label], top[0].Index, string(body))
		require.True(t, top[0].Score >= 0.5 && top[0].Score <= 1, "the best of two probabilities: %s", body)
	}
}

// TestCLIDeployONNX runs the real binary's `deploy` on a folder holding a
// .onnx model (in a subfolder), aai_onnx.json, its labels and sample image
// and an algocloud.json with "environment": "onnx" (no aai_main.py), then
// `predict` on the live endpoint, which answers the classifier's JSON.
func TestCLIDeployONNX(t *testing.T) {
	model := requireClassifier(t)
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	tok := devToken(t, p)
	bin := algocloudBinary(t)

	dir := t.TempDir()
	b, err := os.ReadFile(model)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "models"), 0o755))
	for name, data := range map[string][]byte{
		"models/cls.onnx":  b,
		onnxrt.ConfigFile:  []byte(classifierConfig),
		"labels.txt":       []byte("0\n180\n"),
		"sample.png":       stripes(t, 192, 48),
		"algocloud.json":   []byte(`{"name": "Text direction", "api_name": "textdir-cli", "environment": "onnx", "input": "image", "output": "json", "threads": 1}`),
		"notes/README.txt": []byte("not part of the model\n"),
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}

	env := append(os.Environ(), "ALGOCLOUD_TOKEN="+tok)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	out, logs, err := run("deploy", "--api", p.APIURL, dir)
	require.NoError(t, err, "%s\n%s", out, logs)
	require.NotContains(t, logs, "aai_main.py", "an ONNX folder needs no aai_main.py")
	require.Contains(t, logs, "==> test")
	endpoint := regexp.MustCompile(`endpoint\s+(https://\S+)`).FindStringSubmatch(out)
	token := regexp.MustCompile(`token\s+(ep_\S+)`).FindStringSubmatch(out)
	require.NotNil(t, endpoint, out)
	require.NotNil(t, token, out)

	// Test Code sent sample.png and the classifier answered.
	c := newClient(t, p, tok)
	r := c.Do("GET", "/api/v1/deployments", nil)
	require.Equal(t, 200, r.Status, string(r.Raw))
	var id string
	for _, d := range r.Body["deployments"].([]any) {
		if m := d.(map[string]any); m["api_name"] == "textdir-cli" {
			id = m["id"].(string)
		}
	}
	require.NotEmpty(t, id, string(r.Raw))
	r = c.Do("GET", "/api/v1/deployments/"+id, nil)
	test := r.Body["state"].(map[string]any)["test"].(map[string]any)
	require.Equal(t, true, test["ok"], string(r.Raw))
	require.Contains(t, test["input_summary"], "192x48", "Test Code sent sample.png: %s", r.Raw)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, p.CA.RootPEM(), 0o644))
	in := filepath.Join(t.TempDir(), "line.png")
	require.NoError(t, os.WriteFile(in, stripes(t, 300, 60), 0o644))
	out, logs, err = run("predict", "--endpoint", endpoint[1], "--token", token[1], "--ca", ca, in)
	require.NoError(t, err, "%s\n%s", out, logs)
	requireDirection(t, []byte(out))

	// A second deploy of the same folder reuses the deployment.
	out, logs, err = run("deploy", "--api", p.APIURL, dir)
	require.NoError(t, err, "%s\n%s", out, logs)
	require.Contains(t, logs, "Reusing deployment "+id)
	require.Contains(t, out, "token     unchanged")
}
