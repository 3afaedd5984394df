package inference

import (
	"bytes"
	"encoding/json"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

const jsonAlgorithm = `
import numpy as np

class AAI:
    def predict(self, x):
        mode = int(x[0, 0, 0])
        if mode == 1:
            return {"bad": float("nan")}
        if mode == 2:
            return {"obj": object()}
        return {"shape": x.shape, "sum": x.sum(dtype=np.int64), "mean": x.reshape(-1, 3).mean(axis=0),
                "first": x[0, 0], "flag": np.bool_(True), "dtype": str(x.dtype)}

    def testing_input_data(self):
        return np.zeros((8, 8, 3), np.uint8)
`

type measured struct {
	Shape []int     `json:"shape"`
	Sum   int64     `json:"sum"`
	Mean  []float64 `json:"mean"`
	First []int     `json:"first"`
	Flag  bool      `json:"flag"`
	DType string    `json:"dtype"`
}

func TestImageToJSON(t *testing.T) {
	in := testImage(20, 10, 9)
	raw := pngBytes(t, in)
	var sum int64
	for i, p := range in.Pix {
		if i%4 != 3 {
			sum += int64(p)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/img.png", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(raw) })
	mux.Handle("/redirect", http.RedirectHandler("/img.png", http.StatusFound))
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 2<<20)) })
	images := httptest.NewServer(mux)
	defer images.Close()

	ts := startServer(t, codeDir(t, jsonAlgorithm), spec.Image, spec.JSON, func(c *Config) {
		c.AllowPrivateURLs = true // the image server is on loopback
		c.MaxBodyBytes = 1 << 20
	})
	ts.waitReady(t)
	check := func(t *testing.T, status int, ct string, body []byte) {
		t.Helper()
		require.Equal(t, http.StatusOK, status, string(body))
		require.Equal(t, "application/json", ct)
		var m measured
		require.NoError(t, json.Unmarshal(body, &m))
		require.Equal(t, measured{Shape: []int{10, 20, 3}, Sum: sum, Mean: m.Mean, First: []int{9, int(in.Pix[1]), int(in.Pix[2])}, Flag: true, DType: "uint8"}, m)
		require.Len(t, m.Mean, 3)
	}
	urlBody := func(u string) []byte { b, _ := json.Marshal(map[string]string{"url": u}); return b }

	t.Run("raw", func(t *testing.T) {
		status, ct, body := ts.post(t, "/predict", "image/png", raw)
		check(t, status, ct, body)
	})
	t.Run("multipart", func(t *testing.T) {
		mp, mct := multipartBody(t, "image", raw)
		status, ct, body := ts.post(t, "/predict", mct, mp)
		check(t, status, ct, body)
	})
	t.Run("base64", func(t *testing.T) {
		b, _ := json.Marshal(map[string]string{"image_base64": base64Std(raw)})
		status, ct, body := ts.post(t, "/predict", "application/json", b)
		check(t, status, ct, body)
	})
	t.Run("url", func(t *testing.T) {
		status, ct, body := ts.post(t, "/predict", "application/json", urlBody(images.URL+"/img.png"))
		check(t, status, ct, body)
		status, ct, body = ts.post(t, "/predict", "application/json", urlBody(images.URL+"/redirect"))
		check(t, status, ct, body)
		status, _, body = ts.post(t, "/predict", "application/json", urlBody(images.URL+"/missing"))
		e := requireError(t, http.StatusBadRequest, CodeURLFetchFailed, status, body)
		require.Contains(t, e.Message, "404")
		status, _, body = ts.post(t, "/predict", "application/json", urlBody(images.URL+"/huge"))
		requireError(t, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, status, body)
	})
	t.Run("jpeg", func(t *testing.T) {
		var jb bytes.Buffer
		require.NoError(t, jpeg.Encode(&jb, testImage(20, 10, 0), &jpeg.Options{Quality: 90}))
		status, _, body := ts.post(t, "/predict", "image/jpeg", jb.Bytes())
		require.Equal(t, http.StatusOK, status, string(body))
		var m measured
		require.NoError(t, json.Unmarshal(body, &m))
		require.Equal(t, []int{10, 20, 3}, m.Shape)
	})
	t.Run("values JSON cannot carry", func(t *testing.T) {
		status, _, body := ts.post(t, "/predict", "image/png", pngBytes(t, testImage(4, 4, 1)))
		e := requireError(t, http.StatusInternalServerError, CodeBadOutput, status, body)
		require.Contains(t, e.Message, "NaN")
		status, _, body = ts.post(t, "/predict", "image/png", pngBytes(t, testImage(4, 4, 2)))
		e = requireError(t, http.StatusInternalServerError, CodeBadOutput, status, body)
		require.Contains(t, e.Message, "object is not JSON serializable")
	})
	t.Run("SelfTest", func(t *testing.T) {
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.True(t, res.OK, "%+v", res)
		require.Equal(t, "application/json", res.ContentType)
		require.Contains(t, res.Summary, `"shape": [8, 8, 3]`)
		require.Equal(t, "PNG 8x8 RGB", res.InputSummary)
	})
}
