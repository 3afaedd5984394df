package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// invertAlgorithm inverts an image; predict_batch marks each output's first
// value with the batch's size, so a test sees that N items shared a batch.
const invertAlgorithm = `
import numpy as np

class AAI:
    def predict(self, x):
        return 255 - x

    def predict_batch(self, xs):
        out = [255 - x for x in xs]
        for o in out:
            o[0, 0, 0] = len(xs)
        return out
`

// statsAlgorithm describes an image as JSON.
const statsAlgorithm = `
import numpy as np

class AAI:
    def predict(self, x):
        return {"shape": list(x.shape), "sum": int(x.astype(np.int64).sum())}
`

// arrayAlgorithm: float64 -> sqrt (NaN for negatives), bool -> not, int32
// starting with 7777 -> sleeps (to fill the server), others -> x * 2.
const arrayAlgorithm = `
import time
import numpy as np

class AAI:
    def predict(self, x):
        if x.dtype == np.float64:
            with np.errstate(invalid="ignore"):
                return np.sqrt(x)
        if x.dtype == np.bool_:
            return ~x
        if x.dtype == np.int32 and x.size and x.flat[0] == 7777:
            time.sleep(2)
        return x * 2
`

// v2Response is an infer response, decoded as tritonclient's InferResult
// does: the JSON header (all of the body, or Inference-Header-Content-Length
// bytes of it), then each output's binary data in order.
type v2Response struct {
	Status int
	Header http.Header
	JSON   struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		ID           string `json:"id"`
		Outputs      []struct {
			Name       string          `json:"name"`
			Datatype   string          `json:"datatype"`
			Shape      []int           `json:"shape"`
			Parameters map[string]any  `json:"parameters"`
			Data       json.RawMessage `json:"data"`
		} `json:"outputs"`
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	Binary [][]byte // per output; nil for JSON data
	Body   []byte
}

// v2Do sends body to path with the test token (unless noAuth) and extra headers.
func (ts *testServer) v2Do(t *testing.T, method, path string, body []byte, headers map[string]string) v2Response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if _, ok := headers["Authorization"]; !ok {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	out := v2Response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}
	head, rest := out.Body, []byte(nil)
	if hl := resp.Header.Get(headerInferLen); hl != "" {
		n, err := strconv.Atoi(hl)
		require.NoError(t, err)
		require.LessOrEqual(t, n, len(out.Body))
		head, rest = out.Body[:n], out.Body[n:]
		require.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	} else {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "body: %s", out.Body)
	}
	require.NoError(t, json.Unmarshal(head, &out.JSON), "body: %s", head)
	for _, o := range out.JSON.Outputs {
		size, ok := o.Parameters["binary_data_size"].(float64)
		if !ok {
			out.Binary = append(out.Binary, nil)
			continue
		}
		require.LessOrEqual(t, int(size), len(rest))
		out.Binary = append(out.Binary, rest[:int(size)])
		rest = rest[int(size):]
	}
	require.Empty(t, rest, "bytes left after the outputs' binary data")
	return out
}

// infer posts a v2 request: head as JSON, then bins as binary data (with
// Inference-Header-Content-Length) when there are any.
func (ts *testServer) infer(t *testing.T, model string, head map[string]any, bins ...[]byte) v2Response {
	t.Helper()
	body, err := json.Marshal(head)
	require.NoError(t, err)
	headers := map[string]string{}
	if len(bins) > 0 {
		headers[headerInferLen] = strconv.Itoa(len(body))
		headers["Content-Type"] = "application/octet-stream"
		for _, b := range bins {
			body = append(body, b...)
		}
	} else {
		headers["Content-Type"] = "application/json"
	}
	return ts.v2Do(t, http.MethodPost, "/v2/models/"+model+"/infer", body, headers)
}

// requireV2Error checks a v2 error answer: {"error": ..., "code": ...}.
func requireV2Error(t *testing.T, r v2Response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, code, r.JSON.Code, "body: %s", r.Body)
	require.NotEmpty(t, r.JSON.Error, "body: %s", r.Body)
}

// rgbOf is an image's packed RGB bytes, as predict receives them.
func rgbOf(w, h int, mode uint8) []byte { return toRGB(testImage(w, h, mode)) }

func jsonInts(t *testing.T, raw json.RawMessage) []int {
	t.Helper()
	var v []int
	require.NoError(t, json.Unmarshal(raw, &v), "data: %s", raw)
	return v
}

