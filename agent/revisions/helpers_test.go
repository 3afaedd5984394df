package revisions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/loadgen"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// inferBin is the real algocloud-infer: $ALGOCLOUD_INFER_BIN (after
// ./scripts/build.sh), else built once by TestMain.
var inferBin string

func TestMain(m *testing.M) {
	inferBin = os.Getenv("ALGOCLOUD_INFER_BIN")
	var tmp string
	if inferBin == "" {
		var err error
		tmp, err = os.MkdirTemp("", "revisions-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		inferBin = filepath.Join(tmp, "algocloud-infer")
		build := exec.Command("go", "build", "-o", inferBin, "github.com/algocloud/algocloud/cmd/algocloud-infer")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build algocloud-infer:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

const testToken = "ep_swap-test-token"

// Variants of examples/segmentation's aai_main.py for the revisions.
const (
	// slowHook makes predict sleep 3 s for an image 7 pixels wide: the
	// slow in-flight request of the swap test.
	slowHook = "\n        if x.shape[1] == 7:\n            import time; time.sleep(3)\n"
	// inverted answers the inverted mask: the new revision's answers differ.
	inverted = "return ~(gray > t)"
)

// endpoint is what the tests' revisions share: the port, TLS, the token.
type endpoint struct {
	dir    string
	addr   string
	ca     *testenv.CA
	cert   string
	key    string
	client *http.Client // HTTP/1.1
	h2     *http.Client // HTTP/2
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, PIL").Run(); err != nil {
		t.Fatalf("/usr/bin/python3 with numpy and Pillow is needed: run scripts/setup.sh (%v)", err)
	}
	dir := t.TempDir()
	e := &endpoint{dir: dir, addr: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), ca: testenv.NewCA(t),
		cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	e.ca.WriteLeaf(t, "endpoint", e.cert, e.key)
	tc := &tls.Config{RootCAs: e.ca.Pool}
	e.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	e.h2 = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true}}
	return e
}

// revision writes a revision: examples/segmentation's code with edit
// applied to aai_main.py, and its inference config (python: the
// interpreter; threads).
func (e *endpoint) revision(t *testing.T, id string, python string, threads int, edit func(string) string) Revision {
	return e.revisionIn(t, id, python, threads, nil, edit)
}

// revisionIn is revision with the workers in box (nil: unconfined).
func (e *endpoint) revisionIn(t *testing.T, id string, python string, threads int, box *sandbox.Config, edit func(string) string) Revision {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "segmentation", "aai_main.py"))
	require.NoError(t, err)
	code := filepath.Join(e.dir, "rev-"+id, "code")
	require.NoError(t, os.MkdirAll(code, 0o755))
	main := strings.Replace(string(src), "        gray = np.asarray", slowHook+"        gray = np.asarray", 1)
	if edit != nil {
		main = edit(main)
	}
	require.NoError(t, os.WriteFile(filepath.Join(code, "aai_main.py"), []byte(main), 0o644))
	sum := sha256.Sum256([]byte(testToken))
	cfg := filepath.Join(e.dir, "rev-"+id, "inference.json")
	require.NoError(t, inferapi.WriteConfig(cfg, inferapi.Config{
		Name: "otsu", Listen: "ignored:0", CertFile: e.cert, KeyFile: e.key, TokenSHA256: hex.EncodeToString(sum[:]),
		CodeDir: code, Python: python, Threads: threads, Input: spec.Image, Output: spec.Image,
		Timeout: inferapi.Duration(30 * time.Second), Sandbox: box,
	}))
	return Revision{ID: id, Config: cfg}
}

// venv makes a venv that sees Debian's numpy and Pillow (no PyPI here), as
// a revision with other requirements would have.
func venv(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-m", "venv", "--system-site-packages", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	return filepath.Join(dir, "bin", "python")
}

// testPNG is a bright disc on a dark background, w pixels wide.
func testPNG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x-w/2), float64(y-h/2)
			c := color.RGBA{20, 20, 20, 255}
			if dx*dx+dy*dy < float64(h*h)/9 {
				c = color.RGBA{220, 220, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// predict posts img and says which revision answered: "old" (the disc's
// centre is white) or "new" (inverted: black).
func (e *endpoint) predict(ctx context.Context, c *http.Client, img []byte) (string, error) {
	return loadgen.PredictPNG(ctx, c, "https://"+e.addr+"/predict", testToken, img)
}

// load is clients sending requests back to back until stopped.
type load struct{ *loadgen.Load }

// startLoad starts n clients (half on HTTP/1.1, half on HTTP/2); the
// test's cleanup stops them.
func (e *endpoint) startLoad(t *testing.T, n int) *load {
	img := testPNG(t, 64, 48)
	l := &load{loadgen.Start(context.Background(), loadgen.Options{Clients: n, DropCancelled: true},
		func(ctx context.Context, i int) (string, error) {
			c := e.client
			if i%2 == 1 {
				c = e.h2
			}
			return e.predict(ctx, c, img)
		})}
	t.Cleanup(l.Stop)
	return l
}

// waitOK waits until the clients have had n more answers.
func (l *load) waitOK(t *testing.T, n int64) {
	t.Helper()
	want := l.OK() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.OK() < want {
		if time.Now().After(deadline) {
			t.Fatalf("no %d answers within a minute; failures: %v", n, l.Failures())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servers lists the live inference server processes of this endpoint's
// revisions (their command line names a config under e.dir).
func (e *endpoint) servers(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("--listen-fd")) || !bytes.Contains(cmdline, []byte(e.dir)) {
			continue
		}
		if _, ok := startTicks(pid); ok { // not a zombie
			pids = append(pids, pid)
		}
	}
	return pids
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
