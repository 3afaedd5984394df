package inference

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

// npyFixturesPy writes, for every dtype and a range of shapes, the .npy files
// numpy itself writes (C order, Fortran order, big-endian, format versions
// 2.0 and 3.0) next to the array's canonical bytes (little-endian, C order),
// and a manifest.
const npyFixturesPy = `
import json, os, sys
import numpy as np
from numpy.lib import format as npf

out = sys.argv[1]
rng = np.random.default_rng(7)
dtypes = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64"]
shapes = [(), (0,), (5,), (3, 4), (2, 3, 4), (0, 3), (4, 1, 2, 3), (2, 2, 2, 2, 2)]
manifest = []

def sample(dt, shape):
    if dt == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.startswith("float"):
        a = (rng.standard_normal(size=shape) * 1000).astype(dt)
        if a.size >= 4:
            flat = a.reshape(-1)
            flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)

for dt in dtypes:
    for shape in shapes:
        a = sample(dt, shape)
        name = "%s_%s" % (dt, "x".join(map(str, shape)) or "scalar")
        canonical = a.astype(a.dtype.newbyteorder("<"), order="C")  # ascontiguousarray would make a 0-d array 1-d
        with open(os.path.join(out, name + ".raw"), "wb") as f:
            f.write(canonical.tobytes())
        variants = {"c": canonical, "f": a.copy(order="F")}
        if a.dtype.itemsize > 1:
            variants["be"] = a.astype(a.dtype.newbyteorder(">"))
            variants["fbe"] = variants["be"].copy(order="F")
        for v, arr in variants.items():
            np.save(os.path.join(out, "%s_%s.npy" % (name, v)), arr)
            manifest.append({"npy": "%s_%s.npy" % (name, v), "raw": name + ".raw", "dtype": dt,
                             "shape": list(shape), "canonical": v == "c"})
        for major in (2, 3):
            p = "%s_v%d.npy" % (name, major)
            with open(os.path.join(out, p), "wb") as f:
                npf.write_array(f, a, version=(major, 0))
            manifest.append({"npy": p, "raw": name + ".raw", "dtype": dt, "shape": list(shape), "canonical": False})

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f)
`

type npyFixture struct {
	NPY       string `json:"npy"`
	Raw       string `json:"raw"`
	DType     string `json:"dtype"`
	Shape     []int  `json:"shape"`
	Canonical bool   `json:"canonical"`
}

// numpyFixtures runs npyFixturesPy once per test binary.
func numpyFixtures(t *testing.T) (string, []npyFixture) {
	t.Helper()
	requirePython(t)
	dir := t.TempDir()
	out, err := exec.Command(testPython, "-c", npyFixturesPy, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m []npyFixture
	require.NoError(t, json.Unmarshal(b, &m))
	require.Greater(t, len(m), 300)
	return dir, m
}

// TestNPYAgainstNumpy decodes every file numpy wrote into the array's
// canonical bytes, and encodes them back into exactly what np.save writes.
func TestNPYAgainstNumpy(t *testing.T) {
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
			v, err := decodeNPY(bytes.Clone(file))
			require.NoError(t, err)
			require.Equal(t, f.DType, v.DType)
			require.Equal(t, f.Shape, v.Shape)
			require.Equal(t, raw, v.Data, "little-endian C-order bytes")
			enc, err := encodeNPY(v)
			require.NoError(t, err)
			require.Equal(t, canonical[f.Raw], enc, "byte for byte what np.save writes")
		})
	}
}

