package inference

import (
	"bytes"
	"encoding/json"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image"
	"image/color"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// modesAlgorithm picks a behaviour from the red value of the input's pixel (0,0).
const modesAlgorithm = `
import os, time
import numpy as np
from PIL import Image

class AAI:
    def __init__(self):
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        mode = int(x[0, 0, 0])
        if mode == 0:
            return 255 - x
        if mode == 1:
            return x.mean(axis=2) / 255.0
        if mode == 2:
            return x[..., 0] > 128
        if mode == 3:
            return np.dstack([x, x[..., :1]])
        if mode == 4:
            return x.astype(np.float32)
        if mode == 5:
            return x.transpose(2, 0, 1)
        if mode == 6:
            raise ValueError("mode six is broken")
        if mode == 7:
            os._exit(3)
        if mode == 8:
            time.sleep(600)
        if mode == 9:
            print("hello from predict", flush=True)
            x[0, 0, 0] = 42  # the input array is writable
            return x
        if mode == 10:
            return x.astype(np.int64)
        if mode == 11:
            return {"not": "an image"}
        if mode == 12:
            return x[..., :1].astype(np.float16) / 255
        if mode == 13:
            return Image.fromarray(x).convert("L")
        return x

    def testing_input_data(self):
        img = np.random.default_rng(1).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
        img[0, 0, 0] = 0
        return img
`

func TestImageToImage(t *testing.T) {
	ts := startServer(t, codeDir(t, modesAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.Timeout = Duration(5 * time.Second)
	})
	ts.waitReady(t)
	predict := func(t *testing.T, mode uint8) (*image.NRGBA, int, string, []byte) {
		in := testImage(40, 30, mode)
		status, ct, body := ts.post(t, "/predict", "image/png", pngBytes(t, in))
		return in, status, ct, body
	}
	eachPixel := func(t *testing.T, in *image.NRGBA, out image.Image, want func(c color.NRGBA) color.Color, model color.Model) {
		t.Helper()
		require.Equal(t, in.Bounds(), out.Bounds())
		for y := 0; y < 30; y++ {
			for x := 0; x < 40; x++ {
				w := model.Convert(want(in.NRGBAAt(x, y)))
				require.Equal(t, w, model.Convert(out.At(x, y)), "pixel %d,%d", x, y)
			}
		}
	}

	t.Run("uint8 RGB", func(t *testing.T) {
		in, status, ct, body := predict(t, 0)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "image/png", ct)
		eachPixel(t, in, decodePNG(t, body), func(c color.NRGBA) color.Color {
			return color.NRGBA{255 - c.R, 255 - c.G, 255 - c.B, 255}
		}, color.NRGBAModel)
	})
	t.Run("float gray scaled from [0,1]", func(t *testing.T) {
		in, status, _, body := predict(t, 1)
		require.Equal(t, http.StatusOK, status, string(body))
		out := decodePNG(t, body)
		require.Equal(t, color.GrayModel, out.ColorModel())
		eachPixel(t, in, out, func(c color.NRGBA) color.Color {
			return color.Gray{uint8(math.Round(float64(int(c.R)+int(c.G)+int(c.B)) / 3))}
		}, color.GrayModel)
	})
	t.Run("bool mask as 0/255", func(t *testing.T) {
		in, status, _, body := predict(t, 2)
		require.Equal(t, http.StatusOK, status, string(body))
		eachPixel(t, in, decodePNG(t, body), func(c color.NRGBA) color.Color {
			if c.R > 128 {
				return color.Gray{255}
			}
			return color.Gray{0}
		}, color.GrayModel)
	})
	t.Run("RGBA keeps alpha", func(t *testing.T) {
		in, status, _, body := predict(t, 3)
		require.Equal(t, http.StatusOK, status, string(body))
		eachPixel(t, in, decodePNG(t, body), func(c color.NRGBA) color.Color {
			return color.NRGBA{c.R, c.G, c.B, c.R}
		}, color.NRGBAModel)
	})
	t.Run("int64 in 0..255 and float16", func(t *testing.T) {
		in, status, _, body := predict(t, 10)
		require.Equal(t, http.StatusOK, status, string(body))
		eachPixel(t, in, decodePNG(t, body), func(c color.NRGBA) color.Color { return c }, color.NRGBAModel)
		_, status, _, body = predict(t, 12)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, color.GrayModel, decodePNG(t, body).ColorModel())
	})
	t.Run("PIL image", func(t *testing.T) {
		_, status, _, body := predict(t, 13)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, color.GrayModel, decodePNG(t, body).ColorModel())
	})
	t.Run("writable input and prints logged", func(t *testing.T) {
		in, status, _, body := predict(t, 9)
		require.Equal(t, http.StatusOK, status, string(body))
		out := decodePNG(t, body)
		require.Equal(t, color.NRGBA{42, in.Pix[1], in.Pix[2], 255}, color.NRGBAModel.Convert(out.At(0, 0)))
		// The worker's stdout is logged by its own goroutine, maybe after the answer went out.
		require.Eventually(t, func() bool { return strings.Contains(ts.logs.String(), "hello from predict") },
			10*time.Second, 10*time.Millisecond)
	})
	t.Run("bad outputs", func(t *testing.T) {
		for mode, want := range map[uint8]string{4: "[0, 1]", 5: "channels-first", 11: "expected a numpy array"} {
			_, status, _, body := predict(t, mode)
			e := requireError(t, http.StatusInternalServerError, CodeBadOutput, status, body)
			require.Contains(t, e.Message, want)
		}
	})
	t.Run("predict raises, server keeps serving", func(t *testing.T) {
		_, status, _, body := predict(t, 6)
		e := requireError(t, http.StatusInternalServerError, CodePredictFailed, status, body)
		require.Equal(t, "predict failed: ValueError: mode six is broken", e.Message)
		require.Equal(t, StagePredict, e.Stage)
		require.Contains(t, e.Traceback, "Traceback (most recent call last)")
		require.Contains(t, e.Traceback, "aai_main.py")
		require.Contains(t, e.Traceback, "ValueError: mode six is broken")
		require.NotContains(t, e.Traceback, "aai_runner")
		_, status, _, body = predict(t, 0)
		require.Equal(t, http.StatusOK, status, string(body))
	})
	t.Run("worker exits, is restarted", func(t *testing.T) {
		_, status, _, body := predict(t, 7)
		e := requireError(t, http.StatusInternalServerError, CodeWorkerCrashed, status, body)
		require.Contains(t, e.Message, "exit status 3")
		_, status, _, body = predict(t, 0)
		require.Equal(t, http.StatusOK, status, string(body))
	})
	t.Run("hang past timeout, worker replaced", func(t *testing.T) {
		_, status, _, body := predict(t, 8)
		requireError(t, http.StatusGatewayTimeout, CodePredictTimeout, status, body)
		_, status, _, body = predict(t, 0)
		require.Equal(t, http.StatusOK, status, string(body))
	})
	t.Run("test input", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/test-input", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		status, ct, body := ts.do(t, req)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "image/png", ct)
		require.Equal(t, image.Rect(0, 0, 48, 32), decodePNG(t, body).Bounds())
		status, _, out := ts.post(t, "/predict", ct, body)
		require.Equal(t, http.StatusOK, status, string(out))
	})
	t.Run("SelfTest", func(t *testing.T) {
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.True(t, res.OK, "%+v", res)
		require.Equal(t, "PNG 48x32 RGB", res.Summary)
		require.Equal(t, "PNG 48x32 RGB", res.InputSummary)
	})
	t.Run("openapi", func(t *testing.T) {
		resp, err := ts.Client.Get(ts.URL + "/openapi.json")
		require.NoError(t, err)
		defer resp.Body.Close()
		var doc map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
		require.Equal(t, "3.0.3", doc["openapi"])
		paths := doc["paths"].(map[string]any)
		body := paths["/predict"].(map[string]any)["post"].(map[string]any)["requestBody"].(map[string]any)
		require.Contains(t, body["content"], "multipart/form-data")
		resp200 := paths["/predict"].(map[string]any)["post"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)
		require.Contains(t, resp200["content"], "image/png")
		schemes := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
		require.Equal(t, "bearer", schemes["bearerAuth"].(map[string]any)["scheme"])
	})
}

