package testmoto

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// TestUseEnvCredentials loads the SDK's default config, as the platform's
// processes do, with a profile and a credentials file in the way: the chain
// finds moto's credentials from the environment and nothing else.
func TestUseEnvCredentials(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	require.NoError(t, os.WriteFile(creds, []byte("[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = x\n"), 0o600))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "someone")
	t.Run("inside", func(t *testing.T) {
		UseEnvCredentials(t)
		cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"))
		require.NoError(t, err)
		got, err := cfg.Credentials.Retrieve(t.Context())
		require.NoError(t, err)
		require.Equal(t, "testing", got.AccessKeyID)
		require.Equal(t, "EnvConfigCredentials", got.Source)
		_, set := os.LookupEnv("AWS_PROFILE")
		require.False(t, set, "no profile, not an empty one")
	})
	require.Equal(t, "someone", os.Getenv("AWS_PROFILE"), "restored when the test ends")
	require.Equal(t, creds, os.Getenv("AWS_SHARED_CREDENTIALS_FILE"))
}

// TestCredentialsWorkOnMoto calls moto with Credentials.
func TestCredentialsWorkOnMoto(t *testing.T) {
	s := Start(t)
	c := s3.New(s3.Options{Region: "us-east-1", Credentials: Credentials, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true})
	_, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("testmoto-creds")})
	require.NoError(t, err)
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
