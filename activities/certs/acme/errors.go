package acme

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	legoacme "github.com/go-acme/lego/v4/acme"
)

// ErrDirectory wraps every failure to use the ACME directory: nothing
// answers at DirectoryURL, it is not HTTPS, its certificate is not trusted,
// or what answers is not an ACME directory. A malformed URL is caught by New;
// the rest may be an outage, so it is left to the caller whether to retry.
var ErrDirectory = errors.New("ACME directory unusable")

// RefusedError is the ACME server's refusal to issue for these names, by
// policy or because the request can never succeed as it is (a name it will
// not certify, a malformed name, a CAA record forbidding it, a contact it
// rejects). Retrying the same request cannot succeed: callers make it a
// non-retryable failure and tell the user.
type RefusedError struct {
	// Names are the names asked for.
	Names []string
	// Type is the ACME problem type (RFC 8555 section 6.7), e.g.
	// "urn:ietf:params:acme:error:rejectedIdentifier".
	Type string
	// Detail is the server's explanation, for the user.
	Detail string
	// Err is the underlying *acme.ProblemDetails from lego.
	Err error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("ACME server refused a certificate for %s: %s (%s)",
		strings.Join(e.Names, ", "), e.Detail, strings.TrimPrefix(e.Type, problemNS))
}

func (e *RefusedError) Unwrap() error { return e.Err }

const problemNS = "urn:ietf:params:acme:error:"

// refusedTypes are the ACME problem types that mean the request itself is
// refused. Not among them: badNonce (lego retries), rateLimited (passes with
// time), serverInternal, connection and dns problems, and the unauthorized,
// incorrectResponse and tls problems of a failed challenge, which a retry
// after fixing DNS or a firewall can pass.
var refusedTypes = []string{
	problemNS + "rejectedIdentifier",
	problemNS + "unsupportedIdentifier",
	problemNS + "malformed",
	problemNS + "caa",
	problemNS + "badCSR",
	problemNS + "badPublicKey",
	problemNS + "badSignatureAlgorithm",
	problemNS + "invalidContact",
	problemNS + "unsupportedContact",
	problemNS + "externalAccountRequired",
	problemNS + "userActionRequired",
}

// refused turns an ACME problem of a refused type (the problem's own type or
// any subproblem's) into a *RefusedError; other errors come back as they are.
func refused(names []string, err error) error {
	var pd *legoacme.ProblemDetails
	if !errors.As(err, &pd) {
		return err
	}
	typ := ""
	if slices.Contains(refusedTypes, pd.Type) {
		typ = pd.Type
	}
	for _, sp := range pd.SubProblems {
		if typ == "" && slices.Contains(refusedTypes, sp.Type) {
			typ = sp.Type
		}
	}
	if typ == "" {
		return err
	}
	detail := pd.Detail
	for _, sp := range pd.SubProblems {
		detail += "; " + sp.Identifier.Value + ": " + sp.Detail
	}
	return &RefusedError{Names: slices.Clone(names), Type: typ, Detail: detail, Err: err}
}
