package templates_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// These tests run the generated clients for real: Debian's curl and python3
// against an inference server on a loopback port, over TLS with a CA made
// here. The jQuery page runs in Chromium (clients_browser_test.go), the Go
// client oapi-codegen generates in clients_oapigen_test.go.

const (
	liveToken = "ep_live-test-token"
	python    = "/usr/bin/python3"
	curl      = "/usr/bin/curl"
)

func requireTools(t *testing.T) {
	t.Helper()
	for _, c := range [][]string{{python, "-c", "import numpy, PIL"}, {curl, "--version"}} {
		require.NoError(t, exec.Command(c[0], c[1:]...).Run(), "%s is needed (scripts/setup.sh installs python3, scripts/setup-test.sh curl)", c[0])
	}
}

// testCA is a root and a leaf for 127.0.0.1, as files.
type testCA struct {
	RootFile, CertFile, KeyFile string
	Pool                        *x509.CertPool
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	root := testenv.NewCA(t)
	ca := testCA{RootFile: filepath.Join(dir, "root.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Pool: root.Pool}
	require.NoError(t, os.WriteFile(ca.RootFile, root.RootPEM(), 0o600))
	root.WriteLeaf(t, "127.0.0.1", ca.CertFile, ca.KeyFile)
	return ca
}

// endpoint is a live inference server.
type endpoint struct {
	URL    string
	Client *http.Client
}

// startEndpoint serves code (aai_main.py) as in->out; with ca it serves HTTPS.
func startEndpoint(t *testing.T, in, out spec.IOType, code string, ca *testCA) endpoint {
	t.Helper()
	dir := t.TempDir()
	if code != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "aai_main.py"), []byte(code), 0o644))
	}
	sum := sha256.Sum256([]byte(liveToken))
	cfg := inferapi.Config{
		Name: "otsu-segmentation", Listen: "127.0.0.1:0", TokenSHA256: hex.EncodeToString(sum[:]), CodeDir: dir,
		Python: python, Threads: 1, Input: in, Output: out, Timeout: inferapi.Duration(time.Minute),
		AllowPrivateURLs: true, // the image URL test serves its image on loopback
	}
	ep := endpoint{URL: "http://", Client: &http.Client{Timeout: time.Minute}}
	if ca != nil {
		cfg.CertFile, cfg.KeyFile = ca.CertFile, ca.KeyFile
		ep.URL = "https://"
		ep.Client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	}
	logs := &bytes.Buffer{}
	s, err := inference.NewServer(cfg, slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil)))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	require.NoError(t, err)
	ep.URL += ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("the inference server did not stop")
		}
		if t.Failed() {
			t.Logf("inference server log:\n%s", logs.String())
		}
	})
	if code != "" {
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
		defer wcancel()
		require.NoError(t, inferapi.WaitReady(wctx, ep.Client, ep.URL))
	}
	return ep
}

// syncWriter lets the server's goroutines log into one buffer.
type syncWriter struct {
	mu chan struct{}
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.w.Write(p)
}

// requireInverted checks that file is the PNG of want with every RGB channel inverted.
func requireInverted(t *testing.T, file string, want *image.NRGBA) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	got, format, err := image.Decode(bytes.NewReader(b))
	require.NoError(t, err, "%s: %.200q", file, b)
	require.Equal(t, "png", format)
	require.Equal(t, want.Bounds(), got.Bounds())
	for y := 0; y < want.Bounds().Dy(); y++ {
		for x := 0; x < want.Bounds().Dx(); x++ {
			w := want.NRGBAAt(x, y)
			r, g, bl, _ := got.At(x, y).RGBA()
			require.Equal(t, [3]uint8{255 - w.R, 255 - w.G, 255 - w.B}, [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}, "pixel (%d, %d)", x, y)
		}
	}
}

