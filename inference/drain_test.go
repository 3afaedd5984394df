package inference

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// noisePNG is a PNG of random pixels (it does not compress) of about size bytes.
func noisePNG(t testing.TB, size int) []byte {
	side := 16
	for side*side*4 < size {
		side++
	}
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// tlsServer starts a real server over TLS (as endpoints run) and returns it
// with the CA root's PEM file for curl and Python.
func tlsServer(t *testing.T, code string, mutate func(*Config)) (*testServer, string) {
	t.Helper()
	ca := testenv.NewCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := ca.Leaf(t, "127.0.0.1")
	certFile, keyFile, rootFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "root.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	require.NoError(t, os.WriteFile(rootFile, ca.RootPEM(), 0o600))
	ts := startServer(t, codeDir(t, code), spec.Image, spec.Image, func(c *Config) {
		c.CertFile, c.KeyFile = certFile, keyFile
		if mutate != nil {
			mutate(c)
		}
	})
	ts.URL = "https://" + strings.TrimPrefix(ts.URL, "http://")
	ts.Client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	ts.waitReady(t)
	return ts, rootFile
}

// earlyCase is a request the server answers without needing its body.
type earlyCase struct {
	name        string
	token       string
	contentType string
	body        []byte
	status      int
	code        string
}

// earlyAnswersPy sends each case (a JSON list on stdin) several times with
// urllib and with the generated client module, and prints one line per try:
// "client case status" or "client case ERROR exception".
const earlyAnswersPy = `
import json, ssl, sys, urllib.error, urllib.request
import numpy as np
import algocloud_client

url, ca, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=ca)
for c in cases:
    body = open(c["file"], "rb").read()
    for i in range(repeat):
        req = urllib.request.Request(url + "/predict", data=body, method="POST",
            headers={"Authorization": "Bearer " + c["token"], "Content-Type": c["content_type"]})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
                print("urllib", c["name"], r.status, flush=True)
        except urllib.error.HTTPError as e:
            e.read()
            print("urllib", c["name"], e.code, flush=True)
        except Exception as e:
            print("urllib", c["name"], "ERROR", repr(e).replace("\n", " "), flush=True)
        # The generated client: image bytes as they are; the wrong type as a
        # numpy array of about the same size (it picks Content-Type itself).
        if c["content_type"] == "image/png":
            algo = algocloud_client.Algorithm(url, token=c["token"], ca=ca)
            x = body
        else:
            algo = algocloud_client.Algorithm(url, token=c["token"], ca=ca, input_type="numpy")
            x = np.zeros(len(body) // 4, dtype=np.float32)
        try:
            algo.predict_raw(x)
            print("client", c["name"], 200, flush=True)
        except algocloud_client.AlgorithmError as e:
            print("client", c["name"], e.status, flush=True)
        except Exception as e:
            print("client", c["name"], "ERROR", repr(e).replace("\n", " "), flush=True)
`

// generatedClient writes the generated Python client module for ts into dir.
func generatedClient(t *testing.T, dir, endpoint string) {
	t.Helper()
	clients, err := templates.Clients(templates.ClientData{Name: "drain", APIName: "drain", Endpoint: endpoint, Input: spec.Image, Output: spec.Image})
	require.NoError(t, err)
	for _, c := range clients {
		if c.Filename == "algocloud_client.py" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, c.Filename), []byte(c.Content), 0o644))
			return
		}
	}
	t.Fatal("no algocloud_client.py among the generated clients")
}

// runEarlyCases sends every case `repeat` times with a Go client, curl,
// urllib and the generated Python client, and checks that each try read
// the expected status (and, for Go, the JSON error code): never a reset.
func runEarlyCases(t *testing.T, ts *testServer, root string, cases []earlyCase, repeat int) {
	t.Helper()
	dir := t.TempDir()
	generatedClient(t, dir, ts.URL)
	type pyCase struct {
		Name        string `json:"name"`
		Token       string `json:"token"`
		ContentType string `json:"content_type"`
		File        string `json:"file"`
	}
	var py []pyCase
	for i, c := range cases {
		file := filepath.Join(dir, fmt.Sprintf("body%d", i))
		require.NoError(t, os.WriteFile(file, c.body, 0o600))
		py = append(py, pyCase{Name: c.name, Token: c.token, ContentType: c.contentType, File: file})

		for i := 0; i < repeat; i++ {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(c.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Content-Type", c.contentType)
			resp, err := ts.Client.Do(req)
			require.NoError(t, err, "Go client, %s, try %d", c.name, i+1)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			requireError(t, c.status, c.code, resp.StatusCode, b)

			// curl speaks HTTP/2 to the endpoint (ALPN) unless told otherwise.
			for _, proto := range []string{"--http2", "--http1.1"} {
				out, err := exec.Command("/usr/bin/curl", "-sS", proto, "--cacert", root, "-o", "/dev/null", "-w", "%{http_code}",
					"-H", "Authorization: Bearer "+c.token, "-H", "Content-Type: "+c.contentType,
					"--data-binary", "@"+file, ts.URL+"/predict").CombinedOutput()
				require.NoError(t, err, "curl %s, %s, try %d: %s", proto, c.name, i+1, out)
				require.Equal(t, fmt.Sprint(c.status), string(out), "curl %s, %s, try %d", proto, c.name, i+1)
			}
		}
	}
	in, err := json.Marshal(py)
	require.NoError(t, err)
	cmd := exec.Command(testPython, "-c", earlyAnswersPy, ts.URL, root, fmt.Sprint(repeat))
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2*repeat*len(cases), "%s", out)
	for _, c := range cases {
		for _, client := range []string{"urllib", "client"} {
			want := fmt.Sprintf("%s %s %d", client, c.name, c.status)
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(l, client+" "+c.name+" ") {
					require.Equal(t, want, l, "every try reads the status, never a reset:\n%s", out)
					n++
				}
			}
			require.Equal(t, repeat, n, "%s", out)
		}
	}
}

