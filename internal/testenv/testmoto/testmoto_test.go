package testmoto

import (
	"net/http"
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
