// Package certs is the platform's local certificate authority: in dev and on the
// local compute provider every inference server gets a TLS certificate issued by
// a root that the platform creates once and clients trust through its root file
// (never by skipping verification). Production uses ACME (lego) instead.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File names inside a CA folder.
const (
	RootCertFile = "root.pem"     // the root certificate, mode 0644
	RootKeyFile  = "root-key.pem" // the root's private key, mode 0600
	lockFile     = ".lock"
)

// rootValidity is how long the root is valid.
const rootValidity = 10 * 365 * 24 * time.Hour

// clockSkew back-dates NotBefore so a client whose clock is slightly behind
// still accepts a fresh certificate.
const clockSkew = time.Hour

// CA is a loaded root certificate and key. It is safe for concurrent use.
type CA struct {
	dir     string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// LoadOrCreateCA loads the root in dir, creating dir and an ECDSA P-256 root
// valid for 10 years when none exists yet. Later calls (and other processes)
// load the same root.
//
// Creation holds an exclusive flock on dir/.lock, so two processes starting at
// once produce one root: the second waits and then loads what the first wrote.
// A lock the kernel drops when its holder dies is used rather than O_EXCL on
// the two files, which would leave a half-made pair behind forever if the
// creator crashed between them. Each file is written to a temporary name and
// renamed, so a reader never sees a partial file.
func LoadOrCreateCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA folder: %w", err)
	}
	// Fast path without the lock; any failure (including a pair another
	// process is writing right now) is decided again under the lock.
	if ca, err := load(dir); err == nil {
		return ca, nil
	}

	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Another process may have created the root while we waited for the lock.
	if ca, err := load(dir); err == nil {
		return ca, nil
	} else if !errors.Is(err, errNoCA) {
		return nil, err
	}
	return create(dir)
}

func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open CA lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock CA folder: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// errNoCA means neither root file exists yet.
var errNoCA = errors.New("no CA yet")

// load reads the root pair; errNoCA means there is no root yet. Only one of
// the two files is an error, never a reason to make a new root.
func load(dir string) (*CA, error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, RootCertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, RootKeyFile))
	switch {
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		return nil, errNoCA
	case certErr != nil:
		return nil, fmt.Errorf("load CA root %s (delete %s to start a new CA): %w", RootCertFile, dir, certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("load CA key %s (delete %s to start a new CA): %w", RootKeyFile, dir, keyErr)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA root %s: %w", filepath.Join(dir, RootCertFile), err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key %s: %w", filepath.Join(dir, RootKeyFile), err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("load CA in %s: %s does not belong to %s", dir, RootKeyFile, RootCertFile)
	}
	return &CA{dir: dir, cert: cert, key: key, certPEM: certPEM}, nil
}

func create(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"algocloud"},
			CommonName:   "algocloud local CA " + serial.Text(16)[:8],
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(rootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA root: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a crash after it leaves a state load reports clearly
	// instead of a root nobody can sign with.
	if err := writeFileAtomic(filepath.Join(dir, RootKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, RootCertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA root: %w", err)
	}
	return &CA{dir: dir, cert: cert, key: key, certPEM: certPEM}, nil
}

// RootPEM returns the root certificate, PEM-encoded.
func (ca *CA) RootPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// RootFile returns the path of the root certificate file, for clients to trust.
func (ca *CA) RootFile() string { return filepath.Join(ca.dir, RootCertFile) }

// Root returns the parsed root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.cert }

// Pool returns a new certificate pool holding only the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue signs a server certificate for names (DNS names) and ips, valid from
// now for validFor (cut to the root's own expiry). The first name is the
// subject's common name, or the first IP when names is empty. It returns the
// certificate and a new ECDSA P-256 private key, both PEM-encoded.
func (ca *CA) Issue(names []string, ips []net.IP, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("issue certificate: need at least one DNS name or IP address")
	}
	for _, n := range names {
		if n == "" || len(n) > 253 {
			return nil, nil, fmt.Errorf("issue certificate: invalid DNS name %q", n)
		}
	}
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("issue certificate: validity %s must be positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	now := time.Now()
	notAfter := now.Add(validFor)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"algocloud"}, CommonName: cn},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     append([]string(nil), names...),
		IPAddresses:  append([]net.IP(nil), ips...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", cn, err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// Key pair file names written by WriteKeyPair.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// WriteKeyPair writes a certificate (0644) and its key (0600) into dir as
// cert.pem and key.pem, each atomically (temporary file, then rename), and
// returns their paths. dir is created (0700) when missing.
func WriteKeyPair(dir string, certPEM, keyPEM []byte) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("write key pair: %w", err)
	}
	certFile = filepath.Join(dir, CertFile)
	keyFile = filepath.Join(dir, KeyFile)
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("write certificate: %w", err)
	}
	return certFile, keyFile, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // never zero
}

func marshalKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ek, nil
}

// writeFileAtomic writes data to a temporary file in path's folder with mode
// perm, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