// TestEarlyAnswersReachClientsSendingLargeBodies: answers given before the
// body is read (401 wrong token, 415 wrong Content-Type, 413 declared length
// over the limit) reach clients that send 0.4-0.8 MB (and, for 413, a body
// modestly over a small limit) over TLS, every time, with Go, curl, urllib
// and the generated Python client: the server discards the body instead of
// resetting the connection under the client's feet. Each case runs three
// times (the reported failure was 3 of 3).
func TestEarlyAnswersReachClientsSendingLargeBodies(t *testing.T) {
	ts, root := tlsServer(t, invertAlgorithm, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	png788k := noisePNG(t, 788<<10)
	png400k := noisePNG(t, 400<<10)
	over := noisePNG(t, 1300<<10) // 1.3 MB against a 1 MiB limit
	require.Greater(t, int64(len(over)), int64(1<<20))
	runEarlyCases(t, ts, root, []earlyCase{
		{name: "wrong-token-788k", token: "wrong", contentType: "image/png", body: png788k, status: 401, code: CodeUnauthorized},
		{name: "wrong-token-400k", token: "wrong", contentType: "image/png", body: png400k, status: 401, code: CodeUnauthorized},
		{name: "wrong-type-788k", token: testToken, contentType: "application/x-npy", body: png788k, status: 415, code: CodeUnsupportedMedia},
		{name: "too-large", token: testToken, contentType: "image/png", body: over, status: 413, code: CodeBodyTooLarge},
	}, 3)
	// The connection that carried a drained 401 serves the next request.
	status, _, out := ts.post(t, "/predict", "image/png", pngBytes(t, testImage(8, 8, 1)))
	require.Equal(t, http.StatusOK, status, "%s", out)
}

// TestOverloadedAnswersReachClients: with the server's admission full (two
// requests holding it while they trickle their bodies), a 429 reaches Go,
// curl, urllib and the generated client sending 0.8 MB, every time; then
// many concurrent large requests at a server with a tiny queue each read a
// status (200 or 429), never a reset.
func TestOverloadedAnswersReachClients(t *testing.T) {
	ts, root := tlsServer(t, invertAlgorithm, func(c *Config) { c.MaxQueueSize = 1 })
	// Two requests whose bodies never end hold both admissions (queue 1 +
	// one worker); every other request is refused on arrival.
	var holders []*io.PipeWriter
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		pr, pw := io.Pipe()
		holders = append(holders, pw)
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // before the server drains
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", pr)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "image/png")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := ts.Client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		_, err = pw.Write([]byte("\x89PNG"))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		status, _, _ := ts.post(t, "/predict", "image/png", []byte("x"))
		return status == http.StatusTooManyRequests
	}, 30*time.Second, 50*time.Millisecond)
	runEarlyCases(t, ts, root, []earlyCase{
		{name: "overloaded-788k", token: testToken, contentType: "image/png", body: noisePNG(t, 788<<10), status: 429, code: CodeOverloaded},
	}, 3)
	for _, pw := range holders {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	wg.Wait()

	// A burst: 48 concurrent 0.6 MB images, Go and Python at once.
	body := noisePNG(t, 600<<10)
	dir := t.TempDir()
	file := filepath.Join(dir, "body.png")
	require.NoError(t, os.WriteFile(file, body, 0o600))
	burstPy := `
import ssl, sys, threading, urllib.error, urllib.request
url, ca, path = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=ca)
out, lock = [], threading.Lock()
def one():
    req = urllib.request.Request(url + "/predict", data=body, method="POST",
        headers={"Authorization": "Bearer ` + testToken + `", "Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=120) as r:
            r.read(); s = str(r.status)
    except urllib.error.HTTPError as e:
        e.read(); s = str(e.code)
    except Exception as e:
        s = "ERROR " + repr(e)
    with lock:
        out.append(s)
ts = [threading.Thread(target=one) for _ in range(24)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(out))
`
	pyOut := make(chan []byte, 1)
	go func() {
		out, err := exec.Command(testPython, "-c", burstPy, ts.URL, root, file).CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nERROR "+err.Error())...)
		}
		pyOut <- out
	}()
	statuses := make(chan string, 24)
	for i := 0; i < 24; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "image/png")
			resp, err := ts.Client.Do(req)
			if err != nil {
				statuses <- "ERROR " + err.Error()
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				statuses <- "ERROR reading the answer: " + err.Error()
				return
			}
			statuses <- fmt.Sprint(resp.StatusCode)
		}()
	}
	counts := map[string]int{}
	for i := 0; i < 24; i++ {
		counts[<-statuses]++
	}
	py := <-pyOut
	for _, l := range strings.Split(strings.TrimSpace(string(py)), "\n") {
		counts[l]++
	}
	for s, n := range counts {
		require.Contains(t, []string{"200", "429"}, s, "every answer is a status, never a reset: %v", counts)
		require.Positive(t, n)
	}
	require.Equal(t, 48, counts["200"]+counts["429"], "%v", counts)
	require.Positive(t, counts["429"], "the burst overflowed the tiny queue: %v", counts)
}