// TestNPYEncodeLoadsInNumpy has numpy load what encodeNPY wrote, including
// a header long enough to need format 2.0.
func TestNPYEncodeLoadsInNumpy(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	write := func(name string, v Value) {
		b, err := encodeNPY(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	write("scalar.npy", Value{Kind: KindTensor, DType: "float64", Data: binary.LittleEndian.AppendUint64(nil, 0x400c000000000000)})
	write("empty.npy", Value{Kind: KindTensor, DType: "int16", Shape: []int{0, 7}})
	shape := make([]int, 32)
	for i := range shape {
		shape[i] = 1
	}
	shape[31] = 3
	write("dims32.npy", Value{Kind: KindTensor, DType: "uint16", Shape: shape, Data: []byte{1, 0, 2, 0, 3, 0}})
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
	out := []byte(npyMagic)
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

// badNPYCases are .npy bodies the numpy input refuses, with the code.
func badNPYCases() []struct {
	name string
	body []byte
	code string
} {
	good := npyFile(1, npyHeader("'<f4'", "False", "(2, 3)"), make([]byte, 24))
	hugeHeader := append([]byte(npyMagic), 2, 0)
	hugeHeader = binary.LittleEndian.AppendUint32(hugeHeader, 70000)
	hugeHeader = append(hugeHeader, bytes.Repeat([]byte{' '}, 70000)...)
	dims33 := "(" + strings.Repeat("1, ", 33) + ")"
	return []struct {
		name string
		body []byte
		code string
	}{
		{"not npy", []byte("this is not an array"), CodeNotNPY},
		{"png", pngHeaderBomb(2, 2), CodeNotNPY},
		{"magic only", []byte(npyMagic[:4]), CodeBadNPYHeader},
		{"truncated in header", good[:30], CodeBadNPYHeader},
		{"truncated in data", good[:len(good)-5], CodeNPYSizeMismatch},
		{"lying header", npyFile(1, npyHeader("'<f4'", "False", "(1000, 1000)"), make([]byte, 24)), CodeNPYSizeMismatch},
		{"trailing bytes", append(bytes.Clone(good), 0, 0, 0, 0), CodeNPYSizeMismatch},
		{"version 4.0", npyFile(4, npyHeader("'<f4'", "False", "(2, 3)"), make([]byte, 24)), CodeBadNPYHeader},
		{"header over 64 KiB", hugeHeader, CodeNPYHeaderTooLarge},
		{"complex", npyFile(1, npyHeader("'<c8'", "False", "(3,)"), make([]byte, 24)), CodeUnsupportedDType},
		{"object", npyFile(1, npyHeader("'|O'", "False", "(3,)"), make([]byte, 24)), CodeUnsupportedDType},
		{"unicode", npyFile(1, npyHeader("'<U2'", "False", "(3,)"), make([]byte, 24)), CodeUnsupportedDType},
		{"structured", npyFile(1, npyHeader("[('a', '<i4'), ('b', '<f4')]", "False", "(3,)"), make([]byte, 24)), CodeUnsupportedDType},
		{"datetime", npyFile(1, npyHeader("'<M8[ns]'", "False", "(3,)"), make([]byte, 24)), CodeUnsupportedDType},
		{"longdouble", npyFile(1, npyHeader("'<f16'", "False", "(3,)"), make([]byte, 48)), CodeUnsupportedDType},
		{"no byte order", npyFile(1, npyHeader("'|f4'", "False", "(3,)"), make([]byte, 12)), CodeUnsupportedDType},
		{"absurd shape", npyFile(1, npyHeader("'<f4'", "False", "(1099511627776, 1099511627776)"), make([]byte, 24)), CodeBadNPYShape},
		{"absurd shape with a zero", npyFile(1, npyHeader("'|u1'", "False", "(0, 4611686018427387904, 4)"), nil), CodeBadNPYShape},
		{"negative dimension", npyFile(1, npyHeader("'<f4'", "False", "(-1, 6)"), make([]byte, 24)), CodeBadNPYShape},
		{"33 dimensions", npyFile(1, npyHeader("'<f4'", "False", dims33), make([]byte, 4)), CodeBadNPYShape},
		{"shape not a tuple", npyFile(1, npyHeader("'<f4'", "False", "[2, 3]"), make([]byte, 24)), CodeBadNPYHeader},
		{"shape of floats", npyFile(1, npyHeader("'<f4'", "False", "(2.0, 3)"), make([]byte, 24)), CodeBadNPYHeader},
		{"fortran_order not a bool", npyFile(1, npyHeader("'<f4'", "'no'", "(2, 3)"), make([]byte, 24)), CodeBadNPYHeader},
		{"missing key", npyFile(1, "{'descr': '<f4', 'shape': (2, 3), }", make([]byte, 24)), CodeBadNPYHeader},
		{"extra key", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", make([]byte, 24)), CodeBadNPYHeader},
		{"unterminated dict", npyFile(1, "{'descr': '<f4', 'fortran_order': False, ", make([]byte, 24)), CodeBadNPYHeader},
		{"code in header", npyFile(1, "__import__('os').system('true')", nil), CodeBadNPYHeader},
	}
}

func TestDecodeNPYRefuses(t *testing.T) {
	for _, c := range badNPYCases() {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeNPY(c.body)
			require.Equal(t, c.code, codeOf(err), "%v", err)
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, 400, ae.Status)
		})
	}
}

func TestDecodeNPYAccepts(t *testing.T) {
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
		v, err := decodeNPY(npyFile(1, c.header, c.data))
		require.NoError(t, err, c.header)
		require.Equal(t, Value{Kind: KindTensor, DType: c.dtype, Shape: c.shape, Data: c.want}, v, c.header)
	}
}

// FuzzDecodeNPY feeds arbitrary bytes to the .npy parser: it must never
// panic, refuse with a 400 API error, and what it accepts must be a
// consistent tensor that survives encoding and decoding again unchanged.
func FuzzDecodeNPY(f *testing.F) {
	for _, seed := range []Value{
		{Kind: KindTensor, DType: "float32", Shape: []int{2, 3}, Data: make([]byte, 24)},
		{Kind: KindTensor, DType: "bool", Shape: []int{}, Data: []byte{1}},
		{Kind: KindTensor, DType: "uint16", Shape: []int{0, 5}},
		{Kind: KindTensor, DType: "int64", Shape: []int{1, 1, 2}, Data: make([]byte, 16)},
	} {
		b, err := encodeNPY(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add(npyFile(1, npyHeader("'>f8'", "True", "(2, 2)"), make([]byte, 32)))
	f.Add(npyFile(3, npyHeader("'<i2'", "True", "(3, 1, 2)"), make([]byte, 12)))
	f.Add(npyFile(2, npyHeader("[('a', '<i4')]", "False", "(1,)"), make([]byte, 4)))
	for _, c := range badNPYCases() {
		if len(c.body) < 4096 {
			f.Add(c.body)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeNPY(bytes.Clone(data))
		if err != nil {
			var ae *APIError
			require.ErrorAs(t, err, &ae, "decode errors are API errors: %v", err)
			require.Equal(t, 400, ae.Status)
			require.NotEmpty(t, ae.Code)
			return
		}
		n, err := v.tensorLen()
		require.NoError(t, err)
		require.LessOrEqual(t, n*dtypeSizes[v.DType], len(data))
		enc, err := encodeNPY(v)
		require.NoError(t, err)
		again, err := decodeNPY(enc)
		require.NoError(t, err)
		require.Equal(t, v.DType, again.DType)
		require.Equal(t, len(v.Shape), len(again.Shape))
		require.Equal(t, v.Data, again.Data)
	})
}
