package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// urlFetchTimeout bounds downloading an image URL, redirects included.
const urlFetchTimeout = 30 * time.Second

// fetcher downloads image URLs for clients. Every address it connects to,
// redirect targets included, passes check in the dialer's Control hook, so
// the address checked is the one dialled (no DNS rebinding window).
type fetcher struct {
	client   *http.Client
	maxBytes int64
}

// addrCheck decides whether the fetcher may connect to an address.
type addrCheck func(netip.AddrPort) error

// forbiddenAddrError is a dial the SSRF policy refused.
type forbiddenAddrError struct{ addr netip.Addr }

func (e *forbiddenAddrError) Error() string {
	return fmt.Sprintf("address %s is loopback, private, link-local or otherwise internal", e.addr)
}

// internalPrefixes are ranges beyond what netip's predicates cover: "this
// network", carrier-grade NAT (some clouds serve metadata there), IETF
// protocol assignments, benchmarking, reserved/broadcast, and IPv6 prefixes
// that embed an IPv4 address (NAT64, 6to4).
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
}

// publicOnly refuses loopback, private, link-local (169.254.169.254, the cloud
// metadata service, included), multicast, unspecified and reserved addresses.
func publicOnly(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return &forbiddenAddrError{a}
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return &forbiddenAddrError{a}
		}
	}
	return nil
}

func allowAll(netip.AddrPort) error { return nil }

func newFetcher(check addrCheck, maxBytes int64) *fetcher {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("parse dialled address %q: %w", address, err)
			}
			return check(ap)
		},
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial on our behalf, past the check
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: urlFetchTimeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   urlFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
	return &fetcher{client: client, maxBytes: maxBytes}
}

// fetch downloads raw, at most maxBytes, and maps failures to API errors.
func (f *fetcher) fetch(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, apiErr(http.StatusBadRequest, CodeBadURL, "url must be an absolute http:// or https:// URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, CodeBadURL, "bad url: %v", err)
	}
	req.Header.Set("Accept", "image/png, image/jpeg, image/gif, */*;q=0.5")
	req.Header.Set("User-Agent", "algocloud-inference")
	resp, err := f.client.Do(req)
	if err != nil {
		var fe *forbiddenAddrError
		if errors.As(err, &fe) {
			return nil, apiErr(http.StatusBadRequest, CodeURLForbidden, "the server does not fetch %s: %v", u.Redacted(), fe)
		}
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: %v", u.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: the server answered %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the image at the URL is %d bytes; the limit is %d", resp.ContentLength, f.maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: %v", u.Redacted(), err)
	}
	if int64(len(b)) > f.maxBytes {
		return nil, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the image at the URL exceeds %d bytes", f.maxBytes)
	}
	if len(b) == 0 {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: the body is empty", u.Redacted())
	}
	return b, nil
}

// unwrapURLError drops url.Error's "Get \"...\":" prefix; the caller names the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
