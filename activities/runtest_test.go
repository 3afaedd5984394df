package activities

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// inferEnv makes this test binary serve as algocloud-infer (what the local
// provider starts for Test Code), so the package's tests need no prebuilt
// binary and run the server code of this very tree.
const inferEnv = "ACTIVITIES_TEST_INFER"

func TestMain(m *testing.M) {
	if os.Getenv(inferEnv) == "1" {
		os.Exit(serveInference())
	}
	os.Exit(m.Run())
}

// serveInference is cmd/algocloud-infer's main: --config FILE, SIGTERM drains.
func serveInference() int {
	var path string
	for i, a := range os.Args {
		if a == "--config" && i+1 < len(os.Args) {
			path = os.Args[i+1]
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := inference.LoadConfig(path)
	if err == nil {
		var srv *inference.Server
		if srv, err = inference.NewServer(cfg, log); err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = srv.Run(ctx)
		}
	}
	if err != nil {
		log.Error("serve", "error", err)
		return 1
	}
	return 0
}

// TestRunTestNamesTheFailedStage is Test Code on the local provider (a real
// inference server over TLS, a real Python worker) for algorithms that fail
// at each stage: the result is a failure whose Stage and the start of whose
// Message name the stage, and whose traceback shows the code's files
// relative to the code folder, not the server's path.
func TestRunTestNamesTheFailedStage(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatal("/usr/bin/python3 with numpy and Pillow is needed: run scripts/setup.sh")
	}
	data := t.TempDir()
	ca, err := certs.LoadOrCreateCA(filepath.Join(data, "ca"))
	require.NoError(t, err)
	prov, err := local.New(local.Options{DataDir: data, Command: []string{os.Args[0]},
		Env: []string{"PATH=" + os.Getenv("PATH"), inferEnv + "=1"}, StopGrace: 5 * time.Second})
	require.NoError(t, err)
	a := &Activities{Provider: prov, CA: ca, Domain: "algocloud.test", PredictTimeout: 20 * time.Second}
	ctx := t.Context()
	srv, err := prov.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-stages", APIName: "stages"})
	require.NoError(t, err)
	cert, err := a.IssueCertificate(ctx, actdef.CertInput{DeploymentID: "dep-stages", APIName: "stages", Server: srv})
	require.NoError(t, err)

	cases := []struct {
		name, code, stage, message, line string
	}{
		{"import", "import skimage\n", inference.StageImport,
			"import of aai_main.py failed: ModuleNotFoundError: No module named 'skimage' (add scikit-image to aai_pip-requirements.txt)",
			`File "aai_main.py", line 1, in <module>`},
		{"__init__", "class AAI:\n    def __init__(self):\n        raise RuntimeError('no weights')\n    def predict(self, x):\n        return x\n",
			inference.StageInit, "__init__ failed: RuntimeError: no weights", `File "aai_main.py", line 3, in __init__`},
		{"testing_input_data", "class AAI:\n    def predict(self, x):\n        return x\n    def testing_input_data(self):\n        return 1 / 0\n",
			inference.StageTestInput, "testing_input_data failed: ZeroDivisionError: division by zero", `File "aai_main.py", line 5, in testing_input_data`},
		{"predict", "import numpy as np\nclass AAI:\n    def predict(self, x):\n        raise ValueError('too dark')\n    def testing_input_data(self):\n        return np.zeros((8, 8, 3), np.uint8)\n",
			inference.StagePredict, "predict failed: ValueError: too dark", `File "aai_main.py", line 4, in predict`},
		{"answer", "import numpy as np\nclass AAI:\n    def predict(self, x):\n        return {'not': 'an image'}\n    def testing_input_data(self):\n        return np.zeros((8, 8, 3), np.uint8)\n",
			inference.StageOutput, "encoding the answer failed: ", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev := i + 1
			dir := filepath.Join(srv.Workdir, "code", strconv.Itoa(rev))
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "aai_main.py"), []byte(c.code), 0o644))
			info, err := a.RunTest(ctx, actdef.TestInput{Build: actdef.Build{DeploymentID: "dep-stages", Server: srv, Cert: cert,
				Spec: spec.Spec{APIName: "stages", Environment: spec.EnvPython, Threads: 1, Input: spec.Image, Output: spec.Image},
				Code: actdef.CodeInfo{Revision: rev, Dir: dir}, Install: actdef.InstallInfo{Python: "/usr/bin/python3"}}})
			require.NoError(t, err)
			require.False(t, info.OK)
			require.Equal(t, c.stage, info.Stage)
			require.True(t, strings.HasPrefix(info.Message, c.message), "message %q should start with %q", info.Message, c.message)
			require.Contains(t, info.Traceback, c.line)
			require.NotContains(t, info.Traceback, srv.Workdir)
			require.NotContains(t, info.Message, srv.Workdir)
		})
	}
}
