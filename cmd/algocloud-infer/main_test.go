package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// TestMain lets the test binary act as algocloud-infer, so the test runs the
// real main without a separate go build.
func TestMain(m *testing.M) {
	if os.Getenv("ALGOCLOUD_INFER_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBinaryServesAndDrainsOnSIGTERM(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, PIL").Run(); err != nil {
		t.Fatalf("/usr/bin/python3 with numpy and Pillow is needed: run scripts/setup.sh (%v)", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	const token = "binary-test-token"
	sum := sha256.Sum256([]byte(token))
	code, err := filepath.Abs(filepath.Join("..", "..", "examples", "segmentation"))
	require.NoError(t, err)
	cfgPath := filepath.Join(t.TempDir(), "inference.json")
	require.NoError(t, inferapi.WriteConfig(cfgPath, inferapi.Config{
		Name: "otsu", Listen: addr, TokenSHA256: hex.EncodeToString(sum[:]), CodeDir: code,
		Python: "/usr/bin/python3", Threads: 1, Input: spec.Image, Output: spec.Image,
	}))

	cmd := exec.Command(os.Args[0], "--config", cfgPath)
	cmd.Env = append(os.Environ(), "ALGOCLOUD_INFER_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Minute}
	base := "http://" + addr
	if err := inferapi.WaitReady(ctx, client, base); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("not ready: %v\n%s", err, stderr.String())
	}
	res, err := inferapi.SelfTest(ctx, client, base, token)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("no exit within a minute of SIGTERM:\n%s", stderr.String())
	}
	logs := stderr.String()
	require.Contains(t, logs, `"msg":"stopped"`)
	require.NotContains(t, logs, token)
}

func TestBinaryNeedsConfig(t *testing.T) {
	require.Error(t, run("", nil))
}
