package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// MaxURLLength bounds a webhook URL.
const MaxURLLength = 2048

// URLError is a webhook URL CheckURL refused; its message names the problem
// (the API answers it as a 400 naming the webhook field).
type URLError struct {
	URL    string
	Reason string
	// Forbidden is set when the policy refused the address.
	Forbidden *netpolicy.ForbiddenError
}

func (e *URLError) Error() string { return "webhook URL " + e.Reason }

// Unwrap gives the policy's refusal, when that is the reason.
func (e *URLError) Unwrap() error {
	if e.Forbidden == nil {
		return nil
	}
	return e.Forbidden
}

// CheckURL is the check a webhook URL passes when a prediction or batch is
// created: an absolute http(s) URL without credentials whose host, when it is
// an IP address or localhost, the policy allows. A name is checked again,
// on every address it resolves to, when each attempt dials (names may change
// their answer: DNS rebinding), so passing here allows nothing by itself.
// The error is a *URLError.
func CheckURL(policy netpolicy.Policy, raw string) error {
	bad := func(format string, args ...any) error {
		return &URLError{URL: raw, Reason: fmt.Sprintf(format, args...)}
	}
	if raw == "" {
		return bad("is empty")
	}
	if len(raw) > MaxURLLength {
		return bad("is longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return bad("must start with https:// (or http://), not %q", u.Scheme+":")
	}
	if u.User != nil {
		return bad("must not carry a user or password (they would be stored and shown with the attempts)")
	}
	host := u.Hostname()
	if host == "" {
		return bad("has no host")
	}
	if p := u.Port(); p == "0" {
		return bad("has port 0")
	}
	addr, err := netip.ParseAddr(host)
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case err == nil:
	case lower == "localhost" || strings.HasSuffix(lower, ".localhost"):
		// RFC 6761: these names are loopback whatever DNS says.
		addr = netip.MustParseAddr("127.0.0.1")
	default:
		return nil
	}
	if err := policy.Check(addr); err != nil {
		fe, _ := err.(*netpolicy.ForbiddenError)
		return &URLError{URL: raw, Reason: fmt.Sprintf("is refused: %s is %s, not a public address", host, netpolicy.Classify(addr)), Forbidden: fe}
	}
	return nil
}
