package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image"
	"image/color"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// requireONNXEnv makes a missing ONNX Runtime (or model) fail the ONNX server
// tests instead of skipping them; scripts/test.sh (CI) sets it.
const requireONNXEnv = "ALGOCLOUD_REQUIRE_ONNX"

// Pretrained PaddleOCR models installed by scripts/onnxruntime.sh.
const (
	ppocrDetModel = "ch_PP-OCRv4_det_infer.onnx"          // [N,3,H,W] → [N,1,H,W] text probability map
	ppocrClsModel = "ch_ppocr_mobile_v2.0_cls_infer.onnx" // [N,3,48,192] → [N,2] softmax (0°, 180°)
)

// onnxModel returns the path of a model under third_party/onnxruntime/models
// once ONNX Runtime loads. Without the library or the model the test skips
// (saying how to install them), or fails when ALGOCLOUD_REQUIRE_ONNX is set.
func onnxModel(t testing.TB, name string) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if !strings.Contains(msg, "scripts/onnxruntime.sh") {
			msg += "; run scripts/onnxruntime.sh"
		}
		if os.Getenv(requireONNXEnv) != "" {
			t.Fatalf("%s (%s is set, so this fails instead of skipping)", msg, requireONNXEnv)
		}
		t.Skipf("skipping an ONNX server test: %s (set %s=1 to fail instead)", msg, requireONNXEnv)
	}
	lib, err := onnxrt.LibraryPath("")
	if err != nil {
		missing("%v", err)
	}
	if err := onnxrt.Init(lib); err != nil {
		missing("%v", err)
	}
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		p := filepath.Join(dir, "third_party/onnxruntime/models", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			missing("model %s not found under third_party/onnxruntime/models", name)
		}
		dir = filepath.Dir(dir)
	}
}

// onnxDir makes an ONNX algorithm folder: the model (linked) and files.
func onnxDir(t testing.TB, model string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if model != "" {
		require.NoError(t, os.Symlink(model, filepath.Join(dir, "model.onnx")))
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

// detConfig serves PP-OCRv4's detector as PaddleOCR preprocesses (BGR,
// ImageNet mean/std, letterbox into 320×320) with its probability map
// restored to the request image's size.
const detConfig = `{"model": "model.onnx",
	"preprocess": {"width": 320, "height": 320, "resize": "letterbox", "channel_order": "BGR",
		"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
	"postprocess": {"kind": "image", "restore_size": true}}`

// clsConfig serves PP-OCR's direction classifier with labels 0 and 180.
const clsConfig = `{"model": "model.onnx",
	"preprocess": {"width": 192, "height": 48, "resize": "letterbox", "anchor": "topleft", "pad_value": 127.5,
		"channel_order": "BGR", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
	"postprocess": {"kind": "json", "top_k": 1, "labels": "labels.txt"}%s}`

func onnxServer(t testing.TB, dir string, out spec.IOType, mutate func(*Config)) *testServer {
	t.Helper()
	return startServer(t, dir, spec.Image, out, func(c *Config) {
		c.Environment = spec.EnvONNX
		c.Threads = 1
		if mutate != nil {
			mutate(c)
		}
	})
}

// glyphs are 5×7 capital letters (bit 4 = left column), enough to draw text
// the pretrained OCR models recognise as text.
var glyphs = map[rune][7]uint8{
	'D': {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x1B, 0x11},
}

// textPNG draws text in black on white (each font pixel scale×scale) with a
// margin of m pixels, upside down when flip; it returns the PNG and the
// text's box.
func textPNG(t testing.TB, text string, scale, m int, flip bool) ([]byte, image.Rectangle) {
	w, h := 2*m+len(text)*6*scale-scale, 2*m+7*scale
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for k, r := range text {
		for row, bits := range glyphs[r] {
			for col := range 5 {
				if bits&(0x10>>col) == 0 {
					continue
				}
				for dy := range scale {
					for dx := range scale {
						x, y := m+(k*6+col)*scale+dx, m+row*scale+dy
						if flip {
							x, y = w-1-x, h-1-y
						}
						img.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255})
					}
				}
			}
		}
	}
	return pngBytes(t, img), image.Rect(m, m, w-m, h-m)
}