func invert(b []byte) []byte {
	out := make([]byte, len(b))
	for i, v := range b {
		out[i] = 255 - v
	}
	return out
}

func TestV2ImageToImage(t *testing.T) {
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) { c.MaxBodyBytes = 256 << 10 })
	ts.waitReady(t)
	pix := rgbOf(4, 3, 10)

	t.Run("JSON data in and out", func(t *testing.T) {
		data := make([]int, len(pix))
		for i, v := range pix {
			data[i] = int(v)
		}
		r := ts.infer(t, "test", map[string]any{"id": "req-1", "inputs": []any{map[string]any{
			"name": "input", "datatype": "UINT8", "shape": []int{3, 4, 3}, "data": data}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, "test", r.JSON.ModelName)
		require.Equal(t, "1", r.JSON.ModelVersion)
		require.Equal(t, "req-1", r.JSON.ID)
		require.Len(t, r.JSON.Outputs, 1)
		o := r.JSON.Outputs[0]
		require.Equal(t, "output", o.Name)
		require.Equal(t, "UINT8", o.Datatype)
		require.Equal(t, []int{3, 4, 3}, o.Shape)
		got := jsonInts(t, o.Data)
		for i, v := range invert(pix) {
			require.Equal(t, int(v), got[i], "element %d", i)
		}
	})

	t.Run("nested JSON data", func(t *testing.T) {
		nested := make([][][]int, 3)
		for y := range nested {
			nested[y] = make([][]int, 4)
			for x := range nested[y] {
				i := (y*4 + x) * 3
				nested[y][x] = []int{int(pix[i]), int(pix[i+1]), int(pix[i+2])}
			}
		}
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{
			"name": "input", "datatype": "UINT8", "shape": []int{3, 4, 3}, "data": nested}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Len(t, jsonInts(t, r.JSON.Outputs[0].Data), len(pix))
	})

	t.Run("binary in, binary out", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{
			"inputs": []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{3, 4, 3},
				"parameters": map[string]any{"binary_data_size": len(pix)}}},
			"parameters": map[string]any{"binary_data_output": true},
		}, pix)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, []int{3, 4, 3}, r.JSON.Outputs[0].Shape)
		require.Nil(t, r.JSON.Outputs[0].Data)
		require.Equal(t, invert(pix), r.Binary[0])
		require.Equal(t, strconv.Itoa(len(r.Body)), r.Header.Get("Content-Length"))
	})

	t.Run("PNG bytes as a BYTES tensor, output's binary_data", func(t *testing.T) {
		png := pngBytes(t, testImage(5, 2, 20))
		elem := binary.LittleEndian.AppendUint32(nil, uint32(len(png)))
		elem = append(elem, png...)
		r := ts.infer(t, "test", map[string]any{
			"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES", "shape": []int{1},
				"parameters": map[string]any{"binary_data_size": len(elem)}}},
			"outputs": []any{map[string]any{"name": "output", "parameters": map[string]any{"binary_data": true}}},
		}, elem)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, []int{2, 5, 3}, r.JSON.Outputs[0].Shape)
		require.Equal(t, invert(rgbOf(5, 2, 20)), r.Binary[0])
	})

	t.Run("a batch over max_batch_size", func(t *testing.T) {
		two := append(append([]byte{}, pix...), pix...)
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "UINT8",
			"shape": []int{2, 3, 4, 3}, "parameters": map[string]any{"binary_data_size": len(two)}}}}, two)
		requireV2Error(t, r, http.StatusBadRequest, CodeBatchTooLarge)
	})

	t.Run("bad requests", func(t *testing.T) {
		in := func(m map[string]any) map[string]any {
			base := map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{1, 1, 3}, "data": []int{1, 2, 3}}
			for k, v := range m {
				if v == nil {
					delete(base, k)
				} else {
					base[k] = v
				}
			}
			return map[string]any{"inputs": []any{base}}
		}
		for _, c := range []struct {
			name   string
			head   map[string]any
			bins   [][]byte
			status int
			code   string
		}{
			{"unknown datatype", in(map[string]any{"datatype": "FP8"}), nil, 400, CodeBadDatatype},
			{"BF16", in(map[string]any{"datatype": "BF16"}), nil, 400, CodeBadDatatype},
			{"FP32 for an image", in(map[string]any{"datatype": "FP32"}), nil, 400, CodeBadDatatype},
			{"too few elements", in(map[string]any{"shape": []int{2, 1, 3}}), nil, 400, CodeShapeMismatch},
			{"too many elements", in(map[string]any{"data": []int{1, 2, 3, 4}}), nil, 400, CodeShapeMismatch},
			{"element out of range", in(map[string]any{"data": []int{1, 2, 300}}), nil, 400, CodeBadDatatype},
			{"string element", in(map[string]any{"data": []any{1, 2, "x"}}), nil, 400, CodeBadDatatype},
			{"two channels", in(map[string]any{"shape": []int{1, 1, 2}, "data": []int{1, 2}}), nil, 400, CodeShapeMismatch},
			{"negative dimension", in(map[string]any{"shape": []int{-1, 1, 3}}), nil, 400, CodeShapeMismatch},
			{"no data", in(map[string]any{"data": nil}), nil, 400, CodeBadInferRequest},
			{"no shape", in(map[string]any{"shape": nil}), nil, 400, CodeBadInferRequest},
			{"unknown input", in(map[string]any{"name": "pixels"}), nil, 400, CodeBadInferRequest},
			{"unknown output", func() map[string]any {
				h := in(nil)
				h["outputs"] = []any{map[string]any{"name": "mask"}}
				return h
			}(), nil, 400, CodeBadInferRequest},
			{"no inputs", map[string]any{"inputs": []any{}}, nil, 400, CodeBadInferRequest},
			{"shared memory", in(map[string]any{"data": nil, "parameters": map[string]any{"shared_memory_region": "r", "shared_memory_byte_size": 3}}), nil, 400, CodeUnsupportedFeature},
			{"binary size over the body", in(map[string]any{"data": nil, "parameters": map[string]any{"binary_data_size": 30}}), [][]byte{{1, 2, 3}}, 400, CodeBinarySizeMismatch},
			{"binary size under the shape", in(map[string]any{"data": nil, "parameters": map[string]any{"binary_data_size": 2}}), [][]byte{{1, 2}}, 400, CodeBinarySizeMismatch},
			{"bytes after the binary data", in(map[string]any{"data": nil, "parameters": map[string]any{"binary_data_size": 3}}), [][]byte{{1, 2, 3, 4}}, 400, CodeBinarySizeMismatch},
			{"binary size without the header", in(map[string]any{"data": nil, "parameters": map[string]any{"binary_data_size": 3}}), nil, 400, CodeBinarySizeMismatch},
		} {
			t.Run(c.name, func(t *testing.T) {
				requireV2Error(t, ts.infer(t, "test", c.head, c.bins...), c.status, c.code)
			})
		}
		raw := func(body string, h map[string]string) v2Response {
			return ts.v2Do(t, http.MethodPost, "/v2/models/test/infer", []byte(body), h)
		}
		requireV2Error(t, raw(`{"inputs": [`, nil), 400, CodeBadInferRequest)
		requireV2Error(t, raw(``, nil), 400, CodeEmptyBody)
		requireV2Error(t, raw(`{"inputs":[]}`, map[string]string{headerInferLen: "99"}), 400, CodeBinarySizeMismatch)
		requireV2Error(t, raw(`{"inputs":[]}`, map[string]string{headerInferLen: "x"}), 400, CodeBinarySizeMismatch)
		requireV2Error(t, raw(`{"inputs":[]}`, map[string]string{headerInferLen: "0"}), 400, CodeUnsupportedFeature)
		requireV2Error(t, raw(`{"inputs":[]}`, map[string]string{"Content-Encoding": "gzip"}), 415, CodeUnsupportedMedia)
		requireV2Error(t, raw(`{}`, map[string]string{"Authorization": "Bearer wrong"}), 401, CodeUnauthorized)
		requireV2Error(t, ts.v2Do(t, http.MethodPost, "/v2/models/other/infer", []byte(`{}`), nil), 404, CodeNotFound)
		requireV2Error(t, ts.v2Do(t, http.MethodPost, "/v2/models/test/versions/2/infer", []byte(`{}`), nil), 404, CodeNotFound)
		requireV2Error(t, ts.v2Do(t, http.MethodGet, "/v2/models/test/infer", nil, nil), 405, CodeMethodNotAllowed)
		requireV2Error(t, ts.v2Do(t, http.MethodGet, "/v2/repository/index", nil, nil), 404, CodeNotFound)
		requireV2Error(t, ts.v2Do(t, http.MethodGet, "/v2/models/test/stats", nil, nil), 404, CodeNotFound)
		big := bytes.Repeat([]byte{1}, 300<<10)
		r := ts.infer(t, "test", in(map[string]any{"data": nil, "parameters": map[string]any{"binary_data_size": len(big)}}), big)
		requireV2Error(t, r, http.StatusRequestEntityTooLarge, CodeBodyTooLarge)
		huge := in(map[string]any{"shape": []int{10000, 10000, 3}, "data": nil, "parameters": map[string]any{"binary_data_size": 300_000_000}})
		requireV2Error(t, ts.infer(t, "test", huge, []byte{1}), 400, CodeShapeMismatch) // refused before any allocation
	})

	t.Run("metadata and health", func(t *testing.T) {
		get := func(path string) (int, map[string]any) {
			resp, err := ts.Client.Get(ts.URL + path) // no token: like /healthz and /openapi.json
			require.NoError(t, err)
			defer resp.Body.Close()
			var m map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
			return resp.StatusCode, m
		}
		st, m := get("/v2")
		require.Equal(t, 200, st)
		require.Equal(t, "algocloud", m["name"])
		require.Contains(t, m["extensions"], "binary_tensor_data")
		st, m = get("/v2/health/live")
		require.Equal(t, 200, st)
		require.Equal(t, true, m["live"])
		st, m = get("/v2/health/ready")
		require.Equal(t, 200, st)
		require.Equal(t, true, m["ready"])
		st, m = get("/v2/models/test/ready")
		require.Equal(t, 200, st)
		require.Equal(t, map[string]any{"name": "test", "ready": true}, m)
		for _, p := range []string{"/v2/models/test", "/v2/models/test/versions/1"} {
			st, m = get(p)
			require.Equal(t, 200, st)
			require.Equal(t, map[string]any{
				"name": "test", "versions": []any{"1"}, "platform": "algocloud",
				"inputs":  []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []any{-1.0, -1.0, 3.0}}},
				"outputs": []any{map[string]any{"name": "output", "datatype": "UINT8", "shape": []any{-1.0, -1.0, -1.0}}},
			}, m)
		}
		st, m = get("/v2/models/nope")
		require.Equal(t, 404, st)
		require.Contains(t, m["error"], `unknown model "nope"`)

		// A browser page may send binary requests: the preflight allows the header.
		req := mustRequest(t, http.MethodOptions, ts.URL+"/v2/models/test/infer")
		req.Header.Set("Origin", "https://example.com")
		resp, err := ts.Client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Equal(t, "POST, OPTIONS", resp.Header.Get("Access-Control-Allow-Methods"))
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), headerInferLen)
	})

	t.Run("metrics count v2 requests", func(t *testing.T) {
		req := mustRequest(t, http.MethodGet, ts.URL+"/metrics")
		req.Header.Set("Authorization", "Bearer "+testToken)
		_, _, body := ts.do(t, req)
		require.Contains(t, string(body), `algocloud_inference_requests_total{code="200",path="/v2/models/{name}/infer"}`)
		require.Contains(t, string(body), `algocloud_inference_requests_total{code="400",path="/v2/models/{name}/infer"}`)
	})
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	return req
}

