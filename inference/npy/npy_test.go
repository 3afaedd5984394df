package npy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// npyFixturesPy writes the .npy files numpy itself writes for every dtype
// and a range of shapes, next to the arrays' canonical bytes, and a
// manifest (package inference's tests run it too).
const npyFixturesPy = "testdata/npy_fixtures.py"

type npyFixture struct {
	NPY       string `json:"npy"`
	Raw       string `json:"raw"`
	DType     string `json:"dtype"`
	Shape     []int  `json:"shape"`
	Canonical bool   `json:"canonical"`
}

// testPython is Debian's Python with numpy (scripts/setup.sh).
const testPython = "/usr/bin/python3"

// requirePython fails (not skips) without Debian's Python and numpy: that
// numpy agrees with Decode and Encode is the point of these tests.
func requirePython(t testing.TB) {
	t.Helper()
	require.NoError(t, exec.Command(testPython, "-c", "import numpy").Run(),
		"%s with numpy is needed: run scripts/setup.sh", testPython)
}

// numpyFixtures runs npyFixturesPy once per test binary.
func numpyFixtures(t *testing.T) (string, []npyFixture) {
	t.Helper()
	requirePython(t)
	dir := t.TempDir()
	out, err := exec.Command(testPython, npyFixturesPy, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m []npyFixture
	require.NoError(t, json.Unmarshal(b, &m))
	require.Greater(t, len(m), 300)
	return dir, m
}

// TestAgainstNumpy decodes every file numpy wrote into the array's
// canonical bytes, and encodes them back into exactly what np.save writes.
func TestAgainstNumpy(t *testing.T) {
	dir, fixtures := numpyFixtures(t)
	canonical := map[string][]byte{}
	for _, f := range fixtures {
		if f.Canonical {
			b, err := os.ReadFile(filepath.Join(dir, f.NPY))
			require.NoError(t, err)
			canonical[f.Raw] = b
		}
	}
	for _, f := range fixtures {
		t.Run(f.NPY, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join(dir, f.NPY))
			require.NoError(t, err)
			raw, err := os.ReadFile(filepath.Join(dir, f.Raw))
			require.NoError(t, err)
			v, err := Decode(bytes.Clone(file))
			require.NoError(t, err)
			require.Equal(t, f.DType, v.DType)
			require.Equal(t, f.Shape, v.Shape)
			require.Equal(t, raw, v.Data, "little-endian C-order bytes")
			enc, err := Encode(v)
			require.NoError(t, err)
			require.Equal(t, canonical[f.Raw], enc, "byte for byte what np.save writes")
		})
	}
}

// TestEncodeLoadsInNumpy has numpy load what Encode wrote, including
// a header long enough to need format 2.0.
func TestEncodeLoadsInNumpy(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	write := func(name string, v Array) {
		b, err := Encode(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	write("scalar.npy", Array{DType: "float64", Data: binary.LittleEndian.AppendUint64(nil, 0x400c000000000000)})
	write("empty.npy", Array{DType: "int16", Shape: []int{0, 7}})
	shape := make([]int, 32)
	for i := range shape {
		shape[i] = 1
	}
	shape[31] = 3
	write("dims32.npy", Array{DType: "uint16", Shape: shape, Data: []byte{1, 0, 2, 0, 3, 0}})
	code := `
import sys, numpy as np
d = sys.argv[1]
a = np.load(d + "/scalar.npy"); assert a.shape == () and a.dtype == np.float64 and a == 3.5, a
a = np.load(d + "/empty.npy"); assert a.shape == (0, 7) and a.dtype == np.int16, a
a = np.load(d + "/dims32.npy"); assert a.shape == (1,) * 31 + (3,) and a.ravel().tolist() == [1, 2, 3], a
print("ok")
`
	out, err := exec.Command(testPython, "-c", code, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "ok", strings.TrimSpace(string(out)))
}

// npyFile builds a .npy file from a header text, padded like numpy's.
func npyFile(major byte, header string, data []byte) []byte {
	out := []byte(Magic)
	out = append(out, major, 0)
	h := header + "\n"
	if major == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(h)))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(h)))
	}
	out = append(out, h...)
	return append(out, data...)
}

