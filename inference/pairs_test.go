package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image"
	"image/color"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// oraclePy runs an aai_main.py's predict directly, without the server, on the
// input a test sent, decoded the way the server documents it (image: PIL's
// convert("RGB"); numpy: np.load; json: json.loads; file: .name, .data,
// .content_type), and writes what the server should answer: images as the
// uint8 pixels of the PNG (.npy), arrays as .npy, JSON as JSON, files as
// bytes plus a .name file.
const oraclePy = `
import importlib, io, json, sys
import numpy as np
from PIL import Image

code_dir, in_type, in_path, out_type, out_path = sys.argv[1:]
sys.path.insert(0, code_dir)
obj = importlib.import_module("aai_main").AAI()
raw = open(in_path, "rb").read()
if in_type == "image":
    x = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).copy()
elif in_type == "numpy":
    x = np.load(io.BytesIO(raw))
elif in_type == "json":
    x = json.loads(raw)
else:
    meta = json.load(open(in_path + ".meta"))
    class File: pass
    x = File()
    x.name, x.data, x.content_type = meta["name"], raw, meta["content_type"]
y = obj.predict(x)
if out_type == "image":
    a = np.asarray(y)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        a = np.floor(a.astype(np.float64) * 255 + 0.5).astype(np.uint8)  # Go's math.Round
    else:
        a = a.astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    with open(out_path, "wb") as f:
        np.save(f, a.copy(order="C"))
elif out_type == "numpy":
    with open(out_path, "wb") as f:
        np.save(f, np.asarray(y).copy(order="C"))
elif out_type == "json":
    def conv(o):
        return o.tolist() if isinstance(o, np.ndarray) else o.item()
    with open(out_path, "w") as f:
        json.dump(y, f, default=conv)
else:
    name, data = y[0], y[1]
    if isinstance(data, str):
        data = data.encode("utf-8")
    open(out_path, "wb").write(data)
    open(out_path + ".name", "w").write(name)
`

// pairCase is the direct request a pair's skeleton gets besides SelfTest.
type pairCase struct {
	contentType string
	body        []byte
	query       string
	// oracleIn is what the oracle reads (the file's bytes for file inputs).
	oracleIn []byte
	fileName string // file inputs: the name predict must see
	fileType string // file inputs: the content type predict must see
	// inputSummary is what SelfTest must report for testing_input_data.
	inputSummary string
	// check, when set, asserts something about the answer beyond the oracle.
	check func(t *testing.T, ct string, body []byte)
}

func npyOf(t *testing.T, dtype string, shape []int, data []byte) []byte {
	t.Helper()
	b, err := encodeNPY(Value{Kind: KindTensor, DType: dtype, Shape: shape, Data: data})
	require.NoError(t, err)
	return b
}

func multipartFile(t *testing.T, field, name, contentType string, data []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.WriteField("note", "other fields are skipped"))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": field, "filename": name}))
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	pw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, err = pw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return b.Bytes(), mw.FormDataContentType()
}