// TestV2Batch: a [N, H, W, 3] tensor enters the batcher as N calls, which a
// predict_batch class gets as one batch, and the output gets the batch axis.
func TestV2Batch(t *testing.T) {
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.MaxBatchSize = 4
		c.MaxQueueDelay = Duration(time.Second) // the three calls arrive together; this only bounds a lone one
		c.PreferredBatchSizes = []int{3}
	})
	ts.waitReady(t)
	var all []byte
	for i := range 3 {
		all = append(all, rgbOf(4, 3, uint8(30+i))...)
	}
	r := ts.infer(t, "test", map[string]any{
		"inputs": []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{3, 3, 4, 3},
			"parameters": map[string]any{"binary_data_size": len(all)}}},
		"parameters": map[string]any{"binary_data_output": true},
	}, all)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, []int{3, 3, 4, 3}, r.JSON.Outputs[0].Shape)
	want := invert(all)
	per := 4 * 3 * 3
	for i := range 3 {
		want[i*per] = 3 // predict_batch saw the three items together
	}
	require.Equal(t, want, r.Binary[0])

	_, m := func() (int, map[string]any) {
		resp, err := ts.Client.Get(ts.URL + "/v2/models/test")
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, m
	}()
	require.Equal(t, []any{-1.0, -1.0, -1.0, 3.0}, m["inputs"].([]any)[0].(map[string]any)["shape"])

	resp, err := ts.Client.Get(ts.URL + "/v2/models/test/config")
	require.NoError(t, err)
	defer resp.Body.Close()
	var cfg map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cfg))
	require.Equal(t, map[string]any{
		"name": "test", "platform": "algocloud", "max_batch_size": 4.0,
		"input":            []any{map[string]any{"name": "input", "data_type": "TYPE_UINT8", "dims": []any{-1.0, -1.0, 3.0}}},
		"output":           []any{map[string]any{"name": "output", "data_type": "TYPE_UINT8", "dims": []any{-1.0, -1.0, -1.0}}},
		"dynamic_batching": map[string]any{"max_queue_delay_microseconds": 1e6, "preferred_batch_size": []any{3.0}},
	}, cfg)
}

