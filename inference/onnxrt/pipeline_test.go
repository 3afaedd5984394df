package onnxrt

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// algoDir writes an algorithm folder: files by name (models as bytes).
func algoDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	return dir
}

func TestLoadConfig(t *testing.T) {
	dir := algoDir(t, map[string][]byte{ConfigFile: []byte(`{
		"model": "models/unet.onnx",
		"preprocess": {"width": 64, "height": 48, "resize": "letterbox", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
		"postprocess": {"kind": "image", "activation": "sigmoid", "restore_size": true},
		"max_batch_size": 4}`)})
	c, err := LoadConfig(dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "models/unet.onnx"), c.ModelPath())
	require.Equal(t, Preprocess{Width: 64, Height: 48, Resize: "letterbox", Anchor: "center", Layout: "NCHW", Scale: 1.0 / 255,
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}, ChannelOrder: "RGB"}, c.Preprocess)
	require.Equal(t, Postprocess{Kind: "image", Layout: "NCHW", ChannelOrder: "RGB", Activation: "sigmoid", Scaling: "unit", RestoreSize: true}, c.Postprocess)
	require.Equal(t, 4, c.MaxBatchSize)
	require.Empty(t, c.TestingInputPath())
	c.TestingInput = "samples/a.png"
	require.Equal(t, filepath.Join(dir, "samples/a.png"), c.TestingInputPath())

	bad := map[string]string{
		``: "no aai_onnx.json in",
		`{"model": "m.onnx", "preprocess": {"widht": 3}}`:                                       `unknown field "widht"`,
		`{"preprocess": {}}`:                                                                    "model (the .onnx file) is required",
		`{"model": "../m.onnx", "postprocess": {"kind": "json"}}`:                               "inside the algorithm's folder",
		`{"model": "m.onnx", "postprocess": {"kind": "json", "labels": "/etc/x"}}`:              "inside the algorithm's folder",
		`{"model": "m.onnx", "postprocess": {"kind": "json"}, "testing_input": "../x.png"}`:     "testing_input \"../x.png\" must be a path inside",
		`{"model": "m.onnx", "postprocess": {"kind": "text"}}`:                                  `kind "text"`,
		`{"model": "m.onnx", "preprocess": {"layout": "HWC"}, "postprocess": {"kind": "json"}}`: `layout "HWC"`,
		`{"model": "m.onnx", "postprocess": {"kind": "json"}, "max_batch_size": -1}`:            "max_batch_size -1",
	}
	for text, want := range bad {
		files := map[string][]byte{}
		if text != "" {
			files[ConfigFile] = []byte(text)
		}
		_, err := LoadConfig(algoDir(t, files))
		require.ErrorContains(t, err, want, text)
	}
}

func segConfig(extra string) []byte {
	return []byte(`{"model": "unet.onnx", "postprocess": {"kind": "image", "output": "mask", "restore_size": true}` + extra + `}`)
}

func TestPipelineImageToImage(t *testing.T) {
	requireORT(t)
	dir := algoDir(t, map[string][]byte{"unet.onnx": segNet(-1, -1, 8),
		ConfigFile: []byte(`{"model": "unet.onnx",
			"preprocess": {"width": 64, "height": 48, "resize": "letterbox", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
			"postprocess": {"kind": "image", "output": "mask", "restore_size": true},
			"max_batch_size": 2}`)})
	p, err := Load(dir, Options{IntraOpThreads: 2})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, 2, p.MaxBatchSize())
	text, _ := textImage("HELLO", 2)
	imgs := []Image{gradient(100, 50), gradient(30, 60), {Width: 3, Height: 3, Channels: 3, Pix: []uint8{1}}, text}
	res, err := p.Predict(imgs)
	require.NoError(t, err)
	require.Len(t, res, 4)
	require.ErrorContains(t, res[2].Err, "has 1 bytes", "a bad image fails alone")
	for _, i := range []int{0, 1, 3} {
		require.NoError(t, res[i].Err)
		require.Equal(t, imgs[i].Width, res[i].Image.Width, "restore_size gives the request's size")
		require.Equal(t, imgs[i].Height, res[i].Image.Height)
		require.Equal(t, 1, res[i].Image.Channels)
		// The same image alone gives the same answer (within a rounding step).
		one, err := p.Predict(imgs[i : i+1])
		require.NoError(t, err)
		for k := range one[0].Image.Pix {
			require.InDelta(t, one[0].Image.Pix[k], res[i].Image.Pix[k], 1)
		}
	}
}

