package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateCA_CreatesOnceAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateCA(dir)
	require.NoError(t, err)

	root := ca.Root()
	require.True(t, root.IsCA)
	require.Equal(t, x509.ECDSA, root.PublicKeyAlgorithm)
	require.True(t, root.NotAfter.After(time.Now().Add(9*365*24*time.Hour)))

	st, err := os.Stat(filepath.Join(dir, RootCertFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(dir, RootKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.Equal(t, filepath.Join(dir, RootCertFile), ca.RootFile())

	onDisk, err := os.ReadFile(ca.RootFile())
	require.NoError(t, err)
	require.Equal(t, onDisk, ca.RootPEM())

	again, err := LoadOrCreateCA(dir)
	require.NoError(t, err)
	require.Equal(t, ca.RootPEM(), again.RootPEM())
}

func TestLoadOrCreateCA_ConcurrentCallersShareOneRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const n = 8
	roots := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca, err := LoadOrCreateCA(dir)
			errs[i] = err
			if err == nil {
				roots[i] = ca.RootPEM()
			}
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, roots[0], roots[i])
	}
}

func TestLoadOrCreateCA_RefusesHalfPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	_, err := LoadOrCreateCA(dir)
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, RootKeyFile)))
	_, err = LoadOrCreateCA(dir)
	require.ErrorContains(t, err, RootKeyFile)
}

func TestIssue_VerifiesForNameAndIP(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue([]string{"api.example.test", "other.example.test"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	require.NoError(t, err)

	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, "api.example.test", leaf.Subject.CommonName)
	require.False(t, leaf.IsCA)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)

	for _, name := range []string{"api.example.test", "other.example.test", "127.0.0.1"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()})
		require.NoError(t, err, name)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "evil.example.test", Roots: ca.Pool()})
	require.Error(t, err)

	// A different CA's root does not verify it.
	other, err := LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "api.example.test", Roots: other.Pool()})
	require.Error(t, err)

	_, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
}

func TestIssue_IPOnlyAndValidation(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	certPEM, _, err := ca.Issue(nil, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour)
	require.NoError(t, err)
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", leaf.Subject.CommonName)

	_, _, err = ca.Issue(nil, nil, time.Hour)
	require.Error(t, err)
	_, _, err = ca.Issue([]string{"a.test"}, nil, 0)
	require.Error(t, err)
	_, _, err = ca.Issue([]string{""}, nil, time.Hour)
	require.Error(t, err)
}

func TestWriteKeyPair_TLSHandshake(t *testing.T) {
	ca, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"))
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, err := WriteKeyPair(dir, certPEM, keyPEM)
	require.NoError(t, err)
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(certFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	// Rewriting replaces the files in place.
	_, _, err = WriteKeyPair(dir, certPEM, keyPEM)
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files left behind")

	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello over tls")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()

	// The client trusts only the root file, as generated clients do.
	rootPEM, err := os.ReadFile(ca.RootFile())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(rootPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL) // https://127.0.0.1:port
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "hello over tls", string(body))

	// Without the root the handshake fails: verification is real.
	_, err = (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}).Get(srv.URL)
	require.Error(t, err)
}
