package inference

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"github.com/algocloud/algocloud/inference/inferapi"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// postWith sends body to /predict with extra headers and a query string.
func (ts *testServer) postWith(t *testing.T, query, contentType string, hdr map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict"+query, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b.Bytes()
}

// badCase is a request the server must refuse; a good request follows each
// to show that the server stays up.
type badCase struct {
	name, query, ct string
	hdr             map[string]string
	body            []byte
	status          int
	code            string
}

func runBadCases(t *testing.T, ts *testServer, cases []badCase, good func(t *testing.T)) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := ts.postWith(t, c.query, c.ct, c.hdr, c.body)
			requireError(t, c.status, c.code, status, body)
			good(t)
		})
	}
}

const numpyIdentity = `
import numpy as np

class AAI:
    def predict(self, x):
        assert isinstance(x, np.ndarray), type(x)
        assert x.dtype.isnative, x.dtype
        assert x.flags.c_contiguous and x.flags.writeable, x.flags
        return x

    def testing_input_data(self):
        return np.arange(6, dtype=np.int16).reshape(2, 3)
`

// TestNumpyRoundTrip sends every file numpy wrote (each dtype; C and Fortran
// order; big-endian; format versions 1, 2 and 3) to an identity predict: the
// answer is what np.save writes for the array, and the array predict saw was
// native, C-contiguous and writable.
func TestNumpyRoundTrip(t *testing.T) {
	dir, fixtures := numpyFixtures(t)
	ts := startServer(t, codeDir(t, numpyIdentity), spec.Numpy, spec.Numpy, nil)
	ts.waitReady(t)
	canonical := map[string][]byte{}
	for _, f := range fixtures {
		if f.Canonical {
			b, err := os.ReadFile(filepath.Join(dir, f.NPY))
			require.NoError(t, err)
			canonical[f.Raw] = b
		}
	}
	for i, f := range fixtures {
		file, err := os.ReadFile(filepath.Join(dir, f.NPY))
		require.NoError(t, err)
		ct := []string{npyMediaType, "application/octet-stream", ""}[i%3]
		body := file
		if i%4 == 3 {
			body, ct = multipartFile(t, "array", f.NPY, "", file)
		}
		status, hdr, out := ts.postWith(t, "", ct, nil, body)
		require.Equal(t, http.StatusOK, status, "%s: %s", f.NPY, out)
		require.Equal(t, npyMediaType, hdr.Get("Content-Type"))
		require.Equal(t, canonical[f.Raw], out, f.NPY)
	}
	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	require.Equal(t, "NPY int16 (2, 3)", res.InputSummary)
	require.Equal(t, "NPY int16 (2, 3)", res.Summary)
}

