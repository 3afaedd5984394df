package activities

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/certs/acme"
)

// CertIssuer issues endpoints' certificates: the platform's local CA
// (LocalIssuer, the default) or an ACME CA (ACMEIssuer). IssueCertificate
// stores what it returns on the server's folder; neither the key nor the
// certificate goes into workflow history (only their paths and names do).
type CertIssuer interface {
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
	CA *certs.CA
	// ValidFor is the certificates' lifetime; default 90 days.
	ValidFor time.Duration
}

var _ CertIssuer = LocalIssuer{}

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

// ACMEIssuer obtains certificates from an ACME CA (Let's Encrypt, pebble in
// tests) with lego (activities/certs/acme), proving control of the names by
// DNS-01 through Route53 or HTTP-01, as the Client is configured.
type ACMEIssuer struct {
	Client *acme.Client
	// Directory is the CA's directory URL, for the event log.
	Directory string
}

var _ CertIssuer = ACMEIssuer{}

// Issue obtains a certificate for names; ACME CAs do not certify IPs.
func (a ACMEIssuer) Issue(ctx context.Context, names []string, _ []net.IP) ([]byte, []byte, error) {
	certPEM, keyPEM, _, err := a.Client.Obtain(ctx, names)
	return certPEM, keyPEM, err
}

// CertifiesIPs is false.
func (ACMEIssuer) CertifiesIPs() bool { return false }

// Describe names the CA's directory.
func (a ACMEIssuer) Describe() string { return "ACME " + a.Directory }

// Permanent is true when the CA refused the names or its directory cannot
// be used.
func (ACMEIssuer) Permanent(err error) bool {
	var refused *acme.RefusedError
	return errors.As(err, &refused) || errors.Is(err, acme.ErrDirectory)
}

// issuer is the configured CertIssuer, the local CA by default.
func (a *Activities) issuer() CertIssuer {
	if a.Issuer != nil {
		return a.Issuer
	}
	return LocalIssuer{CA: a.CA}
}
