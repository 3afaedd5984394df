package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// syncBuffer is a bytes.Buffer the test may read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBinaryReloadsCertificateOnSIGHUP runs the real binary over TLS with
// certificate A, writes B over the files, sends SIGHUP, and checks that a new
// connection gets B. Its token lives in a token file: a rotated one is
// accepted, and the old one refused, at the next request (no SIGHUP needed),
// and SIGHUP re-reads it too.
func TestBinaryReloadsCertificateOnSIGHUP(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, PIL").Run(); err != nil {
		t.Fatalf("/usr/bin/python3 with numpy and Pillow is needed: run scripts/setup.sh (%v)", err)
	}
	ca := testenv.NewCA(t)
	pool := ca.Pool

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeLeaf := func(cn string) { ca.WriteLeaf(t, cn, certFile, keyFile) }
	writeLeaf("cert A")

	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	tokenFile := filepath.Join(dir, "token.sha256")
	require.NoError(t, inferapi.WriteTokenFile(tokenFile, tokenHex("sighup-test-token")))
	code, err := filepath.Abs(filepath.Join("..", "..", "examples", "segmentation"))
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "inference.json")
	require.NoError(t, inferapi.WriteConfig(cfgPath, inferapi.Config{
		Name: "otsu", Listen: addr, TokenFile: tokenFile, CodeDir: code,
		Python: "/usr/bin/python3", Threads: 1, Input: spec.Image, Output: spec.Image, CertFile: certFile, KeyFile: keyFile,
	}))
	cmd := exec.Command(os.Args[0], "--config", cfgPath)
	cmd.Env = append(os.Environ(), "ALGOCLOUD_INFER_AS_MAIN=1")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	require.NoError(t, inferapi.WaitReady(ctx, client, "https://"+addr))
	served := func() string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "cert A", served())

	writeLeaf("cert B")
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "SIGHUP: TLS certificate reloaded") },
		30*time.Second, 50*time.Millisecond)
	require.Equal(t, "cert B", served())
	require.Contains(t, stderr.String(), "SIGHUP: endpoint token file reloaded")

	authorized := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, authorized("sighup-test-token"))
	require.NoError(t, inferapi.WriteTokenFile(tokenFile, tokenHex("rotated-token")))
	require.Equal(t, http.StatusUnauthorized, authorized("sighup-test-token"))
	require.Equal(t, http.StatusOK, authorized("rotated-token"))
	require.NotContains(t, stderr.String(), tokenHex("rotated-token"), "the hash is not logged")
}

func tokenHex(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
