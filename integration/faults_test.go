package integration

import (
	"archive/zip"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
)

// create configures an image->image deployment and provisions it.
func createProvisioned(t *testing.T, c *client, apiName string) string {
	t.Helper()
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": apiName, "api_name": apiName, "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	return id
}

func TestBadRequestsAreSpecific(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"api_name": "Bad Name!", "input": "image", "output": "image", "threads": 0, "compute": "cpu", "instance_type": "g4dn.xlarge"})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	for _, f := range []string{`"name"`, `"api_name"`, `"instance_type"`} {
		require.Contains(t, string(r.Raw), f)
	}

	r = c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "x", "api_name": "faults", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")

	r = c.Step(id, "test", nil)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Raw))
	require.Equal(t, "configured", r.Str("step"), string(r.Raw))

	r = c.Step(id, "launch_rockets", nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Raw))
	require.Equal(t, "unknown_step", r.Str("code"), string(r.Raw))
	require.Equal(t, "configured", r.Str("step"), string(r.Raw))

	// Without a token nothing is reachable; another user's deployment does not exist for them.
	anon := newClient(t, p, "")
	require.Equal(t, http.StatusUnauthorized, anon.Do(http.MethodGet, "/api/v1/deployments", nil).Status)
	other, err := platform.CreateToken(t.Context(), "sqlite://"+filepath.Join(filepath.Dir(p.UploadDir()), "algocloud.db"), "mallory")
	require.NoError(t, err)
	m := newClient(t, p, other)
	require.Equal(t, http.StatusNotFound, m.Do(http.MethodGet, "/api/v1/deployments/"+id, nil).Status)
	require.Equal(t, http.StatusNotFound, m.Step(id, "provision", nil).Status)
	require.Equal(t, http.StatusNotFound, m.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
}

func TestGitFailuresCanBeRetried(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id := createProvisioned(t, c, "gitfail")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))

	r := c.Step(id, "fetch_code", map[string]any{"git_url": filepath.Join(t.TempDir(), "missing"), "ref": "main"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Equal(t, "step_failed", r.Str("code"))

	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "no-such-branch"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, r.Str("message"), "no-such-branch")

	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, "code_fetched", r.Str("state", "step"), string(r.Raw))
}

const brokenMain = `import numpy as np

class AAI:
    def __init__(self):
        pass

    def predict(self, x):
        return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:
        
    def testing_input_data(self):
        return np.zeros((8, 8, 3), dtype=np.uint8)
`

func TestBrokenCodeReportsTracebackAndStaysAtTest(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id := createProvisioned(t, c, "broken")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{"aai_main.py": strings.Replace(brokenMain,
		"return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:",
		"raise ValueError('threshold out of range: %d' % x.shape[0])", 1)})

	steps := func() resp {
		for _, s := range []struct {
			name string
			body any
		}{{"fetch_code", map[string]any{"git_url": repo, "ref": "main"}}, {"install_requirements", nil}} {
			r := c.Step(id, s.name, s.body)
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		}
		return c.Step(id, "test", nil)
	}
	r := steps()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Equal(t, "test_failed", r.Str("code"), string(r.Raw))
	require.Contains(t, string(r.Raw), "threshold out of range: 8")
	require.Contains(t, string(r.Raw), "Traceback")
	require.Contains(t, string(r.Raw), "ValueError")
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, "requirements_installed", st.Str("state", "step"), string(st.Raw))
	require.Equal(t, http.StatusConflict, c.Step(id, "complete", nil).Status)

	// A failing import is reported the same way, from __init__'s load.
	commit(t, repo, map[string]string{"aai_main.py": "import no_such_module_xyz\n" + brokenMain})
	r = steps()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), "no_such_module_xyz")

	// Fixed code passes and completes.
	commit(t, repo, map[string]string{"aai_main.py": strings.Replace(brokenMain,
		"return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:", "return 255 - x", 1)})
	r = steps()
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, http.StatusOK, c.Step(id, "complete", nil).Status)
}

// writeWheel builds a minimal pure-Python wheel in dir.
func writeWheel(t *testing.T, dir, name, version, body string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", name, version)))
	require.NoError(t, err)
	defer f.Close()
	z := zip.NewWriter(f)
	dist := fmt.Sprintf("%s-%s.dist-info", name, version)
	files := map[string]string{
		name + "/__init__.py":   body,
		dist + "/METADATA":      fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version),
		dist + "/WHEEL":         "Wheel-Version: 1.0\nGenerator: algocloud-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		dist + "/top_level.txt": name + "\n",
	}
	var record strings.Builder
	for n, content := range files {
		w, err := z.Create(n)
		require.NoError(t, err)
		_, _ = w.Write([]byte(content))
		record.WriteString(n + ",,\n")
	}
	record.WriteString(dist + "/RECORD,,\n")
	w, err := z.Create(dist + "/RECORD")
	require.NoError(t, err)
	_, _ = w.Write([]byte(record.String()))
	require.NoError(t, z.Close())
}

func TestRequirementsFailThenUpdateAndRetest(t *testing.T) {
	wheels := t.TempDir()
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id := createProvisioned(t, c, "reqs")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{
		"aai_pip-requirements.txt": "nosuchpkg-algocloud==1.0\n",
		"aai_main.py":              strings.Replace(brokenMain, "import numpy as np", "import numpy as np\nimport aaihelper", 1),
	})
	require.Equal(t, http.StatusOK, c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"}).Status)

	r := c.Step(id, "install_requirements", nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, r.Str("message"), "nosuchpkg-algocloud")
	require.Contains(t, strings.ToLower(r.Str("message")), "could not find a version")

	// Add More Dependencies: replace the file's content, install, test.
	writeWheel(t, wheels, "aaihelper", "0.1.1", "def invert(x):\n    return 255 - x\n")
	commitMain := strings.Replace(brokenMain, "import numpy as np", "import numpy as np\nimport aaihelper", 1)
	commitMain = strings.Replace(commitMain, "return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:", "return aaihelper.invert(x)", 1)
	commit(t, repo, map[string]string{"aai_main.py": commitMain})
	require.Equal(t, http.StatusOK, c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"}).Status)
	r = c.Step(id, "install_requirements", map[string]any{"requirements_txt": "aaihelper==0.1.1\n"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = c.Step(id, "test", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Contains(t, string(ev.Raw), "aaihelper", "pip's progress reaches the event log")
}