func TestImageInputForms(t *testing.T) {
	// No test touches private URLs here: they are refused by default.
	ts := startServer(t, codeDir(t, modesAlgorithm), spec.Image, spec.Image, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	ts.waitReady(t)
	in := testImage(16, 8, 250)
	raw := pngBytes(t, in)
	identity := func(t *testing.T, status int, body []byte) {
		t.Helper()
		require.Equal(t, http.StatusOK, status, string(body))
		out := decodePNG(t, body)
		require.Equal(t, in.Bounds(), out.Bounds())
		for i := 0; i < 16*8; i++ {
			x, y := i%16, i/16
			require.Equal(t, in.NRGBAAt(x, y), color.NRGBAModel.Convert(out.At(x, y)))
		}
	}
	for _, ct := range []string{"image/png", "application/octet-stream", "", "image/jpeg"} { // the format is sniffed
		status, _, body := ts.post(t, "/predict", ct, raw)
		identity(t, status, body)
	}
	mp, mct := multipartBody(t, "image", raw)
	status, _, body := ts.post(t, "/predict", mct, mp)
	identity(t, status, body)
	b64, _ := json.Marshal(map[string]string{"image_base64": "data:image/png;base64," + base64Std(raw)})
	status, _, body = ts.post(t, "/predict", "application/json", b64)
	identity(t, status, body)

	t.Run("gray and alpha inputs become RGB", func(t *testing.T) {
		gray := image.NewGray(image.Rect(0, 0, 3, 2))
		copy(gray.Pix, []byte{250, 10, 20, 30, 40, 50})
		status, _, body := ts.post(t, "/predict", "image/png", pngBytes(t, gray))
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, color.NRGBA{30, 30, 30, 255}, color.NRGBAModel.Convert(decodePNG(t, body).At(0, 1)))
		rgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
		rgba.Pix = []byte{250, 100, 50, 7}
		status, _, body = ts.post(t, "/predict", "image/png", pngBytes(t, rgba))
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, color.NRGBA{250, 100, 50, 255}, color.NRGBAModel.Convert(decodePNG(t, body).At(0, 0)))
	})
	t.Run("bad inputs", func(t *testing.T) {
		cases := []struct {
			name, ct string
			body     []byte
			status   int
			code     string
		}{
			{"empty", "image/png", nil, 400, CodeEmptyBody},
			{"truncated", "image/png", raw[:len(raw)/2], 400, CodeCorruptImage},
			{"not an image", "application/octet-stream", []byte("hello, this is text"), 400, CodeNotAnImage},
			{"header bomb", "image/png", pngHeaderBomb(50000, 50000), 413, CodeImageTooLarge},
			{"wrong content type", "text/plain", raw, 415, CodeUnsupportedMedia},
			{"form urlencoded", "application/x-www-form-urlencoded", raw, 415, CodeUnsupportedMedia},
			{"webp", "image/webp", raw, 415, CodeUnsupportedMedia},
			{"oversized", "image/png", bytes.Repeat([]byte{1}, 2<<20), 413, CodeBodyTooLarge},
			{"bad json", "application/json", []byte("{not json"), 400, CodeInvalidJSON},
			{"json without field", "application/json", []byte(`{"image":"x"}`), 400, CodeInvalidJSON},
			{"bad base64", "application/json", []byte(`{"image_base64":"***"}`), 400, CodeBadBase64},
			{"base64 of text", "application/json", []byte(`{"image_base64":"aGVsbG8="}`), 400, CodeNotAnImage},
			{"bad url", "application/json", []byte(`{"url":"ftp://example.com/a.png"}`), 400, CodeBadURL},
			{"private url", "application/json", []byte(`{"url":"http://127.0.0.1:1/a.png"}`), 400, CodeURLForbidden},
			{"metadata url", "application/json", []byte(`{"url":"http://169.254.169.254/latest/meta-data/"}`), 400, CodeURLForbidden},
			{"multipart without image", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n"), 400, CodeInvalidMultipart},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				status, _, body := ts.post(t, "/predict", c.ct, c.body)
				requireError(t, c.status, c.code, status, body)
			})
		}
		t.Run("oversized without content length", func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", struct{ *bytes.Reader }{bytes.NewReader(make([]byte, 2<<20))})
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "image/png")
			req.ContentLength = -1 // chunked: only the MaxBytesReader can stop it
			status, _, body := ts.do(t, req)
			requireError(t, 413, CodeBodyTooLarge, status, body)
		})
	})
	t.Run("auth", func(t *testing.T) {
		for _, h := range []string{"", "Bearer wrong", "Basic " + base64Std([]byte("u:"+testToken)), testToken, "Bearer"} {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(raw))
			require.NoError(t, err)
			if h != "" {
				req.Header.Set("Authorization", h)
			}
			status, _, body := ts.do(t, req)
			requireError(t, http.StatusUnauthorized, CodeUnauthorized, status, body)
			require.NotContains(t, ts.logs.String(), testToken)
		}
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/test-input", nil)
		require.NoError(t, err)
		status, _, body := ts.do(t, req)
		requireError(t, http.StatusUnauthorized, CodeUnauthorized, status, body)
	})
	t.Run("routes", func(t *testing.T) {
		resp, err := ts.Client.Get(ts.URL + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, err = ts.Client.Get(ts.URL + "/predict")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		resp, err = ts.Client.Get(ts.URL + "/nope")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"))
	})
}