// npy is a little-endian float32 .npy file of shape (rows, cols).
func npy(rows, cols int, vals []float32) []byte {
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	b.WriteByte(byte(len(header)))
	b.WriteByte(byte(len(header) >> 8))
	b.WriteString(header)
	for _, v := range vals {
		var u [4]byte
		bits := math.Float32bits(v)
		u[0], u[1], u[2], u[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		b.Write(u[:])
	}
	return b.Bytes()
}

// liveCase is one API type: its algorithm, sample input and what the curl
// command and the Python snippet must produce.
type liveCase struct {
	in, out spec.IOType
	code    string
	input   func(t *testing.T) []byte
	// check inspects the folder a client ran in and its stdout.
	check func(t *testing.T, dir, stdout string)
	// pyChecks runs after `from algocloud_client import *` with algo, ca and
	// np in scope; it exercises the other input forms and errors.
	pyChecks string
}

var img16x12, img16x12PNG = func() (*image.NRGBA, []byte) {
	img := image.NewNRGBA(image.Rect(0, 0, 16, 12))
	for y := 0; y < 12; y++ {
		for x := 0; x < 16; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 13), uint8(y * 17), uint8(x*y + 5), 0xff})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return img, b.Bytes()
}()

func liveCases() []liveCase {
	pngInput := func(*testing.T) []byte { return img16x12PNG }
	return []liveCase{
		{
			in: spec.Image, out: spec.Image,
			code: "import numpy as np\n\nclass AAI:\n    def predict(self, x):\n        return 255 - x\n\n" +
				"    def testing_input_data(self):\n        return np.zeros((4, 4, 3), np.uint8)\n",
			input: pngInput,
			check: func(t *testing.T, dir, _ string) { requireInverted(t, filepath.Join(dir, "output.png"), img16x12) },
			pyChecks: `
a = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
out = algo.predict(a)
assert out.dtype == np.uint8 and out.shape == (5, 7, 3), (out.dtype, out.shape)
assert (out == 255 - a).all()
assert (algo.predict(Image.fromarray(a)) == 255 - a).all()
assert (algo.predict(a > 100) == 255 - (a > 100).astype(np.uint8) * 255).all()
assert (algo.predict(a / 255.0) == 255 - a).all()
assert (algo.predict(open("input.png", "rb").read()) == 255 - np.asarray(Image.open("input.png"))).all()
assert (algo.predict(IMAGE_URL) == 255 - np.asarray(Image.open("input.png"))).all()
try:
    algo.predict(b"not an image")
    raise SystemExit("no error for a bad image")
except AlgorithmError as e:
    assert e.status == 400 and e.code == "not_an_image", e
try:
    Algorithm(ENDPOINT, token="wrong", ca=ca).predict(a)
    raise SystemExit("no error for a bad token")
except AlgorithmError as e:
    assert e.status == 401 and e.code == "unauthorized", e
try:
    Algorithm(ENDPOINT, ca=None).predict(a)
    raise SystemExit("the endpoint's certificate was not verified")
except urllib.error.URLError as e:
    assert "CERTIFICATE_VERIFY_FAILED" in str(e), e
r = algo.test_input()
assert r.status == 200 and r.content_type == "image/png", (r.status, r.content_type)
`,
		},
		{
			in: spec.Image, out: spec.JSON,
			code: "class AAI:\n    def predict(self, x):\n        if x[0, 0, 0] == 1:\n            raise ValueError('pixel says boom')\n" +
				"        return {'height': x.shape[0], 'width': x.shape[1], 'sum': int(x.sum()), 'first': x[0, 0]}\n",
			input: pngInput,
			check: func(t *testing.T, _, stdout string) {
				var got map[string]any
				require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
				var sum float64
				for i := 0; i < len(img16x12.Pix); i += 4 {
					sum += float64(img16x12.Pix[i]) + float64(img16x12.Pix[i+1]) + float64(img16x12.Pix[i+2])
				}
				require.Equal(t, map[string]any{"height": 12.0, "width": 16.0, "sum": sum, "first": []any{0.0, 0.0, 5.0}}, got)
			},
			pyChecks: `
a = np.zeros((3, 2, 3), np.uint8)
assert algo.predict(a) == {"height": 3, "width": 2, "sum": 0, "first": [0, 0, 0]}, algo.predict(a)
a[0, 0, 0] = 1
try:
    algo.predict(a)
    raise SystemExit("no error from a raising predict")
except AlgorithmError as e:
    assert e.status == 500 and e.code == "predict_failed", e
    assert "ValueError: pixel says boom" in e.traceback and "aai_main.py" in e.traceback, e.traceback
`,
		},
		{
			in: spec.Numpy, out: spec.Numpy,
			code:  "import numpy as np\n\nclass AAI:\n    def predict(self, x):\n        return np.asarray(x, np.float64) * 2\n",
			input: func(*testing.T) []byte { return npy(2, 3, []float32{0, 1, 2, 3, 4.5, -1}) },
			check: func(t *testing.T, dir, _ string) {
				out, err := exec.Command(python, "-c", "import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape, a.tolist())",
					filepath.Join(dir, "output.npy")).CombinedOutput()
				require.NoError(t, err, "%s", out)
				require.Equal(t, "float64 (2, 3) [[0.0, 2.0, 4.0], [6.0, 9.0, -2.0]]", strings.TrimSpace(string(out)))
			},
			pyChecks: `
out = algo.predict(np.arange(6, dtype=np.int16).reshape(3, 2))
assert out.dtype == np.float64 and out.tolist() == [[0, 2], [4, 6], [8, 10]], out
assert algo.predict([1, 2]).tolist() == [2, 4]
assert algo.predict("input.npy").shape == (2, 3)
`,
		},
		{
			in: spec.JSON, out: spec.JSON,
			code:  "class AAI:\n    def predict(self, x):\n        return {'got': x}\n",
			input: func(*testing.T) []byte { return []byte(`{"a": [1, 2, 3], "b": "é"}`) },
			check: func(t *testing.T, _, stdout string) {
				require.JSONEq(t, `{"got": {"a": [1, 2, 3], "b": "é"}}`, stdout)
			},
			pyChecks: `
assert algo.predict({"n": np.int64(3), "arr": np.arange(3), "f": np.float32(0.5)}) == {"got": {"n": 3, "arr": [0, 1, 2], "f": 0.5}}
assert algo.predict([1, "two", None]) == {"got": [1, "two", None]}
assert algo.predict("just a string") == {"got": "just a string"}
assert algo.predict(pathlib.Path("input.json")) == {"got": {"a": [1, 2, 3], "b": "é"}}
`,
		},
		{
			in: spec.File, out: spec.File,
			code:  "class AAI:\n    def predict(self, x):\n        return (x.name + '.rev', x.data[::-1])\n",
			input: func(*testing.T) []byte { return []byte("a,b\n1,2\n") },
			check: func(t *testing.T, dir, _ string) {
				b, err := os.ReadFile(filepath.Join(dir, "input.csv.rev"))
				require.NoError(t, err)
				require.Equal(t, "\n2,1\nb,a", string(b))
			},
			pyChecks: `
assert algo.predict(("x.txt", b"abc")) == ("x.txt.rev", b"cba")
assert algo.predict(b"abc", filename="naïve name.bin") == ("naïve name.bin.rev", b"cba")
with open("input.csv", "rb") as f:
    assert algo.predict(f) == ("input.csv.rev", b"\n2,1\nb,a")
try:
    algo.predict(b"abc")
    raise SystemExit("no error without a file name")
except ValueError:
    pass
`,
		},
	}
}