func npyHeader(descr, fortran, shape string) string {
	return fmt.Sprintf("{'descr': %s, 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape)
}

// badCases are .npy files Decode refuses, with the kind of error.
func badCases() []struct {
	name string
	body []byte
	kind ErrorKind
} {
	good := npyFile(1, npyHeader("'<f4'", "False", "(2, 3)"), make([]byte, 24))
	hugeHeader := append([]byte(Magic), 2, 0)
	hugeHeader = binary.LittleEndian.AppendUint32(hugeHeader, 70000)
	hugeHeader = append(hugeHeader, bytes.Repeat([]byte{' '}, 70000)...)
	dims33 := "(" + strings.Repeat("1, ", 33) + ")"
	return []struct {
		name string
		body []byte
		kind ErrorKind
	}{
		{"empty", nil, KindEmpty},
		{"not npy", []byte("this is not an array"), KindNotNPY},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), KindNotNPY},
		{"magic only", []byte(Magic[:4]), KindBadHeader},
		{"truncated in header", good[:30], KindBadHeader},
		{"truncated in data", good[:len(good)-5], KindSizeMismatch},
		{"lying header", npyFile(1, npyHeader("'<f4'", "False", "(1000, 1000)"), make([]byte, 24)), KindSizeMismatch},
		{"trailing bytes", append(bytes.Clone(good), 0, 0, 0, 0), KindSizeMismatch},
		{"version 4.0", npyFile(4, npyHeader("'<f4'", "False", "(2, 3)"), make([]byte, 24)), KindBadHeader},
		{"header over 64 KiB", hugeHeader, KindHeaderTooLarge},
		{"complex", npyFile(1, npyHeader("'<c8'", "False", "(3,)"), make([]byte, 24)), KindUnsupportedDType},
		{"object", npyFile(1, npyHeader("'|O'", "False", "(3,)"), make([]byte, 24)), KindUnsupportedDType},
		{"unicode", npyFile(1, npyHeader("'<U2'", "False", "(3,)"), make([]byte, 24)), KindUnsupportedDType},
		{"structured", npyFile(1, npyHeader("[('a', '<i4'), ('b', '<f4')]", "False", "(3,)"), make([]byte, 24)), KindUnsupportedDType},
		{"datetime", npyFile(1, npyHeader("'<M8[ns]'", "False", "(3,)"), make([]byte, 24)), KindUnsupportedDType},
		{"longdouble", npyFile(1, npyHeader("'<f16'", "False", "(3,)"), make([]byte, 48)), KindUnsupportedDType},
		{"no byte order", npyFile(1, npyHeader("'|f4'", "False", "(3,)"), make([]byte, 12)), KindUnsupportedDType},
		{"absurd shape", npyFile(1, npyHeader("'<f4'", "False", "(1099511627776, 1099511627776)"), make([]byte, 24)), KindBadShape},
		{"absurd shape with a zero", npyFile(1, npyHeader("'|u1'", "False", "(0, 4611686018427387904, 4)"), nil), KindBadShape},
		{"negative dimension", npyFile(1, npyHeader("'<f4'", "False", "(-1, 6)"), make([]byte, 24)), KindBadShape},
		{"33 dimensions", npyFile(1, npyHeader("'<f4'", "False", dims33), make([]byte, 4)), KindBadShape},
		{"shape not a tuple", npyFile(1, npyHeader("'<f4'", "False", "[2, 3]"), make([]byte, 24)), KindBadHeader},
		{"shape of floats", npyFile(1, npyHeader("'<f4'", "False", "(2.0, 3)"), make([]byte, 24)), KindBadHeader},
		{"fortran_order not a bool", npyFile(1, npyHeader("'<f4'", "'no'", "(2, 3)"), make([]byte, 24)), KindBadHeader},
		{"missing key", npyFile(1, "{'descr': '<f4', 'shape': (2, 3), }", make([]byte, 24)), KindBadHeader},
		{"extra key", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", make([]byte, 24)), KindBadHeader},
		{"unterminated dict", npyFile(1, "{'descr': '<f4', 'fortran_order': False, ", make([]byte, 24)), KindBadHeader},
		{"code in header", npyFile(1, "__import__('os').system('true')", nil), KindBadHeader},
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.body)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, c.kind, e.Kind, "%v", err)
			require.NotEmpty(t, e.Message)
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	// Hand-written headers numpy also reads: other key order, no trailing comma,
	// double quotes, a one-element tuple, Python 2 longs, 1-byte types with any order.
	cases := []struct {
		header string
		data   []byte
		dtype  string
		shape  []int
		want   []byte
	}{
		{`{"shape": (2,), "fortran_order": False, "descr": "<u2"}`, []byte{1, 0, 2, 0}, "uint16", []int{2}, []byte{1, 0, 2, 0}},
		{`{'descr': '>u2', 'fortran_order': False, 'shape': (2L,)}`, []byte{0, 1, 0, 2}, "uint16", []int{2}, []byte{1, 0, 2, 0}},
		{`{'descr': '<u1', 'fortran_order': True, 'shape': (2, 3), }`, []byte{1, 4, 2, 5, 3, 6}, "uint8", []int{2, 3}, []byte{1, 2, 3, 4, 5, 6}},
		{`{'descr': '|b1', 'fortran_order': False, 'shape': (), }`, []byte{1}, "bool", []int{}, []byte{1}},
		{`{'descr': '>i1', 'fortran_order': False, 'shape': (1, ), }`, []byte{0xff}, "int8", []int{1}, []byte{0xff}},
	}
	for _, c := range cases {
		v, err := Decode(npyFile(1, c.header, c.data))
		require.NoError(t, err, c.header)
		require.Equal(t, Array{DType: c.dtype, Shape: c.shape, Data: c.want}, v, c.header)
	}
}

