package inference

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// jpegCases writes JPEGs of every kind Pillow's users send into dir, each
// with the array Pillow gives for it (np.asarray(Image.open(f).convert("RGB")),
// as .npy): what the author's own run of aai_main.py sees.
var jpegCases = []string{"baseline", "progressive", "444", "gray", "cmyk"}

const jpegScript = `
import sys, numpy as np
from PIL import Image
out = sys.argv[1]
h, w = 61, 83  # odd sizes: partial MCUs and chroma edges
y, x = np.mgrid[0:h, 0:w]
rng = np.random.default_rng(7)
rgb = np.stack([(x * 3 + y) % 256, (y * 4 + 40) % 256, ((x - y) * 5) % 256], -1).astype(np.int16)
rgb = np.clip(rgb + rng.integers(-40, 40, rgb.shape), 0, 255).astype(np.uint8)
img = Image.fromarray(rgb, "RGB")
img.save(out + "/baseline.jpg", quality=85)
img.save(out + "/progressive.jpg", quality=85, progressive=True)
img.save(out + "/444.jpg", quality=90, subsampling=0)
img.convert("L").save(out + "/gray.jpg", quality=85)
img.convert("CMYK").save(out + "/cmyk.jpg", quality=85)
for name in ("baseline", "progressive", "444", "gray", "cmyk"):
    with Image.open(out + "/" + name + ".jpg") as im:
        np.save(out + "/" + name + ".npy", np.asarray(im.convert("RGB")))
`

// writeJPEGCases runs jpegScript with Debian's Python and Pillow.
func writeJPEGCases(t *testing.T) string {
	t.Helper()
	requirePython(t)
	dir := t.TempDir()
	out, err := exec.Command(testPython, "-c", jpegScript, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dir
}

// identity returns its input: image→numpy answers the exact array predict got.
const identityAlgorithm = "class AAI:\n    def predict(self, x):\n        return x\n"

// TestJPEGPixelsMatchPillow: a JPEG sent to a Python endpoint, in every form
// image input takes, reaches predict as the very pixels the author's own
// Pillow run sees. Go's decoder alone differs (fancy upsampling, IDCT
// rounding), which is what this test caught before JPEGs went to Pillow.
func TestJPEGPixelsMatchPillow(t *testing.T) {
	dir := writeJPEGCases(t)
	ts := startServer(t, codeDir(t, identityAlgorithm), spec.Image, spec.Numpy, func(c *Config) {
		c.AllowPrivateURLs = true // the image URL below is on loopback
	})
	ts.waitReady(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return b
	}
	want := func(name string) Value {
		v, err := decodeNPY(read(name + ".npy"))
		require.NoError(t, err)
		require.Equal(t, "uint8", v.DType)
		return v
	}
	same := func(t *testing.T, w Value, status int, body []byte) {
		t.Helper()
		require.Equal(t, http.StatusOK, status, "%s", body)
		got, err := decodeNPY(body)
		require.NoError(t, err)
		require.Equal(t, w.Shape, got.Shape)
		if !bytes.Equal(w.Data, got.Data) {
			diff := 0
			for i := range w.Data {
				if w.Data[i] != got.Data[i] {
					diff++
				}
			}
			t.Fatalf("%d of %d values differ from Pillow's", diff, len(w.Data))
		}
	}
	for _, name := range jpegCases {
		t.Run(name+" raw body", func(t *testing.T) {
			status, _, body := ts.post(t, "/predict", "image/jpeg", read(name+".jpg"))
			same(t, want(name), status, body)
		})
	}

	jpg, w := read("progressive.jpg"), want("progressive")
	t.Run("multipart", func(t *testing.T) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		part, err := mw.CreateFormFile("image", "photo.jpg")
		require.NoError(t, err)
		_, _ = part.Write(jpg)
		require.NoError(t, mw.Close())
		status, _, body := ts.post(t, "/predict", mw.FormDataContentType(), b.Bytes())
		same(t, w, status, body)
	})
	t.Run("base64 JSON", func(t *testing.T) {
		req, _ := json.Marshal(map[string]string{"image_base64": base64.StdEncoding.EncodeToString(jpg)})
		status, _, body := ts.post(t, "/predict", "application/json", req)
		same(t, w, status, body)
	})
	t.Run("URL", func(t *testing.T) {
		img := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "image/jpeg")
			_, _ = rw.Write(jpg)
		}))
		defer img.Close()
		req, _ := json.Marshal(map[string]string{"url": img.URL + "/photo.jpg"})
		status, _, body := ts.post(t, "/predict", "application/json", req)
		same(t, w, status, body)
	})
	t.Run("v2 BYTES", func(t *testing.T) {
		elem := binary.LittleEndian.AppendUint32(nil, uint32(len(jpg)))
		elem = append(elem, jpg...)
		r := ts.infer(t, "test", map[string]any{
			"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES", "shape": []int{1},
				"parameters": map[string]any{"binary_data_size": len(elem)}}},
			"outputs": []any{map[string]any{"name": "output", "parameters": map[string]any{"binary_data": true}}},
		}, elem)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, w.Shape, r.JSON.Outputs[0].Shape)
		require.Equal(t, w.Data, r.Binary[0])
	})
	t.Run("a corrupt JPEG is the client's 400", func(t *testing.T) {
		bad := append([]byte{}, jpg[:len(jpg)/2]...) // the header is whole, the scan cut
		status, _, body := ts.post(t, "/predict", "image/jpeg", bad)
		e := requireError(t, http.StatusBadRequest, CodeCorruptImage, status, body)
		require.Empty(t, e.Traceback)
		status, _, body = ts.post(t, "/predict", "image/jpeg", jpg) // the worker still serves
		same(t, w, status, body)
	})
}