// TestClientsLive runs, per API type, the curl script with /usr/bin/curl and
// the Python snippet and client module with /usr/bin/python3 against a live
// HTTPS endpoint, the CA root downloaded from a stand-in of the platform.
func TestClientsLive(t *testing.T) {
	requireTools(t)
	ca := newTestCA(t)
	root, err := os.ReadFile(ca.RootFile)
	require.NoError(t, err)
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/ca.pem":
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(root)
		case "/input.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(img16x12PNG)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(platform.Close)

	for _, lc := range liveCases() {
		t.Run(string(lc.in)+"->"+string(lc.out), func(t *testing.T) {
			ep := startEndpoint(t, lc.in, lc.out, lc.code, &ca)
			clients, err := templates.Clients(templates.ClientData{
				Name: "Live " + string(lc.in) + " to " + string(lc.out), APIName: "live", Endpoint: ep.URL,
				Input: lc.in, Output: lc.out, CAURL: platform.URL + "/api/ca.pem",
			})
			require.NoError(t, err)
			input := lc.input(t)
			inputFile := map[spec.IOType]string{spec.Image: "input.png", spec.Numpy: "input.npy", spec.JSON: "input.json", spec.File: "input.csv"}[lc.in]
			env := append(os.Environ(), "PATH=/usr/bin:/bin", templates.TokenEnv+"="+liveToken)
			// folder writes the clients and the input into a fresh folder.
			folder := func() string {
				dir := t.TempDir()
				for _, c := range clients {
					require.NoError(t, os.WriteFile(filepath.Join(dir, c.Filename), []byte(c.Content), 0o644))
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, inputFile), input, 0o644))
				return dir
			}
			run := func(dir string, name string, args ...string) string {
				cmd := exec.Command(name, args...)
				cmd.Dir, cmd.Env = dir, env
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				require.NoError(t, cmd.Run(), "%s %v\nstdout: %s\nstderr: %s", name, args, stdout.String(), stderr.String())
				return stdout.String()
			}

			t.Run("curl", func(t *testing.T) {
				dir := folder()
				stdout := run(dir, "/bin/sh", "predict.sh")
				_, err := os.Stat(filepath.Join(dir, "algocloud-ca.pem"))
				require.NoError(t, err, "the script downloads the CA root")
				lc.check(t, dir, stdout)
			})
			t.Run("python snippet", func(t *testing.T) {
				dir := folder()
				require.NoError(t, os.WriteFile(filepath.Join(dir, "algocloud-ca.pem"), root, 0o644))
				lc.check(t, dir, run(dir, python, "example.py"))
			})
			t.Run("python client", func(t *testing.T) {
				dir := folder()
				require.NoError(t, os.WriteFile(filepath.Join(dir, "algocloud-ca.pem"), root, 0o644))
				script := "import pathlib, urllib.error\nimport numpy as np\nfrom PIL import Image\nfrom algocloud_client import *\n" +
					"from algocloud_client import ENDPOINT\n" +
					"ca = 'algocloud-ca.pem'\nalgo = Algorithm(ENDPOINT, ca=ca)\nIMAGE_URL = " + fmt.Sprintf("%q", platform.URL+"/input.png") + "\n" +
					lc.pyChecks + "\nprint('ok')\n"
				require.NoError(t, os.WriteFile(filepath.Join(dir, "checks.py"), []byte(script), 0o644))
				require.Equal(t, "ok\n", run(dir, python, "checks.py"))
			})
		})
	}
}