func TestV2ImageToJSON(t *testing.T) {
	ts := startServer(t, codeDir(t, statsAlgorithm), spec.Image, spec.JSON, nil)
	ts.waitReady(t)
	pix := rgbOf(4, 3, 10)
	sum := 0
	for _, v := range pix {
		sum += int(v)
	}
	want := fmt.Sprintf(`{"shape": [3, 4, 3], "sum": %d}`, sum)

	r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "UINT8",
		"shape": []int{3, 4, 3}, "parameters": map[string]any{"binary_data_size": len(pix)}}}}, pix)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	o := r.JSON.Outputs[0]
	require.Equal(t, "BYTES", o.Datatype)
	require.Equal(t, []int{1}, o.Shape)
	var texts []string
	require.NoError(t, json.Unmarshal(o.Data, &texts))
	require.Equal(t, []string{want}, texts)

	r = ts.infer(t, "test", map[string]any{
		"inputs":     []any{map[string]any{"name": "input", "datatype": "UINT8", "shape": []int{3, 4, 3}, "parameters": map[string]any{"binary_data_size": len(pix)}}},
		"parameters": map[string]any{"binary_data_output": true},
	}, pix)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	elem := binary.LittleEndian.AppendUint32(nil, uint32(len(want)))
	require.Equal(t, append(elem, want...), r.Binary[0])
}

