package testenv

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCALeafServesTLSOn127001 serves HTTPS with a leaf written to files and
// calls it trusting only the CA's pool: accepted as 127.0.0.1 and as
// localhost; a client trusting another test CA is refused.
func TestCALeafServesTLSOn127001(t *testing.T) {
	ca := NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.WriteLeaf(t, "leaf A", certFile, keyFile)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.ServerName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	trusting := func(c *CA) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}}}
	}
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		res, err := trusting(ca).Get("https://" + host + ":" + port + "/")
		require.NoError(t, err, host)
		require.Equal(t, "leaf A", res.TLS.PeerCertificates[0].Subject.CommonName)
		res.Body.Close()
	}
	_, err = trusting(NewCA(t)).Get(srv.URL)
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	// RootPEM is the same root, for clients that read a file.
	pool := NewCA(t).Pool
	require.True(t, pool.AppendCertsFromPEM(ca.RootPEM()))
	res, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}).Get(srv.URL)
	require.NoError(t, err)
	res.Body.Close()
}
