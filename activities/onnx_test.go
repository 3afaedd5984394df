package activities

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// gitRepo commits files into a fresh repository on branch main.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "model"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	return dir
}

// Environment onnx: code without aai_onnx.json gets the generated one, naming
// the folder's only .onnx model, and no aai_main.py; code with one keeps it.
func TestFetchCodeONNXSkeleton(t *testing.T) {
	a := &Activities{AllowLocalGit: true}
	sp := spec.Spec{Environment: spec.EnvONNX, Input: spec.Image, Output: spec.JSON}
	fetch := func(files map[string]string, rev int) (actdef.CodeInfo, string) {
		work := t.TempDir()
		info, err := a.FetchCode(context.Background(), actdef.FetchCodeInput{DeploymentID: "d", Server: compute.Server{Workdir: work},
			Spec: sp, Source: actdef.CodeSource{GitURL: gitRepo(t, files), Ref: "main"}, Revision: rev})
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(info.Dir, MainFile))
		require.True(t, os.IsNotExist(err), "no aai_main.py for onnx")
		return info, info.Dir
	}

	info, dir := fetch(map[string]string{"models/net.onnx": "weights", "README.md": "hi"}, 1)
	require.True(t, info.GeneratedMain)
	c, err := onnxrt.LoadConfig(dir)
	require.NoError(t, err)
	require.Equal(t, "models/net.onnx", c.Model)
	require.Equal(t, "json", c.Postprocess.Kind)

	info, dir = fetch(map[string]string{"a.onnx": "x", "b.onnx": "y"}, 2)
	require.True(t, info.GeneratedMain)
	c, err = onnxrt.LoadConfig(dir)
	require.NoError(t, err)
	require.Equal(t, "model.onnx", c.Model, "two models: the author picks")

	own := `{"model": "a.onnx", "postprocess": {"kind": "json", "top_k": 1}}`
	info, dir = fetch(map[string]string{"a.onnx": "x", onnxrt.ConfigFile: own}, 3)
	require.False(t, info.GeneratedMain)
	b, err := os.ReadFile(filepath.Join(dir, onnxrt.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, own, string(b))
}

// Environment onnx without requirements makes no venv and installs nothing.
func TestInstallRequirementsONNXNeedsNoVenv(t *testing.T) {
	a := &Activities{}
	work := t.TempDir()
	info, err := a.InstallRequirements(context.Background(), actdef.InstallInput{DeploymentID: "d", Server: compute.Server{Workdir: work},
		Spec: spec.Spec{Environment: spec.EnvONNX, Requirements: []string{}}, Code: actdef.CodeInfo{Revision: 2, Dir: t.TempDir()}})
	require.NoError(t, err)
	require.Equal(t, 2, info.CodeRevision)
	require.Empty(t, info.Python)
	require.Empty(t, info.Requirements)
	_, err = os.Stat(filepath.Join(work, "venv"))
	require.True(t, os.IsNotExist(err), "no venv for an ONNX model")
}

// The inference config carries the environment and, for onnx, the ONNX
// Runtime library this worker found (absolute: endpoints start elsewhere).
func TestServiceConfigONNX(t *testing.T) {
	a := &Activities{}
	cfg, err := a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, actdef.Build{Spec: spec.Spec{Environment: spec.EnvONNX, Threads: 1}}, "", "live")
	require.NoError(t, err)
	require.Equal(t, spec.EnvONNX, cfg.Environment)
	if lib, err := onnxrt.LibraryPath(""); err == nil {
		require.True(t, filepath.IsAbs(cfg.ONNXRuntimeLib), cfg.ONNXRuntimeLib)
		abs, _ := filepath.Abs(lib)
		require.Equal(t, abs, cfg.ONNXRuntimeLib)
	} else {
		require.Empty(t, cfg.ONNXRuntimeLib)
	}
	cfg, err = a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, actdef.Build{Spec: spec.Spec{Environment: spec.EnvPython, Threads: 1}}, "", "live")
	require.NoError(t, err)
	require.Equal(t, spec.EnvPython, cfg.Environment)
	require.Empty(t, cfg.ONNXRuntimeLib)
}