func TestV2NumpyToNumpy(t *testing.T) {
	ts := startServer(t, codeDir(t, arrayAlgorithm), spec.Numpy, spec.Numpy, func(c *Config) { c.MaxQueueSize = 1 })
	ts.waitReady(t)

	t.Run("FP32 JSON", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "FP32",
			"shape": []int{2, 2}, "data": [][]float64{{1.5, -2}, {0.25, 1e10}}}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		o := r.JSON.Outputs[0]
		require.Equal(t, "FP32", o.Datatype)
		require.Equal(t, []int{2, 2}, o.Shape)
		var got []float64
		require.NoError(t, json.Unmarshal(o.Data, &got))
		require.Equal(t, []float64{3, -4, 0.5, 2e10}, got)
	})

	t.Run("INT16 binary", func(t *testing.T) {
		vals := []int16{-3, 0, 7, 1000, -1000, 2}
		var raw []byte
		for _, v := range vals {
			raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
		}
		r := ts.infer(t, "test", map[string]any{
			"inputs":     []any{map[string]any{"name": "input", "datatype": "INT16", "shape": []int{3, 1, 2}, "parameters": map[string]any{"binary_data_size": len(raw)}}},
			"parameters": map[string]any{"binary_data_output": true},
		}, raw)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, "INT16", r.JSON.Outputs[0].Datatype)
		require.Equal(t, []int{3, 1, 2}, r.JSON.Outputs[0].Shape)
		for i, v := range vals {
			require.Equal(t, v*2, int16(binary.LittleEndian.Uint16(r.Binary[0][2*i:])))
		}
	})

	t.Run("FP16, BOOL and INT64 in JSON", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "FP16",
			"shape": []int{3}, "data": []float64{0.5, -1.25, 1000}}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, "FP16", r.JSON.Outputs[0].Datatype)
		require.JSONEq(t, `[1, -2.5, 2000]`, string(r.JSON.Outputs[0].Data))

		r = ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "BOOL",
			"shape": []int{2}, "data": []bool{true, false}}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.JSONEq(t, `[false, true]`, string(r.JSON.Outputs[0].Data))

		r = ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "INT64",
			"shape": []int{2}, "data": json.RawMessage(`[-4611686018427387903, 3]`)}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, `[-9223372036854775806,6]`, string(r.JSON.Outputs[0].Data))
	})

	t.Run("NaN output goes as binary data", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "FP64",
			"shape": []int{2}, "data": []float64{4, -1}}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, "FP64", r.JSON.Outputs[0].Datatype)
		require.Len(t, r.Binary[0], 16)
		require.Equal(t, 2.0, math.Float64frombits(binary.LittleEndian.Uint64(r.Binary[0])))
		require.True(t, math.IsNaN(math.Float64frombits(binary.LittleEndian.Uint64(r.Binary[0][8:]))))
	})

	t.Run("0-d array", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "UINT32",
			"shape": []int{}, "data": 21}}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Equal(t, []int{}, r.JSON.Outputs[0].Shape)
		require.Contains(t, string(r.Body), `"shape":[]`)
		require.Equal(t, `[42]`, string(r.JSON.Outputs[0].Data))
	})

	t.Run("BYTES for a numpy input", func(t *testing.T) {
		r := ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES",
			"shape": []int{1}, "data": []string{"not npy"}}}})
		requireV2Error(t, r, http.StatusBadRequest, CodeNotNPY)
	})

	t.Run("overload: 429 with Retry-After", func(t *testing.T) {
		slow := map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "INT32", "shape": []int{1}, "data": []int{7777}}}}
		// A client reads an answer before the server's handler has left
		// admission: wait for the earlier subtests' requests to be gone, then
		// admit the two slow ones one after the other.
		waitActive := func(n int64) {
			require.Eventually(t, func() bool { return ts.srv.admission.active.Load() == n }, 30*time.Second, 5*time.Millisecond,
				"requests in the server: want %d, have %d", n, ts.srv.admission.active.Load())
		}
		waitActive(0)
		var wg sync.WaitGroup
		for i := range 2 { // max_queue_size 1 + 1 worker x batch 1: two requests fill the server
			wg.Go(func() {
				r := ts.infer(t, "test", slow)
				if r.Status != http.StatusOK {
					t.Errorf("a slow request failed: %d %s", r.Status, r.Body)
				}
			})
			waitActive(int64(i + 1))
		}
		r := ts.infer(t, "test", slow)
		requireV2Error(t, r, http.StatusTooManyRequests, CodeOverloaded)
		require.Equal(t, "1", r.Header.Get("Retry-After"))
		wg.Wait()
	})
}