func TestNumpyInputRefuses(t *testing.T) {
	ts := startServer(t, codeDir(t, numpyIdentity), spec.Numpy, spec.Numpy, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	ts.waitReady(t)
	good := npyFile(1, npyHeader("'<f4'", "False", "(2, 3)"), make([]byte, 24))
	goodRequest := func(t *testing.T) {
		status, _, out := ts.postWith(t, "", npyMediaType, nil, good)
		require.Equal(t, http.StatusOK, status, string(out))
	}
	var cases []badCase
	for _, c := range badNPYCases() {
		cases = append(cases, badCase{name: c.name, ct: npyMediaType, body: c.body, status: 400, code: c.code})
	}
	mpNoArray, mpCT := multipartFile(t, "image", "a.npy", "", good)
	cases = append(cases,
		badCase{name: "empty body", ct: npyMediaType, status: 400, code: CodeEmptyBody},
		badCase{name: "body over the limit", ct: npyMediaType, body: npyFile(1, npyHeader("'|u1'", "False", "(2097152,)"), make([]byte, 2<<20)), status: 413, code: CodeBodyTooLarge},
		badCase{name: "wrong content type", ct: "image/png", body: good, status: 415, code: CodeUnsupportedMedia},
		badCase{name: "json content type", ct: "application/json", body: []byte("[1, 2]"), status: 415, code: CodeUnsupportedMedia},
		badCase{name: "multipart without array", ct: mpCT, body: mpNoArray, status: 400, code: CodeInvalidMultipart},
	)
	runBadCases(t, ts, cases, goodRequest)
}

const jsonEcho = `
import json

class AAI:
    def predict(self, x):
        return {"type": type(x).__name__, "value": x, "dumped": json.dumps(x, ensure_ascii=False)}

    def testing_input_data(self):
        return {"a": [1, 2.5, None, True, "é"]}
`

func TestJSONInput(t *testing.T) {
	ts := startServer(t, codeDir(t, jsonEcho), spec.JSON, spec.JSON, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	ts.waitReady(t)
	type echo struct {
		Type   string          `json:"type"`
		Value  json.RawMessage `json:"value"`
		Dumped string          `json:"dumped"`
	}
	cases := []struct {
		name, ct, body, typ, dumped string
	}{
		{"object", "application/json", `{"a": {"b": [1, 2]}, "s": "x"}`, "dict", `{"a": {"b": [1, 2]}, "s": "x"}`},
		{"array", "application/json", `[1, "two", 3.5, null]`, "list", `[1, "two", 3.5, null]`},
		{"string", "application/json", `"héllo \u263a"`, "str", `"héllo ☺"`},
		{"big int", "application/json", `1180591620717411303424`, "int", `1180591620717411303424`},
		{"float", "application/json; charset=utf-8", `2.5e-3`, "float", `0.0025`},
		{"true", "", `true`, "bool", `true`},
		{"null", "application/vnd.api+json", `null`, "NoneType", `null`},
		{"byte order mark", "application/json", "\ufeff{\"k\": 1}", "dict", `{"k": 1}`},
		{"padded", "text/json", " \n [ ] \n", "list", `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, out := ts.postWith(t, "", c.ct, nil, []byte(c.body))
			require.Equal(t, http.StatusOK, status, string(out))
			require.Equal(t, "application/json", hdr.Get("Content-Type"))
			var e echo
			require.NoError(t, json.Unmarshal(out, &e))
			require.Equal(t, c.typ, e.Type)
			require.Equal(t, c.dumped, e.Dumped)
		})
	}
	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	require.Equal(t, `{"a": [1, 2.5, null, true, "é"]}`, res.InputSummary)

	goodRequest := func(t *testing.T) {
		status, _, out := ts.postWith(t, "", "application/json", nil, []byte(`{"ok": true}`))
		require.Equal(t, http.StatusOK, status, string(out))
	}
	runBadCases(t, ts, []badCase{
		{name: "invalid JSON", ct: "application/json", body: []byte(`{"a": `), status: 400, code: CodeInvalidJSON},
		{name: "trailing garbage", ct: "application/json", body: []byte(`{} x`), status: 400, code: CodeInvalidJSON},
		{name: "NaN", ct: "application/json", body: []byte(`[NaN]`), status: 400, code: CodeInvalidJSON},
		{name: "single quotes", ct: "application/json", body: []byte(`{'a': 1}`), status: 400, code: CodeInvalidJSON},
		{name: "invalid UTF-8", ct: "application/json", body: []byte("\"\xff\xfe\""), status: 400, code: CodeInvalidJSON},
		{name: "nested too deep", ct: "application/json", body: []byte(strings.Repeat("[", 600) + strings.Repeat("]", 600)), status: 400, code: CodeInvalidJSON},
		{name: "integer too long", ct: "application/json", body: []byte(strings.Repeat("9", 5000)), status: 400, code: CodeInvalidJSON},
		{name: "empty body", ct: "application/json", status: 400, code: CodeEmptyBody},
		{name: "whitespace only", ct: "application/json", body: []byte(" \n"), status: 400, code: CodeEmptyBody},
		{name: "body over the limit", ct: "application/json", body: []byte(`"` + strings.Repeat("a", 2<<20) + `"`), status: 413, code: CodeBodyTooLarge},
		{name: "wrong content type", ct: "text/plain", body: []byte(`{}`), status: 415, code: CodeUnsupportedMedia},
		{name: "form content type", ct: "application/x-www-form-urlencoded", body: []byte(`{}`), status: 415, code: CodeUnsupportedMedia},
		{name: "unreadable content type", ct: "application/json; ;", body: []byte(`{}`), status: 415, code: CodeUnsupportedMedia},
	}, goodRequest)
}

const fileEcho = `
import hashlib

class AAI:
    def predict(self, x):
        return {"name": x.name, "content_type": x.content_type, "size": len(x.data),
                "sha256": hashlib.sha256(x.data).hexdigest(), "type": type(x.data).__name__,
                "repr": repr(x)}

    def testing_input_data(self):
        return ("hello.txt", "hello\n")
`

func TestFileInput(t *testing.T) {
	ts := startServer(t, codeDir(t, fileEcho), spec.File, spec.JSON, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	ts.waitReady(t)
	type echo struct {
		Name        string `json:"name"`
		ContentType string `json:"content_type"`
		Size        int    `json:"size"`
		SHA256      string `json:"sha256"`
		Type        string `json:"type"`
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	png := pngBytes(t, testImage(3, 2, 0))
	long := strings.Repeat("n", 300) + ".txt"
	type fileCase struct {
		name, query, ct string
		hdr             map[string]string
		multipart       string // the multipart filename; "" sends a raw body
		partType        string
		data            []byte
		wantName        string
		wantType        string
	}
	cases := []fileCase{
		{name: "multipart", multipart: "data.bin", partType: "application/x-custom", data: all, wantName: "data.bin", wantType: "application/x-custom"},
		{name: "multipart path traversal", multipart: "../../etc/passwd", data: []byte("root:x:0:0\n"), wantName: "passwd", wantType: "text/plain; charset=utf-8"},
		{name: "multipart windows path", multipart: `C:\Users\me\report.pdf`, partType: "application/octet-stream", data: []byte("%PDF-1.4\n"), wantName: "report.pdf", wantType: "application/pdf"},
		{name: "raw with query name", query: "?filename=table.csv", ct: "application/octet-stream", data: []byte("a,b\n"), wantName: "table.csv", wantType: "text/csv"},
		{name: "raw with content disposition", ct: "text/plain", hdr: map[string]string{"Content-Disposition": `attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt`},
			data: []byte("cv"), wantName: "résumé 2024.txt", wantType: "text/plain"},
		{name: "raw sniffed", query: "?filename=picture", data: png, wantName: "picture", wantType: "image/png"},
		{name: "control characters", query: "?filename=" + url.QueryEscape("a\x01b\x7f\u200f.txt"), ct: "application/x-www-form-urlencoded", data: []byte("x"), wantName: "ab.txt", wantType: "text/plain; charset=utf-8"},
		{name: "reserved characters", query: "?filename=" + url.QueryEscape(`a:b"c<d>|e?*.txt`), data: []byte("x"), wantName: "a_b_c_d__e__.txt", wantType: "text/plain; charset=utf-8"},
		{name: "long name", query: "?filename=" + long, data: []byte("x"), wantName: strings.Repeat("n", 251) + ".txt", wantType: "text/plain; charset=utf-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, ct := c.data, c.ct
			if c.multipart != "" {
				body, ct = multipartFile(t, "file", c.multipart, c.partType, c.data)
			}
			status, _, out := ts.postWith(t, c.query, ct, c.hdr, body)
			require.Equal(t, http.StatusOK, status, string(out))
			var e echo
			require.NoError(t, json.Unmarshal(out, &e))
			sum := sha256.Sum256(c.data)
			require.Equal(t, echo{Name: c.wantName, ContentType: c.wantType, Size: len(c.data), SHA256: hex.EncodeToString(sum[:]), Type: "bytes"}, e)
		})
	}
	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	require.Equal(t, `file "hello.txt": text/plain, 6 bytes: "hello\n"`, res.InputSummary)
	require.Contains(t, res.Summary, `"name": "hello.txt"`)

	goodRequest := func(t *testing.T) {
		status, _, out := ts.postWith(t, "?filename=ok.txt", "text/plain", nil, []byte("ok"))
		require.Equal(t, http.StatusOK, status, string(out))
	}
	noName, noNameCT := multipartBodyNoFilename(t)
	noFile, noFileCT := multipartFile(t, "upload", "a.txt", "", []byte("x"))
	emptyFile, emptyFileCT := multipartFile(t, "file", "a.txt", "", nil)
	runBadCases(t, ts, []badCase{
		{name: "raw without a name", ct: "text/plain", body: []byte("x"), status: 400, code: CodeMissingFilename},
		{name: "empty filename parameter", query: "?filename=", body: []byte("x"), status: 400, code: CodeMissingFilename},
		{name: "name of dots", query: "?filename=..", body: []byte("x"), status: 400, code: CodeBadFilename},
		{name: "name of a folder", query: "?filename=a%2F", body: []byte("x"), status: 400, code: CodeBadFilename},
		{name: "name of control characters", query: "?filename=%01%02%E2%80%AE", body: []byte("x"), status: 400, code: CodeBadFilename},
		{name: "multipart field without filename", ct: noNameCT, body: noName, status: 400, code: CodeMissingFilename},
		{name: "multipart without file field", ct: noFileCT, body: noFile, status: 400, code: CodeInvalidMultipart},
		{name: "multipart without boundary", ct: "multipart/form-data", body: []byte("x"), status: 400, code: CodeInvalidMultipart},
		{name: "empty multipart file", ct: emptyFileCT, body: emptyFile, status: 400, code: CodeEmptyBody},
		{name: "empty body", query: "?filename=a.txt", status: 400, code: CodeEmptyBody},
		{name: "body over the limit", query: "?filename=a.bin", body: make([]byte, 2<<20), status: 413, code: CodeBodyTooLarge},
		{name: "unreadable content type", query: "?filename=a.txt", ct: "text/plain; ;", body: []byte("x"), status: 415, code: CodeUnsupportedMedia},
	}, goodRequest)
}

func multipartBodyNoFilename(t *testing.T) ([]byte, string) {
	body := "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ncontent\r\n--b--\r\n"
	return []byte(body), "multipart/form-data; boundary=b"
}

const fileOutputs = `
import io
import numpy as np

class Out:
    def __init__(self, name, data):
        self.name, self.data = name, data

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
                    "0000000a49444154789c6360000000020001e221bc330000000049454e44ae426082")

class AAI:
    def predict(self, x):
        m = x["mode"]
        if m == "tuple":
            return ("report.csv", "a,b\n1,2\n")
        if m == "tuple3":
            return ("blob.dat", PNG, "image/png")
        if m == "dict":
            return {"name": "x.json", "data": b"{}"}
        if m == "object":
            return Out("notes.md", b"# title\n")
        if m == "bytes":
            return PNG
        if m == "unicode":
            return ("résumé 2024.txt", "hi")
        if m == "traversal":
            return ("../../x.sh", b"echo hi\n")
        if m == "noext":
            return ("README", b"hello there\n")
        if m == "empty":
            return ("empty.txt", b"")
        if m == "int":
            return 42
        if m == "badname":
            return (5, b"x")
        if m == "baddata":
            return ("a.txt", 5)
        raise ValueError(m)

    def testing_input_data(self):
        return {"mode": "tuple"}
`

func TestFileOutput(t *testing.T) {
	ts := startServer(t, codeDir(t, fileOutputs), spec.JSON, spec.File, nil)
	ts.waitReady(t)
	pngData, err := hex.DecodeString("89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082")
	require.NoError(t, err)
	cases := []struct {
		mode, name, ct string
		data           []byte
	}{
		{"tuple", "report.csv", "text/csv", []byte("a,b\n1,2\n")},
		{"tuple3", "blob.dat", "image/png", pngData},
		{"dict", "x.json", "application/json", []byte("{}")},
		{"object", "notes.md", "text/markdown", []byte("# title\n")},
		{"bytes", "output.png", "image/png", pngData},
		{"unicode", "résumé 2024.txt", "text/plain; charset=utf-8", []byte("hi")},
		{"traversal", "x.sh", "", []byte("echo hi\n")},
		{"noext", "README", "text/plain; charset=utf-8", []byte("hello there\n")},
		{"empty", "empty.txt", "text/plain; charset=utf-8", []byte{}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			status, hdr, out := ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "`+c.mode+`"}`))
			require.Equal(t, http.StatusOK, status, string(out))
			disp, params, err := mime.ParseMediaType(hdr.Get("Content-Disposition"))
			require.NoError(t, err)
			require.Equal(t, "attachment", disp)
			require.Equal(t, c.name, params["filename"])
			if c.ct != "" {
				require.Equal(t, c.ct, hdr.Get("Content-Type"))
			}
			require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
			require.Equal(t, c.data, out)
		})
	}
	t.Run("bad outputs", func(t *testing.T) {
		for mode, want := range map[string]string{"int": "expected a file", "badname": "file name must be a str", "baddata": "file data must be bytes"} {
			status, _, out := ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "`+mode+`"}`))
			e := requireError(t, http.StatusInternalServerError, CodeBadOutput, status, out)
			require.Contains(t, e.Message, want)
			status, _, out = ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "tuple"}`))
			require.Equal(t, http.StatusOK, status, string(out))
		}
	})
	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	require.Equal(t, "report.csv", res.FileName)
	require.Equal(t, `file "report.csv": text/csv, 8 bytes: "a,b\n1,2\n"`, res.Summary)
}

const numpyOutputs = `
import io
import numpy as np

class AAI:
    def predict(self, x):
        m = x["mode"]
        if m == "list":
            return [[1, 2], [3, 4]]
        if m == "scalar":
            return 3.5
        if m == "numpy scalar":
            return np.float32(1.5)
        if m == "bool":
            return np.array([True, False, True])
        if m == "fortran big-endian":
            return np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
        if m == "strided":
            return np.arange(10, dtype=np.uint8)[::3]
        if m == "npy bytes":
            buf = io.BytesIO()
            np.save(buf, np.asfortranarray(np.arange(6, dtype=">f8").reshape(3, 2)))
            return buf.getvalue()
        if m == "complex":
            return np.zeros(3, np.complex64)
        if m == "object":
            return np.array([{}, None], dtype=object)
        if m == "longdouble":
            return np.zeros(2, np.longdouble)
        if m == "string":
            return "hello"
        if m == "bad bytes":
            return b"not an npy file"
        raise ValueError(m)

    def testing_input_data(self):
        return {"mode": "list"}
`

func TestNumpyOutput(t *testing.T) {
	ts := startServer(t, codeDir(t, numpyOutputs), spec.JSON, spec.Numpy, nil)
	ts.waitReady(t)
	i32 := func(vals ...int32) []byte {
		var b []byte
		for _, v := range vals {
			b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
		}
		return b
	}
	i64 := func(vals ...int64) []byte {
		var b []byte
		for _, v := range vals {
			for k := 0; k < 8; k++ {
				b = append(b, byte(v>>(8*k)))
			}
		}
		return b
	}
	f64 := func(vals ...float64) []byte {
		var b []byte
		for _, v := range vals {
			b = append(b, npyFloat64(v)...)
		}
		return b
	}
	cases := []struct {
		mode string
		want Value
	}{
		{"list", Value{Kind: KindTensor, DType: "int64", Shape: []int{2, 2}, Data: i64(1, 2, 3, 4)}},
		{"scalar", Value{Kind: KindTensor, DType: "float64", Shape: []int{}, Data: f64(3.5)}},
		{"numpy scalar", Value{Kind: KindTensor, DType: "float32", Shape: []int{}, Data: []byte{0, 0, 0xc0, 0x3f}}},
		{"bool", Value{Kind: KindTensor, DType: "bool", Shape: []int{3}, Data: []byte{1, 0, 1}}},
		{"fortran big-endian", Value{Kind: KindTensor, DType: "int32", Shape: []int{2, 3}, Data: i32(0, 1, 2, 3, 4, 5)}},
		{"strided", Value{Kind: KindTensor, DType: "uint8", Shape: []int{4}, Data: []byte{0, 3, 6, 9}}},
		{"npy bytes", Value{Kind: KindTensor, DType: "float64", Shape: []int{3, 2}, Data: f64(0, 1, 2, 3, 4, 5)}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			status, hdr, out := ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "`+c.mode+`"}`))
			require.Equal(t, http.StatusOK, status, string(out))
			require.Equal(t, npyMediaType, hdr.Get("Content-Type"))
			want, err := encodeNPY(c.want)
			require.NoError(t, err)
			require.Equal(t, want, out)
		})
	}
	t.Run("bad outputs", func(t *testing.T) {
		for mode, want := range map[string]string{"complex": "complex64", "object": "object", "longdouble": "float128",
			"string": "expected a numpy array", "bad bytes": "not a usable .npy file"} {
			status, _, out := ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "`+mode+`"}`))
			e := requireError(t, http.StatusInternalServerError, CodeBadOutput, status, out)
			require.Contains(t, e.Message, want)
			status, _, out = ts.postWith(t, "", "application/json", nil, []byte(`{"mode": "list"}`))
			require.Equal(t, http.StatusOK, status, string(out))
		}
	})
}

func npyFloat64(v float64) []byte {
	return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
}

func TestSanitizeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt": "a.txt", "../../etc/passwd": "passwd", `..\..\boot.ini`: "boot.ini", "dir/": "", "..": "", ".": "",
		" spaced name.csv ": "spaced name.csv", ".hidden": ".hidden", "a\x00b": "ab", "bad\xffutf8.txt": "bad_utf8.txt",
		"evil\u202egnp.exe": "evilgnp.exe", "日本語.txt": "日本語.txt", "x:y.txt": "x_y.txt",
		strings.Repeat("é", 200) + ".png": strings.Repeat("é", 125) + ".png",
	} {
		require.Equal(t, want, sanitizeFileName(in), "%q", in)
	}
}

func TestSummarize(t *testing.T) {
	npy, err := encodeNPY(Value{Kind: KindTensor, DType: "uint8", Shape: []int{2, 2, 3}, Data: make([]byte, 12)})
	require.NoError(t, err)
	mp, mct := multipartFile(t, "file", "in.png", "image/png", pngBytes(t, testImage(5, 4, 0)))
	for _, c := range []struct{ ct, body, want string }{
		{npyMediaType, string(npy), "NPY uint8 (2, 2, 3)"},
		{npyMediaType, "nope", "application/x-npy, 4 bytes (undecodable: 400 not_npy: the bytes are not a .npy file (no \\x93NUMPY magic): save the array with numpy.save)"},
		{mct, string(mp), `field "note": text/plain, 24 bytes: "other fields are skipped"; file "in.png": PNG 5x4 RGB`},
		{"text/csv; charset=utf-8", "a,b\n", `text/csv, 4 bytes: "a,b\n"`},
		{"application/gzip", "\x1f\x8b", "application/gzip, 2 bytes"},
		{"application/json", ` {"a": 1} `, `{"a": 1}`},
	} {
		require.Equal(t, c.want, inferapi.Summarize(c.ct, []byte(c.body)))
	}
}

func TestCheckJSON(t *testing.T) {
	require.NoError(t, checkJSON([]byte(`{"s": "[[[[\"]]]]", "n": 12345}`)), "brackets and digits inside strings do not count")
	require.NoError(t, checkJSON([]byte(strings.Repeat("[", maxJSONDepth)+strings.Repeat("]", maxJSONDepth))))
	require.Equal(t, CodeInvalidJSON, codeOf(checkJSON([]byte(strings.Repeat("[", maxJSONDepth+1)+strings.Repeat("]", maxJSONDepth+1)))))
	require.NoError(t, checkJSON([]byte(`"`+strings.Repeat("9", 10000)+`"`)), "digits in a string are fine")
	require.NoError(t, checkJSON([]byte("["+strings.Repeat("1,", 5000)+"1]")))
	require.NoError(t, checkJSON([]byte("0."+strings.Repeat("1", 5000))), "Python reads long floats")
	require.NoError(t, checkJSON([]byte("[1e-400, -1.5E+300, -"+strings.Repeat("9", maxJSONDigits)+"]")))
	require.Equal(t, CodeInvalidJSON, codeOf(checkJSON([]byte("[-"+strings.Repeat("9", maxJSONDigits+1)+"]"))))
	require.Equal(t, CodeInvalidJSON, codeOf(checkJSON([]byte(`{"x": 1e400}`))))
}