// TestClientOpenAPIMatchesInference checks that the clients listing's
// openapi.json is, byte for byte, what the endpoint serves at /openapi.json,
// for every API type, and that kin-openapi validates it, examples included.
func TestClientOpenAPIMatchesInference(t *testing.T) {
	requireTools(t)
	for pair := range spec.SupportedPairs {
		t.Run(pair.String(), func(t *testing.T) {
			t.Parallel()
			ep := startEndpoint(t, pair.In, pair.Out, "", nil) // no aai_main.py: /openapi.json does not need workers
			resp, err := ep.Client.Get(ep.URL + "/openapi.json")
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			live, err := io.ReadAll(resp.Body)
			require.NoError(t, err)

			clients, err := templates.Clients(templates.ClientData{
				Name: "Otsu segmentation", APIName: "otsu-segmentation", Endpoint: ep.URL,
				Input: pair.In, Output: pair.Out, CAURL: "http://127.0.0.1:8080/api/ca.pem",
			})
			require.NoError(t, err)
			raw := []byte(clients[templates.ClientOpenAPI].Content)
			require.Equal(t, string(live), string(raw), "the clients listing's openapi.json is not the endpoint's /openapi.json")

			doc, err := openapi3.NewLoader().LoadFromData(raw)
			require.NoError(t, err)
			require.NoError(t, doc.Validate(context.Background(), openapi3.EnableExamplesValidation()))
			require.Equal(t, ep.URL, doc.Servers[0].URL)
			require.Equal(t, "bearer", doc.Components.SecuritySchemes["bearerAuth"].Value.Scheme)
		})
	}
}
