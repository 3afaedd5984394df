package testmoto

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStart(t *testing.T) {
	s := Start(t)
	resp, err := http.Get(s.Endpoint + "/moto-api/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, s.stop())
	_, err = http.Get(s.Endpoint + "/moto-api/")
	require.Error(t, err, "stopped")
}

func TestStart_Missing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("PYENV_ROOT", t.TempDir())
	_, err := start()
	require.ErrorContains(t, err, "moto_server not found")
	require.ErrorContains(t, err, "pip install 'moto[server]'")
}

func TestStart_PyenvShimsOffPath(t *testing.T) {
	bin, err := find()
	require.NoError(t, err)
	if filepath.Base(filepath.Dir(bin)) != "shims" {
		t.Skip("moto_server is not a pyenv shim here")
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("PYENV_ROOT", filepath.Dir(filepath.Dir(bin)))
	got, err := find()
	require.NoError(t, err)
	require.Equal(t, bin, got)
}

// scripts/moto.sh's venv (where Debian has no python3-moto) is found off PATH,
// before pyenv's shims, as the script itself looks.
func TestFind_MotoScriptVenv(t *testing.T) {
	data, pyenv := t.TempDir(), t.TempDir()
	t.Setenv("PATH", t.TempDir())
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("PYENV_ROOT", pyenv)
	venvBin := filepath.Join(data, "algocloud", "moto", "bin", Binary)
	shim := filepath.Join(pyenv, "shims", Binary)
	for _, p := range []string{venvBin, shim} {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	}
	got, err := find()
	require.NoError(t, err)
	require.Equal(t, venvBin, got)

	require.NoError(t, os.Remove(venvBin))
	got, err = find()
	require.NoError(t, err)
	require.Equal(t, shim, got)
}
