package inference

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/algocloud/algocloud/spec"
)

// BenchmarkV2Infer compares the Open Inference Protocol with /predict on one
// server (identity predict, 512x512 RGB, one client): /predict with a PNG is
// the baseline, measured first in the same run; the others report
// "x-predict", their time per request over the baseline's.
//
//	go test -run '^$' -bench V2Infer ./inference/
func BenchmarkV2Infer(b *testing.B) {
	ts := startServer(b, codeDir(b, "class AAI:\n    def predict(self, x):\n        return x\n"), spec.Image, spec.Image,
		func(c *Config) { c.MaxBodyBytes = 64 << 20 })
	ts.waitReady(b)
	img := benchImages()["photo"]
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		b.Fatal(err)
	}
	pix := toRGB(img)
	binHead, _ := json.Marshal(map[string]any{
		"inputs":     []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{512, 512, 3}, "parameters": map[string]any{"binary_data_size": len(pix)}}},
		"parameters": map[string]any{"binary_data_output": true},
	})
	data := make([]int, len(pix))
	for i, v := range pix {
		data[i] = int(v)
	}
	jsonBody, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{512, 512, 3}, "data": data}}})

	type variant struct {
		name, path string
		body       []byte
		headers    map[string]string
	}
	variants := []variant{
		{"predict-png", "/predict", pngBuf.Bytes(), map[string]string{"Content-Type": "image/png"}},
		{"v2-binary-uint8", "/v2/models/test/infer", append(append([]byte{}, binHead...), pix...),
			map[string]string{headerInferLen: strconv.Itoa(len(binHead)), "Content-Type": "application/octet-stream"}},
		{"v2-json-uint8", "/v2/models/test/infer", jsonBody, map[string]string{"Content-Type": "application/json"}},
	}
	var baseline time.Duration
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, ts.URL+v.path, bytes.NewReader(v.body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				for k, h := range v.headers {
					req.Header.Set(k, h)
				}
				resp, err := ts.Client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			if v.name == "predict-png" {
				baseline = per
			} else if baseline > 0 {
				b.ReportMetric(float64(per)/float64(baseline), "x-predict")
			}
			b.ReportMetric(float64(len(v.body))/1024, "req-KiB")
		})
	}
}
