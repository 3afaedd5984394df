package activities

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/certs/acme"
)

type certFiles struct {
	CertFile, KeyFile string
	NotAfter          time.Time
}

// sealedKeyFile is the name of a sealed certificate key (acme.SaveKey).
const sealedKeyFile = "key.pem.sealed"

// existingCert returns the key pair in dir (cert.pem and keyName) when it
// names exactly names and ips and stays valid for at least minValid.
func existingCert(dir, keyName string, names []string, ips []net.IP, minValid time.Duration) (certFiles, bool) {
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, keyName)
	b, err := os.ReadFile(certFile)
	if err != nil {
		return certFiles{}, false
	}
	if _, err := os.Stat(keyFile); err != nil {
		return certFiles{}, false
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return certFiles{}, false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || time.Until(c.NotAfter) < minValid || !slices.Equal(c.DNSNames, names) {
		return certFiles{}, false
	}
	if len(c.IPAddresses) != len(ips) {
		return certFiles{}, false
	}
	for i := range ips {
		if !c.IPAddresses[i].Equal(ips[i]) {
			return certFiles{}, false
		}
	}
	return certFiles{CertFile: certFile, KeyFile: keyFile, NotAfter: c.NotAfter}, true
}

// hostIPs is the IP SAN for a server host that is an IP address.
func hostIPs(host string) []net.IP {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	return nil
}

// clientTLS trusts only the platform's CA (never skips verification).
func clientTLS(ca *certs.CA) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.RootPEM())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// sealKeys reports whether certificate keys are stored sealed: endpoints run
// remotely, so no process on this machine reads the key from disk.
func (a *Activities) sealKeys() bool { return a.Bundles != nil && len(a.KeyEncryptionKey) > 0 }

// writeSealedPair writes cert.pem (0644) and the key sealed under encKey
// (0600) into dir; the plaintext key is never written.
func writeSealedPair(dir string, certPEM, keyPEM, encKey []byte) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	keyFile = filepath.Join(dir, sealedKeyFile)
	if err := acme.SaveKey(keyFile, encKey, keyPEM); err != nil {
		return "", "", err
	}
	certFile = filepath.Join(dir, "cert.pem")
	tmp := certFile + ".tmp"
	if err := os.WriteFile(tmp, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.Rename(tmp, certFile)
}

// readKey returns the PEM key at path, opening it when it is sealed.
func (a *Activities) readKey(path string) ([]byte, error) {
	if filepath.Base(path) == sealedKeyFile {
		return acme.LoadKey(path, a.KeyEncryptionKey)
	}
	return os.ReadFile(path)
}
