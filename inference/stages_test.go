package inference

import (
	"context"
	"errors"
	"github.com/algocloud/algocloud/inference/inferapi"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// stageCases are algorithms that each fail at one stage of a run, with what
// the error must say. Line numbers are where the raise is in aai_main.py.
var stageCases = []struct {
	name, code string
	out        spec.IOType
	stage      string
	apiCode    string
	message    string // the message's start
	line       string // the traceback's frame, relative to the code folder
}{
	{name: "module not installed", code: "import numpy\nimport skimage.filters\n\nclass AAI:\n    def predict(self, x):\n        return x\n",
		stage: StageImport, apiCode: CodeInitFailed,
		message: "import of aai_main.py failed: ModuleNotFoundError: No module named 'skimage' (add scikit-image to aai_pip-requirements.txt)",
		line:    `File "aai_main.py", line 2, in <module>`},
	{name: "syntax error", code: "class AAI:\n    def predict(self, x)\n        return x\n",
		stage: StageImport, apiCode: CodeInitFailed, message: "import of aai_main.py failed: SyntaxError: ",
		line: `File "aai_main.py", line 2`},
	{name: "name error at import", code: "THRESHOLD = undefined_name + 1\n\nclass AAI:\n    def predict(self, x):\n        return x\n",
		stage: StageImport, apiCode: CodeInitFailed, message: "import of aai_main.py failed: NameError: name 'undefined_name' is not defined",
		line: `File "aai_main.py", line 1, in <module>`},
	{name: "__init__ raises", code: "class AAI:\n    def __init__(self):\n        open('weights.bin').read()\n    def predict(self, x):\n        return x\n",
		stage: StageInit, apiCode: CodeInitFailed,
		message: "__init__ failed: FileNotFoundError: [Errno 2] No such file or directory: 'weights.bin'",
		line:    `File "aai_main.py", line 3, in __init__`},
	{name: "testing_input_data raises", code: "class AAI:\n    def predict(self, x):\n        return x\n    def testing_input_data(self):\n        return {}['sample']\n",
		stage: StageTestInput, apiCode: CodeTestInputFailed, message: "testing_input_data failed: KeyError: 'sample'",
		line: `File "aai_main.py", line 5, in testing_input_data`},
	{name: "predict raises", code: "import numpy as np\nclass AAI:\n    def predict(self, x):\n        return x / 0 + int('x')\n    def testing_input_data(self):\n        return np.zeros((4, 4, 3), np.uint8)\n",
		stage: StagePredict, apiCode: CodePredictFailed, message: "predict failed: ValueError: invalid literal for int() with base 10: 'x'",
		line: `File "aai_main.py", line 4, in predict`},
	{name: "answer of the wrong type", code: "import numpy as np\nclass AAI:\n    def predict(self, x):\n        return 'done'\n    def testing_input_data(self):\n        return np.zeros((4, 4, 3), np.uint8)\n",
		stage: StageOutput, apiCode: CodeBadOutput, message: "encoding the answer failed: ",
		line: ""},
	{name: "answer of the wrong shape", code: "import numpy as np\nclass AAI:\n    def predict(self, x):\n        return np.zeros((3, 8, 8), np.uint8)\n    def testing_input_data(self):\n        return np.zeros((4, 4, 3), np.uint8)\n",
		stage: StageOutput, apiCode: CodeBadOutput, message: "encoding the answer failed: ",
		line: ""},
	{name: "answer of the wrong dtype", code: "import numpy as np\nclass AAI:\n    def predict(self, x):\n        return np.zeros((4, 4), np.complex64)\n    def testing_input_data(self):\n        return np.zeros((4, 4, 3), np.uint8)\n",
		stage: StageOutput, apiCode: CodeBadOutput, message: "encoding the answer failed: ",
		line: ""},
}

// TestFailuresNameTheirStage: Test Code (SelfTest, WaitReady) and endpoint
// callers learn which stage failed, in the error's stage and the start of
// its message, and tracebacks name files relative to the code folder, never
// the platform's paths.
func TestFailuresNameTheirStage(t *testing.T) {
	for _, c := range stageCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := codeDir(t, c.code)
			ts := startServer(t, dir, spec.Image, spec.Image, nil)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			err := inferapi.WaitReady(ctx, ts.Client, ts.URL)
			var msg, stage, tb string
			switch c.apiCode {
			case CodeInitFailed:
				var ie *InitError
				require.True(t, errors.As(err, &ie), "WaitReady: %v", err)
				msg, stage, tb = ie.Message, ie.Stage, ie.Traceback
			default:
				require.NoError(t, err)
				res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
				require.NoError(t, err)
				require.False(t, res.OK)
				require.Equal(t, c.apiCode, res.Code)
				msg, stage, tb = res.Message, res.Stage, res.Traceback
			}
			require.True(t, strings.HasPrefix(msg, c.message), "message %q should start with %q", msg, c.message)
			require.Equal(t, c.stage, stage)
			require.Contains(t, tb, c.line)
			requireNoServerPaths(t, dir, msg, tb)

			// An endpoint caller sees the same, with relative paths.
			if c.stage == StageTestInput {
				return
			}
			status, _, body := ts.post(t, "/predict", "image/png", pngBytes(t, testImage(4, 4, 0)))
			want := http.StatusInternalServerError
			if c.apiCode == CodeInitFailed {
				want = http.StatusServiceUnavailable
			}
			e := requireError(t, want, c.apiCode, status, body)
			require.True(t, strings.HasPrefix(e.Message, c.message), "message %q should start with %q", e.Message, c.message)
			require.Equal(t, c.stage, e.Stage)
			require.Contains(t, e.Traceback, c.line)
			requireNoServerPaths(t, dir, e.Message, e.Traceback)
		})
	}
}

// requireNoServerPaths checks that texts shown to authors and callers hold
// no absolute path of the code folder.
func requireNoServerPaths(t *testing.T, dir string, texts ...string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	for _, s := range texts {
		require.NotContains(t, s, dir)
		require.NotContains(t, s, real)
	}
}

// TestRunnerFileInServerFolder: the runner the workers start from is written
// into the config's run_dir (LoadConfig: the config file's folder, the
// server's folder), never the system temp folder, so a crashed server leaves
// nothing there; servers of one folder share one file, which a second start
// reuses.
func TestRunnerFileInServerFolder(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	server := t.TempDir()
	code := codeDir(t, identityAlgorithm)
	cfgPath := filepath.Join(server, "live.json")
	require.NoError(t, inferapi.WriteConfig(cfgPath, Config{Name: "t", Listen: "127.0.0.1:0", TokenSHA256: tokenSHA(testToken),
		CodeDir: code, Python: testPython, Input: spec.Image, Output: spec.Image}))
	cfg, err := inferapi.LoadConfig(cfgPath)
	require.NoError(t, err)
	require.Equal(t, server, cfg.RunDir)
	for range 2 { // a second start (a restart after a crash) adds no file
		ts := startServer(t, code, spec.Image, spec.Image, func(c *Config) { c.RunDir = cfg.RunDir })
		ts.waitReady(t)
		runners, err := filepath.Glob(filepath.Join(server, "aai_runner-*.py"))
		require.NoError(t, err)
		require.Len(t, runners, 1)
		ts.stop(t)
	}
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	for _, e := range left {
		require.NotContains(t, e.Name(), "aai_runner", "the runner was written to the system temp folder")
	}
}