// TestV2FileAndJSONInputs: BYTES tensors for the json and file input types.
func TestV2FileAndJSONInputs(t *testing.T) {
	const echoFile = `
class AAI:
    def predict(self, f):
        return ("echo-" + f.name, f.data[::-1], f.content_type)
`
	ts := startServer(t, codeDir(t, echoFile), spec.File, spec.File, nil)
	ts.waitReady(t)
	r := ts.infer(t, "test", map[string]any{
		"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES", "shape": []int{1},
			"parameters": map[string]any{"filename": "../a.csv", "binary_data_size": 4 + 5}}},
		"parameters": map[string]any{"binary_data_output": true},
	}, append(binary.LittleEndian.AppendUint32(nil, 5), "a,b\n\xff"...))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, map[string]any{"filename": "echo-a.csv", "content_type": "text/csv", "binary_data_size": 9.0}, r.JSON.Outputs[0].Parameters)
	require.Equal(t, append(binary.LittleEndian.AppendUint32(nil, 5), "\xff\nb,a"...), r.Binary[0])

	// JSON data asked for, but the bytes are not UTF-8: they go as binary data.
	r = ts.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES",
		"shape": []int{1}, "data": []string{"x\u00e9"}}}})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, "echo-input.txt", r.JSON.Outputs[0].Parameters["filename"])
	require.NotNil(t, r.Binary[0])

	const echoJSON = `
class AAI:
    def predict(self, x):
        return {"got": x}
`
	tj := startServer(t, codeDir(t, echoJSON), spec.JSON, spec.JSON, nil)
	tj.waitReady(t)
	r = tj.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES",
		"shape": []int{1}, "data": []string{`{"a": [1, 2]}`}}}})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, `["{\"got\": {\"a\": [1, 2]}}"]`, string(r.JSON.Outputs[0].Data))
	requireV2Error(t, tj.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "BYTES",
		"shape": []int{1}, "data": []string{`{"a": `}}}}), http.StatusBadRequest, CodeInvalidJSON)
	requireV2Error(t, tj.infer(t, "test", map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "INT8",
		"shape": []int{1}, "data": []int{1}}}}), http.StatusBadRequest, CodeBadDatatype)
}

