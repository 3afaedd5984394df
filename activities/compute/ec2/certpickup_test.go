package ec2

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

// certHome is an instance's home as fetch.sh leaves it, holding the
// certificate and key cert and key.
func certHome(t *testing.T, cert, key string) string {
	t.Helper()
	home := t.TempDir()
	tlsDir := filepath.Join(home, "bundle", "tls")
	require.NoError(t, os.MkdirAll(tlsDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(tlsDir, "cert.pem"), []byte(cert), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tlsDir, "key.pem"), []byte(key), 0o600))
	return home
}

func readTLS(t *testing.T, home string) (string, string) {
	t.Helper()
	c, err := os.ReadFile(filepath.Join(home, "bundle", "tls", "cert.pem"))
	require.NoError(t, err)
	k, err := os.ReadFile(filepath.Join(home, "bundle", "tls", "key.pem"))
	require.NoError(t, err)
	return string(c), string(k)
}

// The certificate pick-up script of the encrypted user data, run by bash
// with the machine's curl, openssl and tar, installs what SealCert wrote:
// a newer version replaces the key and certificate by rename (nothing else
// left in tls/); a download failure, an object sealed for another
// deployment, a tampered object and an older version (a replay) all keep
// the current files.
func TestCertFetchScript_InstallsOnlyGoodNewerCertificates(t *testing.T) {
	master := bytes.Repeat([]byte{5}, 32)
	keys, err := DeriveBundleKeys(master, "dep-cert")
	require.NoError(t, err)
	var served atomic.Value // []byte, or nil for 404
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := served.Load().([]byte)
		if r.URL.Path != "/art/dep-cert/cert.enc" || len(b) == 0 {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	ud, err := EncryptedUserData(compute.ServerSpec{DeploymentID: "dep-cert", APIName: "seg", InstanceType: "t3.small"}, srv.URL+"/art", 8443, keys)
	require.NoError(t, err)
	require.True(t, HasCertPickup(ud))
	require.Contains(t, ud, "systemctl enable --now algocloud-cert.timer")
	require.Contains(t, ud, "OnUnitActiveSec=1min")
	plain, err := DefaultUserData(compute.ServerSpec{DeploymentID: "dep-cert", APIName: "seg", InstanceType: "t3.small"}, srv.URL+"/art", 8443)
	require.NoError(t, err)
	require.False(t, HasCertPickup(plain), "unencrypted user data has no pick-up")
	_, err = CertFetchScript(plain)
	require.Error(t, err)
	script, err := CertFetchScript(ud)
	require.NoError(t, err)

	home := certHome(t, "CERT v1\n", "KEY v1\n")
	run := func() (string, error) {
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "ALGOCLOUD_HOME="+home)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	seal := func(k BundleKeys, cert, key string, version int64) []byte {
		b, err := SealCert(k, []byte(cert), []byte(key), version)
		require.NoError(t, err)
		return b
	}
	requireKept := func(cert, key string) {
		t.Helper()
		c, k := readTLS(t, home)
		require.Equal(t, cert, c)
		require.Equal(t, key, k)
	}

	// No object yet: the download fails, the files stay.
	out, err := run()
	require.Error(t, err)
	require.Contains(t, out, "download failed")
	requireKept("CERT v1\n", "KEY v1\n")

	// Sealed for another deployment: refused by the MAC.
	other, err := DeriveBundleKeys(master, "dep-other")
	require.NoError(t, err)
	served.Store(seal(other, "EVIL CERT\n", "EVIL KEY\n", 100))
	out, err = run()
	require.Error(t, err)
	require.Contains(t, out, "MAC mismatch")
	requireKept("CERT v1\n", "KEY v1\n")

	// One bit changed: refused by the MAC.
	tampered := seal(keys, "CERT v2\n", "KEY v2\n", 200)
	tampered[len(tampered)/2] ^= 1
	served.Store(tampered)
	out, err = run()
	require.Error(t, err)
	require.Contains(t, out, "MAC mismatch")
	requireKept("CERT v1\n", "KEY v1\n")

	// A good, newer one: installed.
	served.Store(seal(keys, "CERT v2\n", "KEY v2\n", 200))
	out, err = run()
	require.NoError(t, err, out)
	require.Contains(t, out, "installed certificate version 200")
	requireKept("CERT v2\n", "KEY v2\n")
	v, err := os.ReadFile(filepath.Join(home, "cert.version"))
	require.NoError(t, err)
	require.Equal(t, "200", strings.TrimSpace(string(v)))
	st, err := os.Stat(filepath.Join(home, "bundle", "tls", "key.pem"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the key stays private")
	entries, err := os.ReadDir(filepath.Join(home, "bundle", "tls"))
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files left in tls/")
	leftovers, err := filepath.Glob(filepath.Join(home, ".cert.*"))
	require.NoError(t, err)
	require.Empty(t, leftovers, "the work folder is removed")

	// The same version again: nothing is rewritten (no needless reload).
	before, err := os.Stat(filepath.Join(home, "bundle", "tls", "cert.pem"))
	require.NoError(t, err)
	out, err = run()
	require.NoError(t, err, out)
	require.NotContains(t, out, "installed")
	after, err := os.Stat(filepath.Join(home, "bundle", "tls", "cert.pem"))
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after))

	// An older object (a replay of an earlier renewal): kept out.
	served.Store(seal(keys, "CERT v1 again\n", "KEY v1 again\n", 150))
	out, err = run()
	require.NoError(t, err, out)
	requireKept("CERT v2\n", "KEY v2\n")

	// Then the server answers with an error: the files stay.
	served.Store([]byte(nil))
	_, err = run()
	require.Error(t, err)
	requireKept("CERT v2\n", "KEY v2\n")
}

// SealCert refuses what no instance should install.
func TestSealCert_Rejects(t *testing.T) {
	k, err := DeriveBundleKeys(bytes.Repeat([]byte{1}, 32), "d")
	require.NoError(t, err)
	_, err = SealCert(k, []byte("c"), []byte("k"), 0)
	require.Error(t, err)
	_, err = SealCert(k, nil, []byte("k"), 1)
	require.Error(t, err)
}

// Instances launched with the encrypted user data (which installs the
// timer) carry algocloud:cert-pickup=1 and CertPickup says so; those with
// other user data do not. ServedCertificate reads the endpoint's leaf from
// a new TLS connection to the health URL.
func TestProvision_CertPickupTagAndServedCertificate(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // the status does not matter
	}))
	defer tlsSrv.Close()
	e := newEnv(t, func(o *Options) {
		o.BundleEncryptionKey = bytes.Repeat([]byte{2}, 32)
		o.HealthURL = func(compute.Server) string { return tlsSrv.URL + "/readyz" }
		o.HealthClient = tlsSrv.Client()
	})
	ctx := ctxFor(t)
	withTimer, err := e.p.Provision(ctx, specFor(uniq("dep-pickup")))
	require.NoError(t, err)
	ok, err := e.p.CertPickup(ctx, withTimer)
	require.NoError(t, err)
	require.True(t, ok)
	der, err := e.p.ServedCertificate(ctx, withTimer)
	require.NoError(t, err)
	require.Equal(t, tlsSrv.Certificate().Raw, der)

	legacy := e.provider(t) // no encryption key: DefaultUserData, no timer
	old, err := legacy.Provision(ctx, specFor(uniq("dep-legacy")))
	require.NoError(t, err)
	ok, err = e.p.CertPickup(ctx, old)
	require.NoError(t, err)
	require.False(t, ok, "an instance without the tag is restarted instead")

	_, err = e.p.CertPickup(ctx, compute.Server{Provider: ProviderName, ID: "i-0123456789abcdef0"})
	require.ErrorIs(t, err, compute.ErrNotFound)
}

