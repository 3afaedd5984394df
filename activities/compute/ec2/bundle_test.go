package ec2

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"github.com/algocloud/algocloud/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestSealBundle_RoundTripAndTamper(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	k, err := DeriveBundleKeys(master, "dep-a")
	require.NoError(t, err)
	other, err := DeriveBundleKeys(master, "dep-b")
	require.NoError(t, err)
	require.NotEqual(t, k, other, "each deployment has its own keys")
	require.NotEqual(t, k.Enc, k.MAC)

	sealed, err := SealBundle(k, []byte("secret bundle"))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "secret")
	plain, err := OpenBundle(k, sealed)
	require.NoError(t, err)
	require.Equal(t, "secret bundle", string(plain))
	_, err = OpenBundle(other, sealed)
	require.ErrorIs(t, err, ErrBundleMAC)
	sealed[20] ^= 1
	_, err = OpenBundle(k, sealed)
	require.ErrorIs(t, err, ErrBundleMAC)
	_, err = DeriveBundleKeys([]byte("short"), "x")
	require.Error(t, err)
}

// The fetch script of the encrypted user data, run by bash with the
// machine's curl, openssl and tar, opens what SealBundle wrote: the format
// the worker writes is the one instances read. A bundle sealed for another
// deployment is refused. The venv is made by the real algocloud-infer's
// install mode, in the config's sandbox: as root, its files are the
// sandbox uid's.
func TestFetchScript_OpensSealedBundle(t *testing.T) {
	testenv.RequireSandbox(t)
	infer, err := os.ReadFile(inferBinary(t))
	require.NoError(t, err)
	master := bytes.Repeat([]byte{9}, 32)
	keys, err := DeriveBundleKeys(master, "dep-fetch")
	require.NoError(t, err)
	box := `"sandbox":{"mode":"bwrap","network":"none","group":"dep-fetch-` + strconv.Itoa(os.Getpid()) + `.live","limits":{"memory_bytes":1073741824,"cpus":1,"pids":256}}`
	bundle := tarGz(t, map[string]string{
		"live.json.in":     `{"listen":"` + bundlelayout.ListenPlaceholder + `","code_dir":"` + bundlelayout.HomePlaceholder + `/bundle/code","python":"` + bundlelayout.HomePlaceholder + `/venv/bin/python",` + box + `}`,
		"requirements.txt": "",
		"code/aai_main.py": "print('hi')\n",
		"tls/key.pem":      "BUNDLE KEY",
	})
	var served atomic.Value
	sealed, err := SealBundle(keys, bundle)
	require.NoError(t, err)
	served.Store(sealed)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/art/algocloud-infer":
			_, _ = w.Write(infer)
		case "/art/dep-fetch/bundle.enc":
			_, _ = w.Write(served.Load().([]byte))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	ud, err := EncryptedUserData(compute.ServerSpec{DeploymentID: "dep-fetch", APIName: "seg", InstanceType: "t3.small"}, srv.URL+"/art", 8443, keys)
	require.NoError(t, err)
	require.NotContains(t, ud, "bundle.tar.gz")
	script, err := FetchScript(ud)
	require.NoError(t, err)
	home := t.TempDir()
	run := func(env ...string) ([]byte, error) {
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(append(os.Environ(), "ALGOCLOUD_HOME="+home, "ALGOCLOUD_LISTEN=127.0.0.1:8443"), env...)
		return cmd.CombinedOutput()
	}
	out, err := run()
	require.NoError(t, err, string(out))
	live, err := os.ReadFile(filepath.Join(home, "bundle", "live.json"))
	require.NoError(t, err)
	require.Equal(t, `{"listen":"127.0.0.1:8443","code_dir":"`+home+`/bundle/code","python":"`+home+`/venv/bin/python",`+box+`}`, strings.TrimSpace(string(live)))
	code, err := os.ReadFile(filepath.Join(home, "bundle", "code", "aai_main.py"))
	require.NoError(t, err)
	require.Equal(t, "print('hi')\n", string(code))
	require.FileExists(t, filepath.Join(home, "venv", "bin", "python"))
	require.FileExists(t, filepath.Join(home, "bin", "algocloud-infer"))
	require.Contains(t, string(out), "install: venv "+home+"/venv in sandbox dep-fetch-"+strconv.Itoa(os.Getpid())+".install")
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(filepath.Join(home, "venv", "pyvenv.cfg"), &st))
		require.GreaterOrEqual(t, int(st.Uid), sandbox.UIDBase, "the venv was made by the sandbox's uid, not root")
		// That uid cannot read the bundle's key (bundle/ is 0700, the key 0600).
		cat := exec.Command("cat", filepath.Join(home, "bundle", "tls", "key.pem"))
		cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}}
		got, err := cat.CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(got), "Permission denied")
	}
	for path, mode := range map[string]os.FileMode{"bundle": 0o700, "bundle/tls/key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(home, path))
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), path)
	}

	// Under systemd (the unit sets ALGOCLOUD_INSTALL_UNIT=1) the install
	// is a transient unit with the service's hardening. There is no systemd
	// here: a stand-in systemd-run records its arguments and runs the
	// command it was given.
	fake := t.TempDir()
	argsFile := filepath.Join(fake, "args")
	require.NoError(t, os.WriteFile(filepath.Join(fake, "systemd-run"), []byte(`#!/bin/bash
printf '%s\n' "$@" >`+argsFile+`
while [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -*) shift;; *) break;; esac; done
exec "$@"
`), 0o755))
	out, err = run("ALGOCLOUD_INSTALL_UNIT=1", "PATH="+fake+":"+os.Getenv("PATH"))
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "install: venv "+home+"/venv")
	args, err := os.ReadFile(argsFile)
	require.NoError(t, err)
	argv := strings.Split(strings.TrimSpace(string(args)), "\n")
	require.Subset(t, argv, []string{"--wait", "--pipe", "--collect", "--working-directory=" + home,
		home + "/bin/algocloud-infer", "install", "--config", home + "/bundle.new/live.json"})
	hardening, err := unitHardening("t3.small")
	require.NoError(t, err)
	for _, h := range hardening {
		require.Contains(t, argv, h)
	}

	wrong, err := DeriveBundleKeys(master, "dep-other")
	require.NoError(t, err)
	bad, err := SealBundle(wrong, bundle)
	require.NoError(t, err)
	served.Store(bad)
	out, err = run()
	require.Error(t, err)
	require.Contains(t, string(out), "MAC mismatch")
}

