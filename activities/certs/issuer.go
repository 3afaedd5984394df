package certs

import (
	"context"
	"net"
	"time"
)

// Issuer issues endpoints' certificates: the platform's local CA
// (LocalIssuer, the default) or an ACME CA (acme.Issuer, below). The
// activities' IssueCertificate stores what it returns on the server's folder; neither the key nor the
// certificate goes into workflow history (only their paths and names do).
type Issuer interface {
	// Issue returns a certificate for names (and ips, where the issuer
	// certifies addresses: see CertifiesIPs), leaf first, and its new
	// private key, both PEM. A refusal that retrying cannot fix is an error
	// for which Permanent reports true.
	Issue(ctx context.Context, names []string, ips []net.IP) (certPEM, keyPEM []byte, err error)
	// CertifiesIPs reports whether certificates name the server's IP address
	// as well as its DNS name.
	CertifiesIPs() bool
	// Describe names the issuer in the event log.
	Describe() string
	// Permanent reports whether err from Issue cannot pass on a retry.
	Permanent(err error) bool
}

// LocalIssuer issues from the platform's own CA: names and IP addresses,
// trusted by whoever trusts the CA's root.
type LocalIssuer struct {
	CA *CA
	// ValidFor is the certificates' lifetime; default 90 days.
	ValidFor time.Duration
}

var _ Issuer = LocalIssuer{}

// Issue signs a new leaf with a new key.
func (l LocalIssuer) Issue(_ context.Context, names []string, ips []net.IP) ([]byte, []byte, error) {
	valid := l.ValidFor
	if valid <= 0 {
		valid = 90 * 24 * time.Hour
	}
	return l.CA.Issue(names, ips, valid)
}

// CertifiesIPs is true: the local CA names the server's address too.
func (LocalIssuer) CertifiesIPs() bool { return true }

// Describe is "local CA".
func (LocalIssuer) Describe() string { return "local CA" }

// Permanent is false: the local CA fails only on local trouble.
func (LocalIssuer) Permanent(error) bool { return false }

// Validity is the lifetime the local CA gives.
func (l LocalIssuer) Validity() time.Duration {
	if l.ValidFor > 0 {
		return l.ValidFor
	}
	return 90 * 24 * time.Hour
}