// FuzzDecode feeds arbitrary bytes to the .npy parser: it must never
// panic, refuse with an *Error of a known kind, and what it accepts must be
// a consistent array that survives encoding and decoding again unchanged.
func FuzzDecode(f *testing.F) {
	for _, seed := range []Array{
		{DType: "float32", Shape: []int{2, 3}, Data: make([]byte, 24)},
		{DType: "bool", Shape: []int{}, Data: []byte{1}},
		{DType: "uint16", Shape: []int{0, 5}},
		{DType: "int64", Shape: []int{1, 1, 2}, Data: make([]byte, 16)},
	} {
		b, err := Encode(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add(npyFile(1, npyHeader("'>f8'", "True", "(2, 2)"), make([]byte, 32)))
	f.Add(npyFile(3, npyHeader("'<i2'", "True", "(3, 1, 2)"), make([]byte, 12)))
	f.Add(npyFile(2, npyHeader("[('a', '<i4')]", "False", "(1,)"), make([]byte, 4)))
	for _, c := range badCases() {
		if len(c.body) < 4096 {
			f.Add(c.body)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(bytes.Clone(data))
		if err != nil {
			var e *Error
			require.ErrorAs(t, err, &e, "decode errors are *Error: %v", err)
			require.GreaterOrEqual(t, e.Kind, KindEmpty)
			require.LessOrEqual(t, e.Kind, KindUnsupportedDType)
			return
		}
		require.NoError(t, checkLen(v))
		require.LessOrEqual(t, len(v.Data), len(data))
		enc, err := Encode(v)
		require.NoError(t, err)
		again, err := Decode(enc)
		require.NoError(t, err)
		require.Equal(t, v.DType, again.DType)
		require.Equal(t, len(v.Shape), len(again.Shape))
		require.Equal(t, v.Data, again.Data)
	})
}

// TestEncodeRefuses: Encode checks the dtype and that the bytes fit the shape.
func TestEncodeRefuses(t *testing.T) {
	_, err := Encode(Array{DType: "complex64", Shape: []int{1}, Data: make([]byte, 8)})
	require.ErrorContains(t, err, `unsupported dtype "complex64"`)
	_, err = Encode(Array{DType: "float32", Shape: []int{2, 3}, Data: make([]byte, 20)})
	require.ErrorContains(t, err, "needs 24 bytes, got 20")
	_, err = Encode(Array{DType: "uint8", Shape: []int{-1}})
	require.ErrorContains(t, err, "bad shape")
	require.Equal(t, 8, ItemSize("float64"))
	require.Equal(t, 0, ItemSize("complex64"))
}
