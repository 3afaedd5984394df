package templates

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestSkeletonGolden(t *testing.T) {
	for pair := range spec.SupportedPairs {
		t.Run(pair.String(), func(t *testing.T) {
			got, err := Skeleton(pair.In, pair.Out)
			require.NoError(t, err)
			golden := filepath.Join("testdata", string(pair.In)+"_"+string(pair.Out)+".golden.py")
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./templates -update to create the golden file")
			require.Equal(t, string(want), got, "skeleton changed: run go test ./templates -update and review the diff")
		})
	}
}

func TestSkeletonUnsupported(t *testing.T) {
	_, err := Skeleton(spec.IOType("video"), spec.File)
	require.ErrorIs(t, err, ErrUnsupportedPair)
}

// TestPythonCompiles byte-compiles the runner and every skeleton with the
// Python the servers use (the inference tests run them for real).
func TestPythonCompiles(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3: run scripts/setup.sh")
	}
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "aai_runner.py")}
	require.NoError(t, os.WriteFile(files[0], RunnerPy(), 0o644))
	for pair := range spec.SupportedPairs {
		src, err := Skeleton(pair.In, pair.Out)
		require.NoError(t, err)
		f := filepath.Join(dir, string(pair.In)+"_"+string(pair.Out)+".py")
		require.NoError(t, os.WriteFile(f, []byte(src), 0o644))
		files = append(files, f)
	}
	code := "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\n"
	out, err := exec.Command(py, append([]string{"-c", code}, files...)...).CombinedOutput()
	require.NoError(t, err, strings.TrimSpace(string(out)))
}
