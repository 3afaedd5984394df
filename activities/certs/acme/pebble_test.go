package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
)

// pebbleConfig is what a test sets of pebble, the ACME test CA.
type pebbleConfig struct {
	// HTTPPort is where the VA looks for HTTP-01 tokens (pebble's httpPort).
	HTTPPort int
	// Resolver is the DNS server (host:port) the VA asks, over TCP, for
	// addresses and TXT records (pebble's -dnsserver).
	Resolver string
	// Validity is the lifetime of issued certificates; 0 is pebble's default
	// (about 90 days).
	Validity time.Duration
	// ChainLength is the number of intermediates (PEBBLE_CHAIN_LENGTH); 0 is 1.
	ChainLength int
	// Blocked are domains pebble refuses to certify (pebble's domainBlocklist).
	Blocked []string
}

// pebble is an ACME CA run in-process from pebble's own packages (db, ca,
// va, wfe), the way its cmd/pebble wires them, on two HTTPS listeners: the
// ACME API and the management API (for the issuing root).
type pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// TLSRoots trusts pebble's own HTTPS (not what it issues).
	TLSRoots *x509.CertPool

	mgmtURL string
	log     *lockedBuffer
}

func startPebble(t *testing.T, cfg pebbleConfig) *pebble {
	t.Helper()
	buf := &lockedBuffer{}
	logger := log.New(buf, "pebble ", log.Lmicroseconds)
	if cfg.ChainLength == 0 {
		cfg.ChainLength = 1
	}
	store := db.NewMemoryStore()
	for _, d := range cfg.Blocked {
		require.NoError(t, store.AddBlockedDomain(d))
	}
	profiles := map[string]ca.Profile{"default": {
		Description:    "algocloud tests",
		ValidityPeriod: uint64(cfg.Validity / time.Second),
	}}
	authority := ca.New(logger, store, "", "ecdsa", 0, cfg.ChainLength, profiles)
	// TLS-ALPN-01 is not used: its port stays 0.
	validator := va.New(logger, cfg.HTTPPort, 0, false, cfg.Resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	// pebble's HTTPS gets a certificate for 127.0.0.1 from a throwaway local CA.
	local, err := certs.LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	certPEM, keyPEM, err := local.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	serve := func(h http.Handler) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		s.Config.ErrorLog = logger
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	api := serve(front.Handler())
	mgmt := serve(front.ManagementHandler())
	p := &pebble{DirectoryURL: api.URL + wfe.DirectoryPath, TLSRoots: local.Pool(), mgmtURL: mgmt.URL, log: buf}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", buf.tail(16<<10))
		}
	})
	return p
}

// issuerRoots fetches the root pebble issues under from its management API
// (/roots/0), over HTTPS verified with TLSRoots, as a client's trust pool.
func (p *pebble) issuerRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.TLSRoots, MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.mgmtURL+wfe.RootCertPath+"0", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(body), "root PEM: %s", body)
	return pool
}

// lockedBuffer collects pebble's log from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