// TestV2TritonClientWireFormat sends requests byte for byte as tritonclient's
// HTTP client (tritonclient/http/_utils.py _get_inference_request,
// _infer_input.py InferInput, _requested_output.py InferRequestedOutput;
// triton-inference-server/client) forms them, and reads the answers as its
// InferResult does. Debian has no tritonclient package, so the wire format
// is written here: the JSON from rapidjson.dumps (compact, keys in insertion
// order), "Inference-Header-Content-Length" set to its length when binary
// data follows, no Content-Type, and BYTES elements as a uint32
// little-endian length then the bytes (serialize_byte_tensor).
func TestV2TritonClientWireFormat(t *testing.T) {
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, nil)
	ts.waitReady(t)
	pix := rgbOf(2, 2, 50)

	// InferInput("input", [2, 2, 3], "UINT8").set_data_from_numpy(x) (binary by
	// default); infer(model, inputs) without outputs adds binary_data_output.
	head := `{"inputs":[{"name":"input","shape":[2,2,3],"datatype":"UINT8","parameters":{"binary_data_size":12}}],"parameters":{"binary_data_output":true}}`
	r := ts.v2Do(t, http.MethodPost, "/v2/models/test/infer", append([]byte(head), pix...),
		map[string]string{headerInferLen: strconv.Itoa(len(head))})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	// InferResult.as_numpy("output"): header, then binary_data_size bytes per output.
	require.Equal(t, "UINT8", r.JSON.Outputs[0].Datatype)
	require.Equal(t, []int{2, 2, 3}, r.JSON.Outputs[0].Shape)
	require.Equal(t, 12.0, r.JSON.Outputs[0].Parameters["binary_data_size"])
	require.Equal(t, invert(pix), r.Binary[0])

	// set_data_from_numpy(x, binary_data=False) and
	// InferRequestedOutput("output", binary_data=False): all JSON, no header.
	data := make([]string, len(pix))
	for i, v := range pix {
		data[i] = strconv.Itoa(int(v))
	}
	head = `{"id":"7","inputs":[{"name":"input","shape":[2,2,3],"datatype":"UINT8","data":[` + joinComma(data) +
		`]}],"outputs":[{"name":"output","parameters":{"binary_data":false}}]}`
	r = ts.v2Do(t, http.MethodPost, "/v2/models/test/infer", []byte(head), nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, "7", r.JSON.ID)
	got := jsonInts(t, r.JSON.Outputs[0].Data)
	for i, v := range invert(pix) {
		require.Equal(t, int(v), got[i])
	}

	// A BYTES input (np.array([png], dtype=np.object_)), binary.
	png := pngBytes(t, testImage(2, 2, 50))
	elem := append(binary.LittleEndian.AppendUint32(nil, uint32(len(png))), png...)
	head = `{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":` + strconv.Itoa(len(elem)) +
		`}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`
	r = ts.v2Do(t, http.MethodPost, "/v2/models/test/infer", append([]byte(head), elem...),
		map[string]string{headerInferLen: strconv.Itoa(len(head))})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, invert(pix), r.Binary[0])

	// Its error handling reads {"error": ...} from a non-200 answer.
	r = ts.v2Do(t, http.MethodPost, "/v2/models/test/infer", []byte(`{"inputs":[{"name":"input","shape":[1,1,3],"datatype":"FP32","data":[1,2,3]}]}`), nil)
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Contains(t, r.JSON.Error, "FP32")
}

func joinComma(s []string) string {
	var b bytes.Buffer
	for i, v := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
	}
	return b.String()
}

func TestFloatToHalf(t *testing.T) {
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800}, {65504, 0x7bff}, {6.1035156e-05, 0x0400},
		{5.9604645e-08, 0x0001}, {1.0009766, 0x3c01}, {float32(math.Inf(1)), 0x7c00},
	} {
		got, ok := floatToHalf(c.f)
		require.True(t, ok, "%g", c.f)
		require.Equal(t, c.want, got, "%g", c.f)
		require.Equal(t, float64(c.f), halfToFloat(got), "%g", c.f)
	}
	_, ok := floatToHalf(70000)
	require.False(t, ok)
	for h := uint16(0); h < 0x7c00; h++ { // every finite positive half round-trips
		got, ok := floatToHalf(float32(halfToFloat(h)))
		require.True(t, ok)
		require.Equal(t, h, got)
	}
}