// BundleStore publishes to S3 (moto): the sealed object opens with the
// deployment's keys, the binary is uploaded once per content, and Delete is
// idempotent.
func TestBundleStore_Moto(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	bucket := "bundles-" + strings.ToLower(uniq("b"))
	_, err := s3Client(e).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	master := bytes.Repeat([]byte{3}, 32)
	store, err := NewBundleStore(ctx, BundleStoreOptions{
		Bucket: bucket, Region: testRegion, Endpoint: e.moto.Endpoint, Credentials: testmoto.Credentials, EncryptionKey: master,
	})
	require.NoError(t, err)
	require.Equal(t, e.moto.Endpoint+"/"+bucket+"/algocloud", store.ArtifactsURL())

	require.NoError(t, store.Publish(ctx, "dep-s3", []byte("the bundle")))
	got, err := store.Fetch(ctx, "dep-s3")
	require.NoError(t, err)
	require.Equal(t, "the bundle", string(got))
	obj, err := s3Client(e).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("algocloud/dep-s3/bundle.enc")})
	require.NoError(t, err)
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(obj.Body)
	obj.Body.Close()
	require.NotContains(t, raw.String(), "the bundle", "stored sealed")

	bin := filepath.Join(t.TempDir(), "algocloud-infer")
	require.NoError(t, os.WriteFile(bin, []byte("binary v1"), 0o755))
	require.NoError(t, store.PublishBinary(ctx, bin))
	require.NoError(t, store.PublishBinary(ctx, bin), "same content: no upload")
	head, err := s3Client(e).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("algocloud/algocloud-infer")})
	require.NoError(t, err)
	require.Len(t, head.Metadata[sha256Meta], 64)

	require.NoError(t, store.Delete(ctx, "dep-s3"))
	require.NoError(t, store.Delete(ctx, "dep-s3"), "again: no-op")
	_, err = store.Fetch(ctx, "dep-s3")
	require.Error(t, err)
	require.Error(t, store.Publish(ctx, "../x", nil))
}

func s3Client(e *env) *s3.Client {
	return s3.New(s3.Options{
		Region: testRegion, Credentials: testmoto.Credentials, BaseEndpoint: aws.String(e.moto.Endpoint), UsePathStyle: true,
	})
}