func pairCases(t *testing.T) map[spec.Pair]pairCase {
	img := pngBytes(t, testImage(40, 30, 5))
	f32 := make([]byte, 0, 4*20*30)
	for i := 0; i < 20*30; i++ {
		f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(i%17)*0.25-1))
	}
	arr := npyOf(t, "float32", []int{20, 30}, f32)
	mpArr, mpArrCT := multipartFile(t, "array", "a.npy", npyMediaType, arr)
	csv := []byte("1,2.5,3\n4,5,-6\n")
	notes := []byte("first line\nsecond line\nthird\n")
	mpPNG, mpPNGCT := multipartFile(t, "file", "photos/pic.png", "image/png", img)
	mpCSV, mpCSVCT := multipartFile(t, "file", "m.csv", "", csv)

	imageIn := func(ct string, body []byte) pairCase {
		return pairCase{contentType: ct, body: body, oracleIn: img, inputSummary: "PNG 64x64 RGB"}
	}
	numpyIn := func(ct string, body []byte) pairCase {
		return pairCase{contentType: ct, body: body, oracleIn: arr, inputSummary: "NPY float32 (64, 64)"}
	}
	jsonIn := func(v any, summary string) pairCase {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return pairCase{contentType: "application/json", body: b, oracleIn: b, inputSummary: summary}
	}
	return map[spec.Pair]pairCase{
		{In: spec.Image, Out: spec.Image}: imageIn("image/png", img),
		{In: spec.Image, Out: spec.Numpy}: func() pairCase {
			c := imageIn("image/png", img)
			c.check = func(t *testing.T, ct string, body []byte) {
				v, err := decodeNPY(body)
				require.NoError(t, err)
				require.Equal(t, []int{3, 256}, v.Shape)
			}
			return c
		}(),
		{In: spec.Image, Out: spec.JSON}: imageIn("application/octet-stream", img),
		{In: spec.Image, Out: spec.File}: func() pairCase {
			mp, mct := multipartBody(t, "image", img)
			c := imageIn(mct, mp)
			c.check = func(t *testing.T, ct string, body []byte) {
				require.Equal(t, "image/jpeg", ct)
				cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
				require.NoError(t, err)
				require.Equal(t, "jpeg", format)
				require.Equal(t, [2]int{40, 30}, [2]int{cfg.Width, cfg.Height})
			}
			return c
		}(),
		{In: spec.Numpy, Out: spec.Image}: numpyIn(npyMediaType, arr),
		{In: spec.Numpy, Out: spec.Numpy}: numpyIn("application/octet-stream", arr),
		{In: spec.Numpy, Out: spec.JSON}:  numpyIn(mpArrCT, mpArr),
		{In: spec.Numpy, Out: spec.File}:  numpyIn("", arr),
		{In: spec.JSON, Out: spec.Image}:  jsonIn(map[string]any{"width": 40, "height": 30, "color": []int{10, 200, 30}}, `{"width": 64, "height": 48, "color": [255, 128, 0]}`),
		{In: spec.JSON, Out: spec.Numpy}:  jsonIn(map[string]any{"values": [][]float64{{1, 2}, {3, 4.5}}, "scale": 2}, `{"values": [[1, 2, 3], [4, 5, 6]], "scale": 0.5}`),
		{In: spec.JSON, Out: spec.JSON}: func() pairCase {
			c := jsonIn(map[string]any{"text": "héllo wörld, foo"}, `{"text": "The quick brown fox jumps over the lazy dog"}`)
			c.check = func(t *testing.T, ct string, body []byte) {
				require.JSONEq(t, `{"characters": 16, "words": 3, "longest_word": "wörld,", "upper": "HÉLLO WÖRLD, FOO"}`, string(body))
			}
			return c
		}(),
		{In: spec.JSON, Out: spec.File}: func() pairCase {
			c := jsonIn(map[string]any{"columns": []string{"a", "b"}, "rows": []any{[]any{1, "x"}, []any{2, "y,z"}}},
				`{"columns": ["name", "score"], "rows": [["alice", 3], ["bob", 5]]}`)
			c.check = func(t *testing.T, ct string, body []byte) {
				require.Equal(t, "text/csv", ct)
				require.Equal(t, "a,b\n1,x\n2,\"y,z\"\n", string(body))
			}
			return c
		}(),
		{In: spec.File, Out: spec.Image}: {contentType: mpPNGCT, body: mpPNG, oracleIn: img, fileName: "pic.png", fileType: "image/png",
			inputSummary: `file "sample.png": PNG 64x64 RGB`},
		{In: spec.File, Out: spec.Numpy}: {contentType: mpCSVCT, body: mpCSV, oracleIn: csv, fileName: "m.csv", fileType: "text/csv",
			inputSummary: `file "sample.csv": text/csv, 12 bytes: "1,2,3\n4,5,6\n"`},
		{In: spec.File, Out: spec.JSON}: {contentType: "text/plain", body: notes, query: "?filename=" + "..%2Fnotes%20%E2%80%AE.txt",
			oracleIn: notes, fileName: "notes .txt", fileType: "text/plain",
			inputSummary: `file "notes.txt": text/plain, 23 bytes: "first line\nsecond line\n"`,
			check: func(t *testing.T, ct string, body []byte) {
				var m map[string]any
				require.NoError(t, json.Unmarshal(body, &m))
				require.Equal(t, "notes .txt", m["name"], "the path and the bidi override are gone")
				require.Equal(t, 3.0, m["lines"])
			}},
		{In: spec.File, Out: spec.File}: {contentType: "application/octet-stream", body: notes, oracleIn: notes, fileName: "ünïcode.txt", fileType: "text/plain; charset=utf-8",
			inputSummary: `file "notes.txt": text/plain, 23 bytes: "first line\nsecond line\n"`},
	}
}

