package ec2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// The fetch script of an environment onnx deployment: the sealed bundle
// names the ONNX Runtime library by SHA-256 (ONNXRuntimeSumFile), and the
// script downloads <artifacts>/onnxruntime/<sum>/libonnxruntime.so.1 into
// <home>/ONNXRuntimePath, checks the sum, keeps it across restarts while the
// sum stays, and refuses a library whose bytes do not match. A config that
// runs no Python from the venv gets no venv.
func TestFetchScript_ONNXRuntime(t *testing.T) {
	master := bytes.Repeat([]byte{5}, 32)
	keys, err := DeriveBundleKeys(master, "dep-onnx")
	require.NoError(t, err)
	libV1 := bytes.Repeat([]byte("libonnxruntime v1\x00"), 1000)
	sumOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	bundleFor := func(sum string) []byte {
		sealed, err := SealBundle(keys, tarGz(t, map[string]string{
			"live.json.in":                  `{"listen":"` + bundlelayout.ListenPlaceholder + `","onnxruntime_lib":"` + bundlelayout.HomePlaceholder + "/" + bundlelayout.ONNXRuntimePath + `","python":"/usr/bin/python3"}`,
			"requirements.txt":              "",
			bundlelayout.ONNXRuntimeSumFile: sum + "\n",
			"code/aai_onnx.json":            `{"model":"m.onnx"}`,
		}))
		require.NoError(t, err)
		return sealed
	}
	var (
		mu         sync.Mutex
		bundle     = bundleFor(sumOf(libV1))
		libs       = map[string][]byte{sumOf(libV1): libV1} // what the store serves, by the sum in its path
		libFetches atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/art/algocloud-infer":
			_, _ = w.Write([]byte("#!/bin/sh\necho infer\n"))
		case "/art/dep-onnx/bundle.enc":
			_, _ = w.Write(bundle)
		default:
			for sum, b := range libs {
				if r.URL.Path == "/art/onnxruntime/"+sum+"/libonnxruntime.so.1" {
					libFetches.Add(1)
					_, _ = w.Write(b)
					return
				}
			}
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	ud, err := EncryptedUserData(compute.ServerSpec{DeploymentID: "dep-onnx", APIName: "textdir", InstanceType: "t3.small"}, srv.URL+"/art", 8443, keys)
	require.NoError(t, err)
	require.Less(t, len(ud), maxUserData)
	script, err := FetchScript(ud)
	require.NoError(t, err)
	home := t.TempDir()
	run := func() ([]byte, error) {
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "ALGOCLOUD_HOME="+home, "ALGOCLOUD_LISTEN=127.0.0.1:8443")
		return cmd.CombinedOutput()
	}
	libPath := filepath.Join(home, bundlelayout.ONNXRuntimePath)

	out, err := run()
	require.NoError(t, err, string(out))
	got, err := os.ReadFile(libPath)
	require.NoError(t, err)
	require.Equal(t, libV1, got)
	live, err := os.ReadFile(filepath.Join(home, "bundle", "live.json"))
	require.NoError(t, err)
	require.Contains(t, string(live), `"onnxruntime_lib":"`+libPath+`"`)
	require.NoDirExists(t, filepath.Join(home, "venv"), "no Python runs from a venv: none made")
	require.Equal(t, int32(1), libFetches.Load())

	// A restart with the same sum keeps the library it has.
	out, err = run()
	require.NoError(t, err, string(out))
	require.Equal(t, int32(1), libFetches.Load(), "not downloaded again")

	// A bundle naming a new library whose served bytes do not match its sum
	// (a changed object): refused, and the library in place stays.
	libV2 := bytes.Repeat([]byte("libonnxruntime v2\x00"), 1000)
	mu.Lock()
	bundle = bundleFor(sumOf(libV2))
	libs[sumOf(libV2)] = []byte("not the library the bundle names")
	mu.Unlock()
	out, err = run()
	require.Error(t, err)
	require.Contains(t, string(out), "ONNX Runtime SHA-256 mismatch")
	got, err = os.ReadFile(libPath)
	require.NoError(t, err)
	require.Equal(t, libV1, got)
	require.NoFileExists(t, libPath+".new")

	// Served as named: replaced.
	mu.Lock()
	libs[sumOf(libV2)] = libV2
	mu.Unlock()
	out, err = run()
	require.NoError(t, err, string(out))
	got, err = os.ReadFile(libPath)
	require.NoError(t, err)
	require.Equal(t, libV2, got)

	// A sum that is not one is refused before any download.
	mu.Lock()
	bundle = bundleFor("../../etc/passwd")
	mu.Unlock()
	before := libFetches.Load()
	out, err = run()
	require.Error(t, err)
	require.Contains(t, string(out), "is not a SHA-256")
	require.Equal(t, before, libFetches.Load())
}
