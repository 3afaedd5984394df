package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for tests that serve TLS on
// 127.0.0.1: a client trusting Pool accepts the leaves it issues and nothing
// else, so tests verify certificates instead of skipping verification. (The
// platform's own CA, activities/certs, is production code with its own
// files and rules; this one lives only in memory, for a test's lifetime.)
type CA struct {
	// Cert is the root certificate, self-signed.
	Cert *x509.Certificate
	// Key is the root's private key.
	Key *ecdsa.PrivateKey
	// Pool holds Cert alone: what clients in the test trust.
	Pool *x509.CertPool
}

// validity is how long around now the test CA's certificates are valid: an
// hour back absorbs clock skew, a day ahead outlasts any test.
const (
	validFrom  = -time.Hour
	validUntil = 24 * time.Hour
)

// NewCA makes a root with a fresh P-256 key, failing t on error.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: "algocloud test CA"},
		NotBefore: now.Add(validFrom), NotAfter: now.Add(validUntil), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("test CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("test CA certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}
}

// RootPEM is the root certificate as PEM, for clients that read a file
// (curl --cacert, Python's ssl, an inference server's config).
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Leaf issues a server certificate named cn (its common name, which tests
// use to tell certificates apart) for 127.0.0.1 and localhost, with a fresh
// key, and returns both as PEM.
func (ca *CA) Leaf(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test leaf key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(validFrom), NotAfter: now.Add(validUntil),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("test leaf certificate: %v", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("test leaf key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// WriteLeaf issues a Leaf named cn and writes it to certFile and its key to
// keyFile (mode 0600), replacing what was there: servers that reload their
// certificate from files are tested by writing another leaf over them.
func (ca *CA) WriteLeaf(t testing.TB, cn, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.Leaf(t, cn)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatalf("write test leaf: %v", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatalf("write test leaf key: %v", err)
	}
}

// serial is a random certificate serial number: leaves that replace each
// other in a test must not share one.
func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("certificate serial: %v", err)
	}
	return n.Add(n, big.NewInt(1))
}
