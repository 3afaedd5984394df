package acme

import (
	"context"
	"errors"
	"net"

	"github.com/algocloud/algocloud/activities/certs"
)

// Issuer obtains certificates from an ACME CA (Let's Encrypt, pebble in
// tests) with lego (this package), proving control of the names by
// DNS-01 through Route53 or HTTP-01, as the Client is configured.
type Issuer struct {
	Client *Client
	// Directory is the CA's directory URL, for the event log.
	Directory string
}

var _ certs.Issuer = Issuer{}

// Issue obtains a certificate for names; ACME CAs do not certify IPs.
func (a Issuer) Issue(ctx context.Context, names []string, _ []net.IP) ([]byte, []byte, error) {
	certPEM, keyPEM, _, err := a.Client.Obtain(ctx, names)
	return certPEM, keyPEM, err
}

// CertifiesIPs is false.
func (Issuer) CertifiesIPs() bool { return false }

// Describe names the CA's directory.
func (a Issuer) Describe() string { return "ACME " + a.Directory }

// Permanent is true when the CA refused the names or its directory cannot
// be used.
func (Issuer) Permanent(err error) bool {
	var refused *RefusedError
	return errors.As(err, &refused) || errors.Is(err, ErrDirectory)
}