// meanIn is the mean gray level of img inside r.
func meanIn(img image.Image, r image.Rectangle) float64 {
	s, n := 0.0, 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			g := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
			s += float64(g.Y)
			n++
		}
	}
	return s / float64(max(n, 1))
}

func (ts *testServer) get(t *testing.T, path string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return ts.do(t, req)
}

// The PP-OCRv4 detector served image → image: /predict answers the text
// probability map as a grayscale PNG of the request's size (high on the
// letters, low on the margin); concurrent requests of different sizes are
// batched together (the batch_size histogram records batches over 1);
// /v1/test-input is a generated 320×320 image; bad images are 4xx.
func TestONNXDetectorImageToImage(t *testing.T) {
	model := onnxModel(t, ppocrDetModel)
	ts := onnxServer(t, onnxDir(t, model, map[string]string{onnxrt.ConfigFile: detConfig}), spec.Image, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueDelay = 8, Duration(100*time.Millisecond)
	})
	ts.waitReady(t)

	body, box := textPNG(t, "HELLO WORLD", 3, 21, false)
	status, ctype, out := ts.post(t, "/predict", "image/png", body)
	require.Equal(t, http.StatusOK, status, string(out))
	require.Equal(t, "image/png", ctype)
	mask := decodePNG(t, out)
	in := decodePNG(t, body)
	require.Equal(t, in.Bounds(), mask.Bounds(), "restore_size: the map has the request's size")
	_, gray := mask.(*image.Gray)
	require.True(t, gray, "a 1-channel output is a grayscale PNG, got %T", mask)
	onText, margin := meanIn(mask, box), meanIn(mask, image.Rect(0, 0, in.Bounds().Dx(), box.Min.Y/2))
	t.Logf("text probability %.0f/255 on the letters, %.0f/255 above them", onText, margin)
	require.Greater(t, onText, 60.0)
	require.Less(t, margin, 20.0)

	// 16 concurrent requests of four sizes: preprocessing resizes each to
	// 320×320, so they share batches; each answer keeps its own size.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, h := 200+40*(i%4), 120+30*(i%4)
			img := pngBytes(t, testImage(w, h, 0))
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(img))
			req.Header.Set("Authorization", "Bearer "+testToken)
			res, err := ts.Client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			got, _, err := image.DecodeConfig(res.Body)
			switch {
			case res.StatusCode != http.StatusOK:
				errs <- fmt.Errorf("request %d: status %d", i, res.StatusCode)
			case err != nil:
				errs <- fmt.Errorf("request %d: %v", i, err)
			case got.Width != w || got.Height != h:
				errs <- fmt.Errorf("request %d: %dx%d image answered with %dx%d", i, w, h, got.Width, got.Height)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	batches := metricValue(t, ts, "algocloud_inference_batch_size_count")
	singles := metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="1"}`)
	images := metricValue(t, ts, "algocloud_inference_batch_size_sum")
	t.Logf("17 predictions in %.0f batches (%.0f of one image)", batches, singles)
	require.Equal(t, 17.0, images, "every prediction went through the batcher")
	require.Less(t, singles, batches, "some batch held more than one image")
	require.Less(t, batches, 17.0)

	// Test Code's input: a generated image of the model's input size.
	status, ctype, sample := ts.get(t, "/v1/test-input")
	require.Equal(t, http.StatusOK, status, string(sample))
	require.Equal(t, "image/png", ctype)
	require.Equal(t, image.Rect(0, 0, 320, 320), decodePNG(t, sample).Bounds())
	status, _, out = ts.post(t, "/predict", ctype, sample)
	require.Equal(t, http.StatusOK, status, string(out))

	// Bad input is the client's error, named.
	status, _, out = ts.post(t, "/predict", "image/png", []byte("not an image at all"))
	requireError(t, http.StatusBadRequest, CodeNotAnImage, status, out)
	status, _, out = ts.post(t, "/predict", "image/png", body[:len(body)/2])
	requireError(t, http.StatusBadRequest, CodeCorruptImage, status, out)
	status, _, out = ts.post(t, "/predict", "text/plain", body)
	requireError(t, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, status, out)
	status, _, out = ts.post(t, "/predict", "application/json", []byte(`{"image_base64": 3}`))
	requireError(t, http.StatusBadRequest, CodeInvalidJSON, status, out)
}

// The PP-OCR direction classifier served image → JSON with labels: upright
// text lines are "0", upside-down ones "180"; /v1/test-input is the file
// aai_onnx.json's testing_input names, and Test Code (SelfTest) passes.
func TestONNXClassifierImageToJSON(t *testing.T) {
	model := onnxModel(t, ppocrClsModel)
	sample, _ := textPNG(t, "HELLO", 2, 2, false)
	dir := onnxDir(t, model, map[string]string{
		onnxrt.ConfigFile: fmt.Sprintf(clsConfig, `, "testing_input": "samples/line.png"`),
		"labels.txt":      "0\n180\n",
	})
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "samples"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "samples/line.png"), sample, 0o644))
	ts := onnxServer(t, dir, spec.JSON, func(c *Config) { c.Threads, c.MaxBatchSize, c.MaxQueueDelay = 2, 4, Duration(20*time.Millisecond) })
	ts.waitReady(t)

	type top struct {
		Index int     `json:"index"`
		Label string  `json:"label"`
		Score float64 `json:"score"`
	}
	for _, text := range []string{"HELLO WORLD", "WORLD", "HELLO"} {
		for _, flip := range []bool{false, true} {
			line, _ := textPNG(t, text, 2, 2, flip)
			status, ctype, out := ts.post(t, "/predict", "image/png", line)
			require.Equal(t, http.StatusOK, status, string(out))
			require.Equal(t, "application/json", ctype)
			var got map[string][]top
			require.NoError(t, json.Unmarshal(out, &got), string(out))
			require.Len(t, got, 1, string(out))
			want := map[bool]string{false: "0", true: "180"}[flip]
			for _, best := range got {
				require.Len(t, best, 1, string(out))
				require.Equal(t, want, best[0].Label, "%q flipped=%v: %s", text, flip, out)
				require.Greater(t, best[0].Score, 0.9, string(out))
			}
		}
	}

	status, ctype, in := ts.get(t, "/v1/test-input")
	require.Equal(t, http.StatusOK, status, string(in))
	require.Equal(t, "image/png", ctype)
	require.Equal(t, sample, in, "the testing_input file, as it is")

	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	require.Equal(t, "application/json", res.ContentType)
	require.Contains(t, res.Summary, `"label":"0"`)
}

// A broken aai_onnx.json, a missing model, a testing_input that is not an
// image or a postprocess that does not match the output type: /readyz (and
// /predict) answer init_failed with the reason, naming the field.
func TestONNXLoadErrors(t *testing.T) {
	model := onnxModel(t, ppocrClsModel)
	for _, tc := range []struct {
		name  string
		files map[string]string
		model bool
		out   spec.IOType
		want  string
	}{
		{"typo", map[string]string{onnxrt.ConfigFile: `{"model": "model.onnx", "postprocess": {"kind": "json", "topk": 1}}`}, true, spec.JSON, `unknown field "topk"`},
		{"not JSON", map[string]string{onnxrt.ConfigFile: `{"model": `}, true, spec.JSON, "parse"},
		{"no config", map[string]string{"aai_main.py": "class X: pass\n"}, true, spec.JSON, "no aai_onnx.json"},
		{"no model", map[string]string{onnxrt.ConfigFile: `{"model": "model.onnx", "postprocess": {"kind": "json"}}`}, false, spec.JSON, "model.onnx"},
		{"kind vs output", map[string]string{onnxrt.ConfigFile: `{"model": "model.onnx", "postprocess": {"kind": "json"}}`}, true, spec.Image, `set "kind": "image"`},
		{"labels", map[string]string{onnxrt.ConfigFile: fmt.Sprintf(clsConfig, ""), "labels.txt": "0\n90\n180\n"}, true, spec.JSON, "labels file labels.txt has 3 lines"},
		{"testing_input", map[string]string{onnxrt.ConfigFile: fmt.Sprintf(clsConfig, `, "testing_input": "labels.txt"`), "labels.txt": "0\n180\n"}, true, spec.JSON, "testing_input labels.txt is not a usable image"},
		{"testing_input outside", map[string]string{onnxrt.ConfigFile: `{"model": "model.onnx", "postprocess": {"kind": "json"}, "testing_input": "/etc/passwd"}`}, true, spec.JSON, "testing_input \"/etc/passwd\" must be a path inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := model
			if !tc.model {
				m = ""
			}
			ts := onnxServer(t, onnxDir(t, m, tc.files), tc.out, nil)
			var status int
			var body []byte
			require.Eventually(t, func() bool {
				status, _, body = ts.get(t, "/readyz")
				return status != http.StatusServiceUnavailable || !strings.Contains(string(body), CodeNotReady)
			}, time.Minute, 20*time.Millisecond)
			e := requireError(t, http.StatusServiceUnavailable, CodeInitFailed, status, body)
			require.Contains(t, e.Message, tc.want)
			require.NotContains(t, e.Message, ts.srv.cfg.CodeDir, "paths relative to the code folder")
			status, _, body = ts.post(t, "/predict", "image/png", pngBytes(t, testImage(8, 8, 0)))
			requireError(t, http.StatusServiceUnavailable, CodeInitFailed, status, body)
		})
	}
}

// Environment onnx takes images only: other API types are refused by the
// server's configuration check, naming the environment.
func TestONNXConfigRefusesOtherTypes(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []spec.Pair{{In: spec.Image, Out: spec.Numpy}, {In: spec.JSON, Out: spec.JSON}, {In: spec.Numpy, Out: spec.Image}} {
		_, err := NewServer(Config{TokenSHA256: tokenSHA(testToken), CodeDir: dir, Environment: spec.EnvONNX, Input: p.In, Output: p.Out}, nil)
		require.ErrorContains(t, err, "environment onnx serves image->image and image->json, not "+p.String())
	}
	_, err := NewServer(Config{TokenSHA256: tokenSHA(testToken), CodeDir: dir, Environment: "ruby", Input: spec.Image, Output: spec.Image}, nil)
	require.ErrorContains(t, err, `environment "ruby" is not served`)
}

// A full queue answers 429 with Retry-After, as for Python workers.
func TestONNXQueueBound(t *testing.T) {
	model := onnxModel(t, ppocrDetModel)
	ts := onnxServer(t, onnxDir(t, model, map[string]string{onnxrt.ConfigFile: detConfig}), spec.Image, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueSize = 1, 1
	})
	ts.waitReady(t)
	img := pngBytes(t, testImage(400, 300, 0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := ""
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(img))
			req.Header.Set("Authorization", "Bearer "+testToken)
			res, err := ts.Client.Do(req)
			if err != nil {
				return
			}
			res.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			codes[res.StatusCode]++
			if res.StatusCode == http.StatusTooManyRequests {
				retryAfter = res.Header.Get("Retry-After")
			}
		}()
	}
	wg.Wait()
	t.Logf("status codes: %v", codes)
	require.Equal(t, 24, codes[http.StatusOK]+codes[http.StatusTooManyRequests], "%v", codes)
	require.Positive(t, codes[http.StatusOK])
	require.Positive(t, codes[http.StatusTooManyRequests], "24 requests at once against a limit of 2 in progress")
	require.NotEmpty(t, retryAfter)
}
