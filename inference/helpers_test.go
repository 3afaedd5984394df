package inference

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

const (
	testToken  = "s3cret-test-token"
	testPython = "/usr/bin/python3"
)

func tokenSHA(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

var pythonOK = sync.OnceValue(func() error {
	return exec.Command(testPython, "-c", "import numpy, PIL").Run()
})

// requirePython fails (not skips) without Debian's Python: these tests are the
// point of the package. scripts/setup.sh installs it.
func requirePython(t testing.TB) {
	t.Helper()
	require.NoError(t, pythonOK(), "%s with numpy and Pillow is needed: run scripts/setup.sh", testPython)
}

// testServer is a real inference server on a loopback port, with real Python workers.
type testServer struct {
	URL    string
	Client *http.Client
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	logs   *lockedBuffer
}

// codeDir writes aai_main.py into a fresh folder.
func codeDir(t testing.TB, code string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "aai_main.py"), []byte(code), 0o644))
	return dir
}

// startServer serves dir (a folder holding aai_main.py) with a config that
// mutate may change; it stops the server (and checks the drain) at cleanup.
func startServer(t testing.TB, dir string, in, out spec.IOType, mutate func(*Config)) *testServer {
	t.Helper()
	requirePython(t)
	cfg := Config{
		Name: "test", Listen: "127.0.0.1:0", TokenSHA256: tokenSHA(testToken), CodeDir: dir,
		Python: testPython, Threads: 1, Input: in, Output: out, Timeout: Duration(20 * time.Second),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
	s, err := NewServer(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{URL: "http://" + ln.Addr().String(), Client: &http.Client{Timeout: 2 * time.Minute},
		srv: s, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { ts.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		ts.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

// stop drains the server and checks that Serve returned cleanly.
func (ts *testServer) stop(t testing.TB) {
	ts.cancel()
	select {
	case err := <-ts.done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Error("the server did not stop within a minute of its context ending")
	}
	ts.done <- nil // a second stop returns at once
}

func (ts *testServer) waitReady(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, inferapi.WaitReady(ctx, ts.Client, ts.URL))
}

// post sends body to path with the test token and returns status, content type and body.
func (ts *testServer) post(t *testing.T, path, contentType string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return ts.do(t, req)
}

func (ts *testServer) do(t *testing.T, req *http.Request) (int, string, []byte) {
	t.Helper()
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// requireError checks a JSON error answer and returns it.
func requireError(t *testing.T, status int, code string, gotStatus int, body []byte) APIError {
	t.Helper()
	var e APIError
	require.NoError(t, json.Unmarshal(body, &e), "error body: %s", body)
	require.Equal(t, code, e.Code, "body: %s", body)
	require.Equal(t, status, gotStatus, "body: %s", body)
	require.NotEmpty(t, e.Message)
	return e
}

// testImage is a deterministic RGB image; the red value of pixel (0,0) is mode,
// which the test algorithms read to pick a behaviour.
func testImage(w, h int, mode uint8) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x*7 + y*3), uint8(x*3 + y*11), uint8(x + y), 0xff})
		}
	}
	img.Pix[0] = mode
	return img
}

func pngBytes(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, "png", format)
	return img
}

// lockedBuffer collects a server's logs; writes after the test ended are harmless.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
