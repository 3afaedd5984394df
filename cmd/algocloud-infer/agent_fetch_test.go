package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
)

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(data))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// A remote agent fetches a command's sealed objects from its bundle URL
// (a real HTTP server on 127.0.0.1), opens them with its keys file, unpacks
// them where the payload says (the home placeholder replaced by --home),
// does not fetch a content-addressed code revision twice, and refuses an
// object sealed with other keys, a member outside the folder and a folder
// outside its home, running nothing.
func TestAgentRemoteFetch(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	keys, err := bundlelayout.DeriveKeys(master, "dep-1")
	require.NoError(t, err)
	other, err := bundlelayout.DeriveKeys(master, "dep-2")
	require.NoError(t, err)
	objects := map[string][]byte{}
	seal := func(name string, k bundlelayout.Keys, files map[string]string) {
		b, err := bundlelayout.Seal(k, tarGz(t, files))
		require.NoError(t, err)
		objects[name] = b
	}
	seal(bundlelayout.CodeObject("abc"), keys, map[string]string{"aai_main.py": "print(1)\n", "models/m.txt": "m"})
	seal(bundlelayout.CodeObject("forged"), other, map[string]string{"aai_main.py": "evil\n"})
	seal(bundlelayout.CodeObject("escape"), keys, map[string]string{"../escape.txt": "x"})
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		b, ok := objects[r.URL.Path[len("/dep-1/"):]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()

	home := t.TempDir()
	agentDir := filepath.Join(home, "agent")
	require.NoError(t, os.MkdirAll(agentDir, 0o700))
	keysFile := filepath.Join(agentDir, "bundle.keys")
	require.NoError(t, os.WriteFile(keysFile, []byte(bundlelayout.FormatKeys(keys)), 0o600))
	rf := &remoteFlags{home: home, bundleURL: srv.URL + "/dep-1", keysFile: keysFile}
	r, err := rf.newRemote(agentDir)
	require.NoError(t, err)
	a := &agentRuntime{dir: agentDir, remote: r}

	var ran []commands.Install
	h := a.prepared(func(_ context.Context, cmd protocol.Command, _ func(...string)) (json.RawMessage, error) {
		var in commands.Install
		require.NoError(t, decodePayload(cmd, &in))
		ran = append(ran, in)
		return json.RawMessage(`{}`), nil
	})
	run := func(object, into string) error {
		p, _ := json.Marshal(commands.Install{Fetch: []commands.Fetch{{Object: object, Into: into}}, CodeDir: into, Venv: commands.HomePlaceholder + "/installs/1/venv"})
		_, err := h(context.Background(), protocol.Command{ID: "c", Kind: commands.KindInstall, Payload: p}, func(...string) {})
		return err
	}
	into := commands.HomePlaceholder + "/code/abc"
	require.NoError(t, run(bundlelayout.CodeObject("abc"), into))
	require.Len(t, ran, 1)
	require.Equal(t, filepath.Join(home, "code", "abc"), ran[0].CodeDir, "the placeholder is the home")
	require.Equal(t, filepath.Join(home, "installs", "1", "venv"), ran[0].Venv)
	b, err := os.ReadFile(filepath.Join(home, "code", "abc", "models", "m.txt"))
	require.NoError(t, err)
	require.Equal(t, "m", string(b))
	require.Equal(t, int32(1), gets.Load())
	require.NoError(t, run(bundlelayout.CodeObject("abc"), into))
	require.Equal(t, int32(1), gets.Load(), "a content-addressed revision already there is not fetched again")

	require.ErrorIs(t, run(bundlelayout.CodeObject("forged"), commands.HomePlaceholder+"/code/forged"), bundlelayout.ErrMAC)
	require.NoDirExists(t, filepath.Join(home, "code", "forged"))
	require.ErrorContains(t, run(bundlelayout.CodeObject("escape"), commands.HomePlaceholder+"/code/escape"), "outside the folder")
	require.NoFileExists(t, filepath.Join(home, "code", "escape.txt"))
	require.ErrorContains(t, run(bundlelayout.CodeObject("abc"), "/tmp/elsewhere"), "inside the home")
	require.ErrorContains(t, run(bundlelayout.CodeObject("abc"), commands.HomePlaceholder+"/agent/x"), "agent's folder")
	require.ErrorContains(t, run("../x", into), "not valid")
	require.Len(t, ran, 2, "no handler ran after a refused fetch")
}

// A remote agent fetches a public, content-addressed file a command names
// by SHA-256 (the ONNX Runtime library) from its --artifacts-url (a real
// HTTP server on 127.0.0.1): it puts it at the path the payload names
// (0755), does not fetch it again while the sum matches, and refuses a file
// whose bytes do not have the named sum, leaving nothing in place.
func TestAgentRemoteFetchBySum(t *testing.T) {
	lib := []byte("\x7fELF not really a library")
	sum := sha256.Sum256(lib)
	good := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		switch r.URL.Path {
		case "/algocloud/" + bundlelayout.ONNXRuntimeObject(good), "/algocloud/" + bundlelayout.ONNXRuntimeObject(wrong):
			_, _ = w.Write(lib)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	home := t.TempDir()
	agentDir := filepath.Join(home, "agent")
	require.NoError(t, os.MkdirAll(agentDir, 0o700))
	r, err := (&remoteFlags{home: home, artifactsURL: srv.URL + "/algocloud/"}).newRemote(agentDir)
	require.NoError(t, err)
	a := &agentRuntime{dir: agentDir, remote: r}
	ran := 0
	h := a.prepared(func(context.Context, protocol.Command, func(...string)) (json.RawMessage, error) {
		ran++
		return json.RawMessage(`{}`), nil
	})
	run := func(f commands.Fetch) error {
		p, _ := json.Marshal(commands.Test{Fetch: []commands.Fetch{f}})
		_, err := h(context.Background(), protocol.Command{ID: "c", Kind: commands.KindTest, Payload: p}, func(...string) {})
		return err
	}
	into := commands.HomePlaceholder + "/" + bundlelayout.ONNXRuntimePath
	require.NoError(t, run(commands.Fetch{Object: bundlelayout.ONNXRuntimeObject(good), Into: into, SHA256: good}))
	path := filepath.Join(home, bundlelayout.ONNXRuntimePath)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, lib, got)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	require.NoError(t, run(commands.Fetch{Object: bundlelayout.ONNXRuntimeObject(good), Into: into, SHA256: good}))
	require.Equal(t, int32(1), gets.Load(), "a file with the sum already there is not fetched again")
	require.Equal(t, 2, ran)

	other := commands.HomePlaceholder + "/lib/other.so"
	require.ErrorContains(t, run(commands.Fetch{Object: bundlelayout.ONNXRuntimeObject(wrong), Into: other, SHA256: wrong}), "SHA-256 mismatch")
	require.NoFileExists(t, filepath.Join(home, "lib", "other.so"))
	require.NoFileExists(t, filepath.Join(home, "lib", "other.so.new"))
	require.ErrorContains(t, run(commands.Fetch{Object: bundlelayout.ONNXRuntimeObject(good), Into: other, SHA256: "xyz"}), "64 hex digits")
	require.ErrorContains(t, run(commands.Fetch{Object: bundlelayout.ONNXRuntimeObject(good), Into: commands.HomePlaceholder + "/agent/lib.so", SHA256: good}), "agent's folder")
	require.ErrorContains(t, run(commands.Fetch{Object: "../x", Into: other, SHA256: good}), "not valid")
	require.Equal(t, 2, ran, "no handler ran after a refused fetch")
}
