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
)

type certFiles struct {
	CertFile, KeyFile string
	NotAfter          time.Time
}

// existingCert returns the key pair in dir when it names exactly names and ips
// and stays valid for at least minValid.
func existingCert(dir string, names []string, ips []net.IP, minValid time.Duration) (certFiles, bool) {
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
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