// TestJPEGBatchWithACorruptImage: in a predict_batch batch, an image Pillow
// cannot decode fails alone; the others are answered, in order.
func TestJPEGBatchWithACorruptImage(t *testing.T) {
	dir := writeJPEGCases(t)
	ts := startServer(t, codeDir(t, "class AAI:\n    def predict_batch(self, xs):\n        return xs\n"), spec.Image, spec.Numpy,
		func(c *Config) { c.MaxBatchSize, c.MaxQueueDelay = 3, Duration(60e9) })
	ts.waitReady(t)
	jpg, err := os.ReadFile(filepath.Join(dir, "baseline.jpg"))
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join(dir, "baseline.npy"))
	require.NoError(t, err)
	wv, err := decodeNPY(want)
	require.NoError(t, err)
	bodies := [][]byte{jpg, jpg[:len(jpg)/2], jpg}
	rs := postAll(t, ts, "image/jpeg", bodies)
	for i, r := range rs {
		if i == 1 {
			requireError(t, http.StatusBadRequest, CodeCorruptImage, r.status, r.body)
			continue
		}
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		got, err := decodeNPY(r.body)
		require.NoError(t, err)
		require.Equal(t, wv.Data, got.Data)
	}
}

// TestONNXKeepsGoJPEGDecoding: an ONNX endpoint runs no Python, so its
// image codec decodes JPEGs in Go (into a tensor), unlike a Python one.
func TestONNXKeepsGoJPEGDecoding(t *testing.T) {
	dir := writeJPEGCases(t)
	jpg, err := os.ReadFile(filepath.Join(dir, "baseline.jpg"))
	require.NoError(t, err)
	for env, kind := range map[string]Kind{spec.EnvONNX: KindTensor, spec.EnvPython: KindImage} {
		in, err := newInputCodec(spec.Image, Config{Environment: env}.WithDefaults(), nil)
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodPost, "/predict", bytes.NewReader(jpg))
		r.Header.Set("Content-Type", "image/jpeg")
		v, err := in.Decode(t.Context(), r)
		require.NoError(t, err)
		require.Equal(t, kind, v.Kind, env)
		require.Equal(t, []int{61, 83, 3}, v.Shape, env)
	}
}

// BenchmarkJPEGInput sends a 512x512 JPEG (the landscape of benchImages,
// quality 90, 4:2:0) to /predict at concurrency 8 on 2 workers, image→JSON
// with a predict that returns the shape (so the answer costs nothing): the
// JPEG decoded in Go and sent as pixels (the path before, and ONNX's) against
// sent encoded and decoded by Pillow in the worker (Python's path now).
// Alternated, same process; compare req/s within one run:
//
//	go test -run '^$' -bench BenchmarkJPEGInput -benchtime 400x -count 2 ./inference/
func BenchmarkJPEGInput(b *testing.B) {
	requirePython(b)
	var jpg bytes.Buffer
	require.NoError(b, jpeg.Encode(&jpg, benchImages()["landscape"], &jpeg.Options{Quality: 90}))
	code := codeDir(b, "class AAI:\n    def predict(self, x):\n        return list(x.shape)\n")
	for _, path := range []struct {
		name   string
		pillow bool
	}{{"go-decode", false}, {"pillow-in-worker", true}} {
		b.Run(path.name, func(b *testing.B) {
			ts := startServer(b, code, spec.Image, spec.JSON, func(c *Config) { c.Threads = 2 })
			ts.srv.in.(*imageInput).pillowJPEG = path.pillow // before the first request
			ts.waitReady(b)
			send := func() error {
				req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(jpg.Bytes()))
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "image/jpeg")
				resp, err := ts.Client.Do(req)
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && (resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != "[512, 512, 3]") {
					err = fmt.Errorf("answer %d: %s", resp.StatusCode, body)
				}
				return err
			}
			for range 16 { // warm-up: connections, first decodes
				require.NoError(b, send())
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			b.ResetTimer()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := send(); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(jpg.Len()), "JPEG-bytes")
		})
	}
}