func TestPipelineKeepsSizesOfDynamicModel(t *testing.T) {
	requireORT(t)
	dir := algoDir(t, map[string][]byte{"unet.onnx": segNet(-1, -1, 4), ConfigFile: segConfig("")})
	p, err := Load(dir, Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, DefaultMaxBatchSize, p.MaxBatchSize())
	res, err := p.Predict([]Image{gradient(32, 16), gradient(16, 16), gradient(32, 16)})
	require.NoError(t, err)
	for i, w := range []int{32, 16, 32} {
		require.NoError(t, res[i].Err)
		require.Equal(t, w, res[i].Image.Width, "images grouped by size, each run at its own")
	}
	require.Equal(t, res[0].Image.Pix, res[2].Image.Pix)
}

func TestPipelineImageToJSON(t *testing.T) {
	requireORT(t)
	files := map[string][]byte{"cls.onnx": classifier(true, -1), "labels.txt": []byte("cat\ndog\neel\nfox\ngnu\n"),
		ConfigFile: []byte(`{"model": "cls.onnx", "preprocess": {"layout": "NHWC"},
			"postprocess": {"kind": "json", "outputs": ["logits"], "softmax": true, "top_k": 3, "labels": "labels.txt"}}`)}
	p, err := Load(algoDir(t, files), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, 32, p.Config().Preprocess.Width, "input size taken from the model")
	res, err := p.Predict([]Image{gradient(64, 64), gradient(20, 40)})
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
		var got map[string][]struct {
			Index int     `json:"index"`
			Label string  `json:"label"`
			Score float64 `json:"score"`
		}
		require.NoError(t, json.Unmarshal(r.JSON, &got), string(r.JSON))
		top := got["logits"]
		require.Len(t, top, 3)
		require.Equal(t, []string{"cat", "dog", "eel", "fox", "gnu"}[top[0].Index], top[0].Label)
		require.GreaterOrEqual(t, top[0].Score, top[1].Score)
		require.Greater(t, top[0].Score, 0.0)
	}

	// A model whose batch is fixed at 2 serves 3 images (padded to 4) with the
	// same answers.
	files["cls.onnx"] = classifier(true, 2)
	fixed, err := Load(algoDir(t, files), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer fixed.Close()
	require.Equal(t, 2, fixed.MaxBatchSize())
	three, err := fixed.Predict([]Image{gradient(64, 64), gradient(20, 40), gradient(64, 64)})
	require.NoError(t, err)
	for k, want := range []int{0, 1, 0} {
		var w, g any
		require.NoError(t, json.Unmarshal(res[want].JSON, &w))
		require.NoError(t, json.Unmarshal(three[k].JSON, &g))
		requireJSONClose(t, w, g, string(three[k].JSON))
	}

	files["labels.txt"] = []byte("cat\ndog\n")
	_, err = Load(algoDir(t, files), Options{})
	require.ErrorContains(t, err, "has 5 classes, labels file labels.txt has 2 lines")
}

func TestPipelineChecksConfigAgainstModel(t *testing.T) {
	requireORT(t)
	cases := map[string]struct {
		model []byte
		cfg   string
	}{
		"preprocess size 64x64, but cls.onnx input":                     {classifier(false, -1), `{"model": "cls.onnx", "preprocess": {"width": 64, "height": 64}, "postprocess": {"kind": "json"}}`},
		"is not an NHWC image with 3 channels":                          {classifier(false, -1), `{"model": "cls.onnx", "preprocess": {"layout": "NHWC"}, "postprocess": {"kind": "json"}}`},
		`postprocess names output "probs"; cls.onnx has [logits class]`: {classifier(false, -1), `{"model": "cls.onnx", "postprocess": {"kind": "json", "outputs": ["probs"]}}`},
		"output logits float32[-1 5] is not a 1- or 3-channel":          {classifier(false, -1), `{"model": "cls.onnx", "postprocess": {"kind": "image"}}`},
		"cls.onnx is not a model ONNX Runtime can load":                 {[]byte("garbage"), `{"model": "cls.onnx", "postprocess": {"kind": "json"}}`},
	}
	for want, tc := range cases {
		_, err := Load(algoDir(t, map[string][]byte{"cls.onnx": tc.model, ConfigFile: []byte(tc.cfg)}), Options{})
		require.ErrorContains(t, err, want)
	}
}

