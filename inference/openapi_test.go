package inference

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// TestOpenAPIValid checks the document of every API type with
// openapi-spec-validator, where a Python on this machine has it (the pyenv
// Python here does; Debian's does not, so elsewhere the test skips).
func TestOpenAPIValid(t *testing.T) {
	var py string
	for _, p := range []string{"python3", testPython} {
		if exec.Command(p, "-c", "import openapi_spec_validator").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no Python with openapi_spec_validator")
	}
	dir := t.TempDir()
	var files []string
	for p := range spec.SupportedPairs {
		s, err := NewServer(Config{Name: "x", Listen: "127.0.0.1:0", TokenSHA256: tokenSHA(testToken), CodeDir: dir, Input: p.In, Output: p.Out}, nil)
		require.NoError(t, err)
		b, err := json.Marshal(s.openAPIDoc("https://x.example"))
		require.NoError(t, err)
		f := filepath.Join(dir, string(p.In)+"_"+string(p.Out)+".json")
		require.NoError(t, os.WriteFile(f, b, 0o644))
		files = append(files, f)
	}
	code := "import json, sys\nfrom openapi_spec_validator import validate\nfor f in sys.argv[1:]:\n    validate(json.load(open(f)))\n"
	out, err := exec.Command(py, append([]string{"-c", code}, files...)...).CombinedOutput()
	require.NoError(t, err, strings.TrimSpace(string(out)))
}
