package activities

import (
	"github.com/algocloud/algocloud/activities/certs"
)

// issuer is the configured certs.Issuer, the local CA by default.
func (a *Activities) issuer() certs.Issuer {
	if a.Issuer != nil {
		return a.Issuer
	}
	return certs.LocalIssuer{CA: a.CA}
}