// TestParseV2JSONData checks the data scanner on the forms JSON allows:
// nesting, whitespace, escapes, exponents, and what it refuses.
func TestParseV2JSONData(t *testing.T) {
	parse := func(datatype, shape, data string) (*v2Request, error) {
		return parseV2Infer("", []byte(`{"inputs":[{"name":"input","datatype":"`+datatype+`","shape":`+shape+`,"data":`+data+`}]}`))
	}
	req, err := parse("BYTES", "[3]", ` [ "a\"b\\" , ["\u00e9\n"], "" ] `)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte(`a"b\`), []byte("\u00e9\n"), {}}, req.Inputs[0].Elems)
	req, err = parse("FP64", "[2,2]", `[[1e2, -2.5E-1], [0, -0]]`)
	require.NoError(t, err)
	var got []float64
	for i := 0; i < 4; i++ {
		got = append(got, math.Float64frombits(binary.LittleEndian.Uint64(req.Inputs[0].Data[8*i:])))
	}
	require.Equal(t, []float64{100, -0.25, 0, math.Copysign(0, -1)}, got)
	req, err = parse("INT64", "[]", `-9223372036854775808`)
	require.NoError(t, err)
	require.Equal(t, uint64(1)<<63, binary.LittleEndian.Uint64(req.Inputs[0].Data))
	for _, c := range []struct{ datatype, data, code string }{
		{"INT8", `[{"a": 1}]`, CodeBadDatatype},
		{"INT8", `[null]`, CodeBadDatatype},
		{"INT8", `[1.5]`, CodeBadDatatype},
		{"INT8", `[128]`, CodeBadDatatype},
		{"UINT8", `[-1]`, CodeBadDatatype},
		{"FP16", `[70000]`, CodeBadDatatype},
		{"FP32", `[1e39]`, CodeBadDatatype},
		{"BOOL", `[1]`, CodeBadDatatype},
		{"BYTES", `[1]`, CodeBadDatatype},
		{"INT8", `[1, 2]`, CodeShapeMismatch},
		{"INT8", `[]`, CodeShapeMismatch},
	} {
		_, err := parse(c.datatype, "[1]", c.data)
		var ae *APIError
		require.True(t, errors.As(err, &ae), "%s %s: %v", c.datatype, c.data, err)
		require.Equal(t, c.code, ae.Code, "%s %s: %s", c.datatype, c.data, ae.Message)
	}
}

// FuzzV2InferRequest feeds arbitrary bodies and header lengths to the v2
// request parser: it must never panic, must refuse with a 4xx *APIError, and
// what it accepts must be consistent (each tensor's bytes match its shape).
func FuzzV2InferRequest(f *testing.F) {
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[1,1,3],"datatype":"UINT8","data":[1,2,3]}]}`))
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[2],"datatype":"FP16","data":[[0.5],[1e5]]}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`))
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["{}"]}],"parameters":{"binary_data_output":true}}`))
	head := `{"inputs":[{"name":"input","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}]}`
	f.Add(strconv.Itoa(len(head)), append([]byte(head), "\x03\x00\x00\x00abc\x00\x00\x00\x00"...))
	head = `{"inputs":[{"name":"a","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},{"name":"b","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]}`
	f.Add(strconv.Itoa(len(head)), append([]byte(head), "0123456789abcdef\x00\x01\x02"...))
	f.Add("5", []byte(`{}`))
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[2],"datatype":"BYTES","data":["a\"b\\", "\u00e9"]}]}`))
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"INT8","data":[{"a":1}]}]}`))
	f.Add("", []byte(`{"inputs":[{"name":"input","shape":[],"datatype":"BOOL","data":true}]}`))
	f.Fuzz(func(t *testing.T, headerLen string, body []byte) {
		req, err := parseV2Infer(headerLen, body)
		if err != nil {
			var ae *APIError
			require.True(t, errors.As(err, &ae), "not an *APIError: %v", err)
			require.True(t, ae.Status >= 400 && ae.Status < 500, "status %d", ae.Status)
			require.NotEmpty(t, ae.Code)
			return
		}
		require.NotEmpty(t, req.Inputs)
		for _, in := range req.Inputs {
			n := in.count()
			if in.Datatype == v2Bytes {
				require.Len(t, in.Elems, n)
				continue
			}
			require.Len(t, in.Data, n*dtypeSizes[v2DTypes[in.Datatype]])
			if in.Datatype == "BOOL" {
				for _, b := range in.Data {
					require.LessOrEqual(t, b, byte(1))
				}
			}
		}
	})
}