// The pretrained PP-OCRv4 text detector, configured as PaddleOCR preprocesses
// (BGR, ImageNet mean and std), finds the text in a drawn image: its probability
// map, restored onto the image, is high on the letters and low on the margin.
func TestPretrainedTextDetector(t *testing.T) {
	model := realModel(t, ppocrDet)
	dir := algoDir(t, map[string][]byte{ConfigFile: []byte(`{"model": "det.onnx",
		"preprocess": {"width": 320, "height": 320, "resize": "letterbox", "pad_value": 0, "channel_order": "BGR",
			"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
		"postprocess": {"kind": "image", "restore_size": true}}`)})
	require.NoError(t, os.Symlink(model, filepath.Join(dir, "det.onnx")))
	p, err := Load(dir, Options{IntraOpThreads: 2})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, TensorInfo{Name: "x", Type: "float32", Shape: []int64{-1, 3, -1, -1}}, p.Model().Input())

	img, box := textImage("HELLO WORLD", 3)
	res, err := p.Predict([]Image{img})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	mask := res[0].Image
	require.Equal(t, img.Width, mask.Width)
	inside := boxMean(*mask, box[0], box[1], box[2], box[3])
	margin := boxMean(*mask, 0, 0, img.Width, box[1]/2)
	t.Logf("text probability: %.0f/255 on the text, %.0f/255 above it", inside, margin)
	if dir := os.Getenv("ONNXRT_TEST_OUT"); dir != "" { // look at it: ONNXRT_TEST_OUT=/tmp/x
		writePNG(t, filepath.Join(dir, "det-input.png"), img)
		writePNG(t, filepath.Join(dir, "det-mask.png"), *mask)
	}
	require.Greater(t, inside, 60.0)
	require.Less(t, margin, 20.0)
}

// The pretrained PP-OCR direction classifier tells upright text from text
// turned 180°, with its labels from a labels file.
func TestPretrainedDirectionClassifier(t *testing.T) {
	model := realModel(t, ppocrCls)
	dir := algoDir(t, map[string][]byte{"labels.txt": []byte("0\n180\n"), ConfigFile: []byte(`{"model": "cls.onnx",
		"preprocess": {"width": 192, "height": 48, "resize": "letterbox", "anchor": "topleft", "pad_value": 127.5, "channel_order": "BGR",
			"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
		"postprocess": {"kind": "json", "top_k": 1, "labels": "labels.txt"}}`)})
	require.NoError(t, os.Symlink(model, filepath.Join(dir, "cls.onnx")))
	p, err := Load(dir, Options{IntraOpThreads: 2})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, []int64{-1, 3, -1, -1}, p.Model().Input().Shape)

	// The classifier reads text lines cropped tightly (as the detector's boxes are).
	var batch []Image
	for _, text := range []string{"HELLO WORLD", "THE CAT", "LEARN"} {
		im, box := textImage(text, 2)
		line := crop(im, box[0]-2, box[1]-2, box[2]+2, box[3]+2)
		batch = append(batch, line, rotate180(line))
	}
	res, err := p.Predict(batch)
	require.NoError(t, err)
	for i := range batch {
		want := []string{"0", "180"}[i%2]
		require.NoError(t, res[i].Err)
		var got map[string][]struct {
			Label string  `json:"label"`
			Score float64 `json:"score"`
		}
		require.NoError(t, json.Unmarshal(res[i].JSON, &got))
		require.Len(t, got, 1)
		for _, top := range got {
			require.Equal(t, want, top[0].Label, string(res[i].JSON))
			require.Greater(t, top[0].Score, 0.9, string(res[i].JSON))
		}
	}
}

func writePNG(t *testing.T, path string, im Image) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, png.Encode(f, im.ToImage()))
}