// TestAllPairs serves each generated skeleton as it is, for all 16 API types:
// Test Code (SelfTest) must pass, a direct request must answer what predict
// computes on the same input without the server, and /openapi.json must
// describe the type's request and response.
func TestAllPairs(t *testing.T) {
	requirePython(t)
	cases := pairCases(t)
	require.Len(t, spec.SupportedPairs, 16)
	for pair := range spec.SupportedPairs {
		c, ok := cases[pair]
		require.True(t, ok, "no case for %s", pair)
		t.Run(pair.String(), func(t *testing.T) {
			t.Parallel()
			src, err := templates.Skeleton(pair.In, pair.Out)
			require.NoError(t, err)
			dir := codeDir(t, src)
			ts := startServer(t, dir, pair.In, pair.Out, nil)
			ts.waitReady(t)

			res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
			require.NoError(t, err)
			require.True(t, res.OK, "%+v", res)
			require.Equal(t, c.inputSummary, res.InputSummary)
			prefix := map[spec.IOType]string{spec.Image: "PNG ", spec.Numpy: "NPY ", spec.JSON: "{", spec.File: `file "`}[pair.Out]
			require.True(t, strings.HasPrefix(res.Summary, prefix), "summary %q", res.Summary)
			t.Logf("Test Code: %s -> %s", res.InputSummary, res.Summary)

			req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict"+c.query, bytes.NewReader(c.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+testToken)
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			if pair.In == spec.File && c.query == "" && !strings.HasPrefix(c.contentType, "multipart/") {
				req.Header.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": c.fileName}))
			}
			resp, err := ts.Client.Do(req)
			require.NoError(t, err)
			var out bytes.Buffer
			_, err = out.ReadFrom(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, out.String())
			ct := resp.Header.Get("Content-Type")

			want := runOracle(t, dir, pair, c)
			switch pair.Out {
			case spec.Image:
				require.Equal(t, "image/png", ct)
				wantPix, err := decodeNPY(want)
				require.NoError(t, err)
				requirePixels(t, wantPix, decodePNG(t, out.Bytes()))
			case spec.Numpy:
				require.Equal(t, npyMediaType, ct)
				require.Equal(t, want, out.Bytes(), "the .npy answer is what np.save writes for predict's array")
			case spec.JSON:
				require.Equal(t, "application/json", ct)
				require.JSONEq(t, string(want), out.String())
			case spec.File:
				name := oracleName(t, dir)
				_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
				require.NoError(t, err)
				require.Equal(t, name, params["filename"])
				require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
				require.Equal(t, want, out.Bytes())
			}
			if c.check != nil {
				c.check(t, mediaType(ct), out.Bytes())
			}

			// The endpoint's OpenAPI document describes this type, with examples.
			doc := getOpenAPI(t, ts)
			post := doc["paths"].(map[string]any)["/predict"].(map[string]any)["post"].(map[string]any)
			reqContent := post["requestBody"].(map[string]any)["content"].(map[string]any)
			respContent := post["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)
			wantReq := map[spec.IOType][]string{
				spec.Image: {"image/png", "multipart/form-data", "application/json"},
				spec.Numpy: {npyMediaType, "multipart/form-data"},
				spec.JSON:  {"application/json"},
				spec.File:  {"multipart/form-data", "application/octet-stream"},
			}[pair.In]
			for _, mt := range wantReq {
				require.Contains(t, reqContent, mt)
			}
			wantResp := map[spec.IOType]string{spec.Image: "image/png", spec.Numpy: npyMediaType, spec.JSON: "application/json", spec.File: "*/*"}[pair.Out]
			require.Contains(t, respContent, wantResp)
			// Binary bodies (images, .npy) are described in words: an Example
			// Object needs a value, and their bytes are no JSON string.
			require.True(t, hasExamples(reqContent) || allBinary(reqContent), "request examples: %v", reqContent)
			require.True(t, hasExamples(respContent) || allBinary(respContent), "response examples: %v", respContent)
			require.Contains(t, post["responses"].(map[string]any)["400"].(map[string]any)["description"], CodeEmptyBody)
		})
	}
}

func hasExamples(content map[string]any) bool {
	for _, v := range content {
		m, _ := v.(map[string]any)
		if m["example"] != nil || m["examples"] != nil {
			return true
		}
	}
	return false
}

// allBinary says whether every media type of content is raw bytes or a
// multipart file upload.
func allBinary(content map[string]any) bool {
	for mt, v := range content {
		if mt == "multipart/form-data" {
			continue
		}
		m, _ := v.(map[string]any)
		schema, _ := m["schema"].(map[string]any)
		if schema["format"] != "binary" {
			return false
		}
	}
	return len(content) > 0
}

func getOpenAPI(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	resp, err := ts.Client.Get(ts.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	require.Equal(t, "3.0.3", doc["openapi"])
	return doc
}

// runOracle computes the expected answer with oraclePy and returns its bytes.
func runOracle(t *testing.T, dir string, pair spec.Pair, c pairCase) []byte {
	t.Helper()
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in"), filepath.Join(dir, "oracle-out")
	require.NoError(t, os.WriteFile(in, c.oracleIn, 0o644))
	if pair.In == spec.File {
		meta, _ := json.Marshal(map[string]string{"name": c.fileName, "content_type": c.fileType})
		require.NoError(t, os.WriteFile(in+".meta", meta, 0o644))
	}
	cmd := exec.Command(testPython, "-c", oraclePy, dir, string(pair.In), in, string(pair.Out), out)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "oracle: %s", b)
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	return want
}

func oracleName(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "oracle-out.name"))
	require.NoError(t, err)
	return string(b)
}

// requirePixels compares a PNG with uint8 pixels (h, w) or (h, w, 3|4).
func requirePixels(t *testing.T, want Value, got image.Image) {
	t.Helper()
	require.Equal(t, "uint8", want.DType)
	h, w := want.Shape[0], want.Shape[1]
	c := 1
	if len(want.Shape) == 3 {
		c = want.Shape[2]
	}
	require.Equal(t, image.Rect(0, 0, w, h), got.Bounds())
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := want.Data[(y*w+x)*c:][:c]
			var wc color.Color
			switch c {
			case 1:
				wc = color.Gray{p[0]}
			case 3:
				wc = color.NRGBA{p[0], p[1], p[2], 255}
			default:
				wc = color.NRGBA{p[0], p[1], p[2], p[3]}
			}
			require.Equal(t, color.NRGBAModel.Convert(wc), color.NRGBAModel.Convert(got.At(x, y)), fmt.Sprintf("pixel %d,%d", x, y))
		}
	}
}

// mediaType is ct without its parameters (ct itself when unparseable).
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}
