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

	"github.com/algocloud/algocloud/inference/npy"
)

// npyFixturesPy writes the .npy files numpy itself writes for every dtype
// and a range of shapes, next to the arrays' canonical bytes, and a
// manifest (package npy's tests run it too).
const npyFixturesPy = "npy/testdata/npy_fixtures.py"

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
	out, err := exec.Command(testPython, npyFixturesPy, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m []npyFixture
	require.NoError(t, json.Unmarshal(b, &m))
	require.Greater(t, len(m), 300)
	return dir, m
}

// npyFile builds a .npy file from a header text, padded like numpy's.
func npyFile(major byte, header string, data []byte) []byte {
	out := []byte(npy.Magic)
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
	hugeHeader := append([]byte(npy.Magic), 2, 0)
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
		{"magic only", []byte(npy.Magic[:4]), CodeBadNPYHeader},
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

// TestDecodeNPYRefuses: every .npy file package npy refuses is a 400 API
// error with the code of its kind (the numpy type's HTTP tests send the
// same files: TestNumpyBadRequests).
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

// TestNPYCodes: every kind of npy.Error has an API code.
func TestNPYCodes(t *testing.T) {
	for k := npy.KindEmpty; k <= npy.KindUnsupportedDType; k++ {
		require.NotEmpty(t, npyCodes[k], "kind %d", k)
	}
	_, err := decodeNPY(nil)
	require.Equal(t, CodeEmptyBody, codeOf(err))
}

// TestNPYValue: decodeNPY and encodeNPY carry a tensor Value through
// package npy unchanged, and encodeNPY refuses what is not a tensor.
func TestNPYValue(t *testing.T) {
	v := Value{Kind: KindTensor, DType: "uint16", Shape: []int{2}, Data: []byte{1, 0, 2, 0}}
	b, err := encodeNPY(v)
	require.NoError(t, err)
	got, err := decodeNPY(b)
	require.NoError(t, err)
	require.Equal(t, v, got)
	_, err = encodeNPY(Value{Kind: KindJSON})
	require.ErrorContains(t, err, "expected a numpy array")
	_, err = encodeNPY(Value{Kind: KindTensor, DType: "uint16", Shape: []int{3}, Data: []byte{1, 0}})
	require.ErrorContains(t, err, "needs more than the 2 bytes sent")
}
