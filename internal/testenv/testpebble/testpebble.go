// Package testpebble gives tests a real ACME CA: pebble
// (github.com/letsencrypt/pebble/v2) run in-process from its own packages
// (db, ca, va, wfe), the way its cmd/pebble wires them, on 127.0.0.1; and
// ZoneDNS, a small authoritative DNS server that answers for a Route53 zone
// (moto in tests) from what activities/dns reads there, so that pebble
// validates DNS-01 challenges against what the platform really wrote.
//
// Every challenge is really checked (PEBBLE_VA_ALWAYS_VALID is never set);
// pebble's random validation sleeps and nonce rejections are turned off.
package testpebble

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

	"github.com/algocloud/algocloud/activities/certs"
)

// Config is what a test sets of pebble.
type Config struct {
	// Resolver is the DNS server (host:port) pebble's VA asks, over TCP, for
	// addresses and TXT records (pebble's -dnsserver).
	Resolver string
	// HTTPPort is where the VA looks for HTTP-01 tokens; 0 means 80 (unused
	// by DNS-01).
	HTTPPort int
	// Validity is the lifetime of the certificates pebble issues (its
	// profile's ValidityPeriod, in whole seconds; NotAfter is NotBefore plus
	// Validity less one second). 0 is pebble's default, 90 days; short ones
	// (a minute or two) let tests see renewals happen.
	Validity time.Duration
	// ChainLength is the number of intermediates between the issuing root
	// and the leaf (pebble's PEBBLE_CHAIN_LENGTH); 0 means 1.
	ChainLength int
	// Blocked are domains pebble refuses to certify, with every name under
	// them (pebble's domainBlocklist).
	Blocked []string
}

// Pebble is a running ACME CA.
type Pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// TLSRootPEM is the root of pebble's own HTTPS (not what it issues):
	// what an ACME client must trust to talk to it.
	TLSRootPEM []byte

	mgmtURL string
	log     *lockedBuffer
}

// Start runs pebble until the test ends; its log is printed when the test
// fails. It sets pebble's PEBBLE_* environment with t.Setenv, so it cannot
// be called from a test that has called t.Parallel.
func Start(t testing.TB, cfg Config) *Pebble {
	t.Helper()
	for k, v := range map[string]string{"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"} {
		t.Setenv(k, v)
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.ChainLength == 0 {
		cfg.ChainLength = 1
	}
	buf := &lockedBuffer{}
	logger := log.New(buf, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	for _, d := range cfg.Blocked {
		if err := store.AddBlockedDomain(d); err != nil {
			t.Fatalf("testpebble: block %q: %v", d, err)
		}
	}
	if cfg.Validity < 0 || (cfg.Validity > 0 && cfg.Validity < time.Second) {
		t.Fatalf("testpebble: validity %s is not a positive number of seconds", cfg.Validity)
	}
	profiles := map[string]ca.Profile{"default": {
		Description:    "algocloud tests",
		ValidityPeriod: uint64(cfg.Validity / time.Second),
	}}
	authority := ca.New(logger, store, "", "ecdsa", 0, cfg.ChainLength, profiles)
	validator := va.New(logger, cfg.HTTPPort, 0, false, cfg.Resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	local, err := certs.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatalf("testpebble: %v", err)
	}
	certPEM, keyPEM, err := local.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatalf("testpebble: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("testpebble: %v", err)
	}
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
	p := &Pebble{DirectoryURL: api.URL + wfe.DirectoryPath, TLSRootPEM: local.RootPEM(), mgmtURL: mgmt.URL, log: buf}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", buf.tail(16<<10))
		}
	})
	return p
}

// TLSRoots is TLSRootPEM as a pool.
func (p *Pebble) TLSRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.TLSRootPEM)
	return pool
}

// IssuerRootPEM fetches the root pebble issues under from its management
// API (/roots/0), over HTTPS verified with TLSRoots: what clients of the
// certified endpoints trust.
func (p *Pebble) IssuerRootPEM(t testing.TB) []byte {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.TLSRoots(), MinVersion: tls.VersionTLS12},
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.mgmtURL+wfe.RootCertPath+"0", nil)
	if err != nil {
		t.Fatalf("testpebble: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("testpebble: issuer root: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("testpebble: issuer root: %s %v", resp.Status, err)
	}
	return body
}

// IssuerRoots is IssuerRootPEM as a pool: a client that trusts only it
// verifies pebble's certificates and nothing else.
func (p *Pebble) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pem := p.IssuerRootPEM(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("testpebble: issuer root is not PEM: %s", pem)
	}
	return pool
}

// Log returns the tail of pebble's log.
func (p *Pebble) Log() string { return p.log.tail(16 << 10) }

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