// PublishCert stores the sealed certificate object next to the bundle;
// it opens with the deployment's keys to version, cert.pem and key.pem,
// holds no plaintext key, and Delete removes it with the bundle.
func TestBundleStore_PublishCert(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	bucket := "bundles-" + strings.ToLower(uniq("c"))
	_, err := s3Client(e).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	store, err := NewBundleStore(ctx, BundleStoreOptions{
		Bucket: bucket, Region: testRegion, Endpoint: e.moto.Endpoint, Credentials: testmoto.Credentials, EncryptionKey: bytes.Repeat([]byte{4}, 32),
	})
	require.NoError(t, err)
	require.NoError(t, store.Publish(ctx, "dep-c", []byte("bundle")))
	version := time.Now().UnixMilli()
	require.NoError(t, store.PublishCert(ctx, "dep-c", []byte("CERT PEM"), []byte("PRIVATE KEY PEM"), version))
	obj, err := s3Client(e).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("algocloud/dep-c/cert.enc")})
	require.NoError(t, err)
	sealed, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "PRIVATE KEY")
	k, err := store.Keys("dep-c")
	require.NoError(t, err)
	plain, err := OpenBundle(k, sealed)
	require.NoError(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(plain))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		got[h.Name] = string(b)
	}
	require.Equal(t, map[string]string{
		"version": strconv.FormatInt(version, 10) + "\n", "cert.pem": "CERT PEM", "key.pem": "PRIVATE KEY PEM",
	}, got)
	require.Error(t, store.PublishCert(ctx, "../x", []byte("c"), []byte("k"), 1))

	require.NoError(t, store.Delete(ctx, "dep-c"))
	_, err = s3Client(e).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("algocloud/dep-c/cert.enc")})
	require.Error(t, err, "cert.enc deleted")
	_, err = store.Fetch(ctx, "dep-c")
	require.Error(t, err, "bundle deleted")
}
