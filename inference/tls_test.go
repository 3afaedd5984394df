package inference

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// servedCN opens a new TLS connection (no session reuse) and returns the
// common name of the certificate the server presents.
func servedCN(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	cn, err := dialCN(addr, pool)
	require.NoError(t, err)
	return cn
}

// dialCN is servedCN for require.Eventually's goroutine: it returns the error.
func dialCN(addr string, pool *x509.CertPool) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestTLSCertificateHotReload: the server presents cert A, then B once the
// files hold B (no restart); corrupt files, or a key that does not match,
// keep B and log an error; ReloadCertificate (SIGHUP) loads at once.
func TestTLSCertificateHotReload(t *testing.T) {
	ca := testenv.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(c, k []byte) {
		require.NoError(t, os.WriteFile(certFile, c, 0o600))
		require.NoError(t, os.WriteFile(keyFile, k, 0o600))
	}
	certA, keyA := ca.Leaf(t, "cert A")
	write(certA, keyA)
	ts := startServer(t, codeDir(t, invertAlgorithm), spec.Image, spec.Image, func(c *Config) {
		c.CertFile, c.KeyFile = certFile, keyFile
	})
	addr := strings.TrimPrefix(ts.URL, "http://")
	ts.URL = "https://" + addr
	ts.Client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	ts.waitReady(t)
	require.Equal(t, "cert A", servedCN(t, addr, ca.Pool))

	// Renewal: the files now hold B; a new connection sees B within a few checks.
	certB, keyB := ca.Leaf(t, "cert B")
	write(certB, keyB)
	require.Eventually(t, func() bool {
		cn, err := dialCN(addr, ca.Pool)
		return err == nil && cn == "cert B"
	}, 30*time.Second, 200*time.Millisecond)
	require.Contains(t, ts.logs.String(), "TLS certificate loaded")

	// Corrupt files: B stays, and the failure is logged.
	write([]byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), []byte("garbage"))
	require.Eventually(t, func() bool {
		_, _ = dialCN(addr, ca.Pool) // handshakes make the server check the files
		return strings.Contains(ts.logs.String(), "TLS certificate reload failed")
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, "cert B", servedCN(t, addr, ca.Pool))

	// A cert with another certificate's key: refused by ReloadCertificate too.
	certC, _ := ca.Leaf(t, "cert C")
	write(certC, keyB)
	require.Error(t, ts.srv.ReloadCertificate())
	require.Equal(t, "cert B", servedCN(t, addr, ca.Pool))

	// SIGHUP's path: a good pair loads at once, without waiting for a check.
	certD, keyD := ca.Leaf(t, "cert D")
	write(certD, keyD)
	require.NoError(t, ts.srv.ReloadCertificate())
	require.Equal(t, "cert D", servedCN(t, addr, ca.Pool))

	// The server still answers requests over the reloaded certificate.
	resp, err := ts.Client.Get(ts.URL + "/v2/health/ready")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestTLSBadCertificateAtStart: a pair that does not load at start stops
// Serve with an error naming it.
func TestTLSBadCertificateAtStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, []byte("nope"), 0o600))
	require.NoError(t, os.WriteFile(keyFile, []byte("nope"), 0o600))
	s, err := NewServer(Config{Name: "x", Listen: "127.0.0.1:0", TokenSHA256: tokenSHA(testToken), CodeDir: dir,
		Input: spec.Image, Output: spec.Image, CertFile: certFile, KeyFile: keyFile}, nil)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = s.Serve(t.Context(), ln)
	require.ErrorContains(t, err, "load TLS certificate")
}
