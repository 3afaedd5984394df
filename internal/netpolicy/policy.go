package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which addresses may be connected to. The zero Policy allows
// public unicast addresses only.
type Policy struct {
	// Allow is the set of classes allowed besides public addresses;
	// AllClasses for dev and tests.
	Allow Class
	// AllowPrefixes are ranges allowed whatever their class (a known internal
	// Git server, or in tests one loopback address but not the others).
	AllowPrefixes []netip.Prefix
}

// Check returns nil when p allows a, else a *ForbiddenError.
func (p Policy) Check(a netip.Addr) error {
	c := Classify(a)
	if c&^p.Allow == 0 {
		return nil
	}
	u := a.WithZone("").Unmap()
	for _, pr := range p.AllowPrefixes {
		if pr.Contains(u) {
			return nil
		}
	}
	return &ForbiddenError{Addr: a, Class: c}
}

// ForbiddenError is an address the policy refused; callers map it to their
// "URL forbidden" error (a 4xx, never a retry).
type ForbiddenError struct {
	Addr  netip.Addr
	Class Class
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("address %s is %s, not a public address", e.Addr, e.Class)
}

// Dialer connects to addresses its Policy allows. The check runs in the
// net.Dialer's Control hook, on the address about to be connected to, so it
// holds for every address a name resolves to, for each redirect hop and for
// each new connection, whatever DNS answered before.
//
// A Dialer is safe for concurrent use; do not change its fields after first use.
type Dialer struct {
	// Policy decides which addresses are allowed.
	Policy Policy
	// Resolver resolves names; nil is net.DefaultResolver. Tests point it at
	// a DNS server on loopback.
	Resolver *net.Resolver
	// Timeout bounds each connect; 0 is 30 seconds.
	Timeout time.Duration
	// Proxy, when set, is an HTTP proxy that HTTPTransport sends every
	// request through. The proxy is trusted: the dial to it is not checked.
	// Instead, before each request the target's name is resolved and every
	// address must be allowed; the proxy resolves the name again itself, so
	// preventing rebinding there is the proxy's job. Proxies from the
	// environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) are never used: they
	// would connect on our behalf, past the check.
	Proxy *url.URL
}

func (d *Dialer) netDialer() *net.Dialer {
	t := d.Timeout
	if t == 0 {
		t = 30 * time.Second
	}
	return &net.Dialer{
		Timeout:   t,
		KeepAlive: 30 * time.Second,
		Resolver:  d.Resolver,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("parse dialled address %q: %w", address, err)
			}
			return d.Policy.Check(ap.Addr())
		},
	}
}

// DialContext connects to address ("host:port") over a TCP network, trying
// the host's allowed addresses; when every one is refused the error wraps a
// *ForbiddenError. Nothing is sent to a refused address.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("dial %s %s: only TCP is allowed", network, address)
	}
	return d.netDialer().DialContext(ctx, network, address)
}

// Dial is DialContext without a context (for interfaces that want Dial).
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// Resolve returns host's allowed addresses, in the resolver's order, for a
// transport that cannot take a dialer and must dial a checked IP itself. An
// IP literal is checked as it is. When no address is allowed the error
// wraps the first *ForbiddenError.
func (d *Dialer) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := d.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var ok []netip.Addr
	var first error
	for _, a := range addrs {
		if err := d.Policy.Check(a); err != nil {
			first = cmpOr(first, err)
			continue
		}
		ok = append(ok, a)
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("connect to %s: %w", host, first)
	}
	return ok, nil
}

// checkAll resolves host and refuses it when any address is refused (a
// proxy picks an address we do not see).
func (d *Dialer) checkAll(ctx context.Context, host string) error {
	addrs, err := d.lookup(ctx, host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := d.Policy.Check(a); err != nil {
			return fmt.Errorf("connect to %s: %w", host, err)
		}
	}
	return nil
}

func (d *Dialer) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no address", host)
	}
	return addrs, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// HTTPTransport returns an http.Transport that connects through d (so each
// redirect hop and each new connection is checked) and ignores proxies from
// the environment; with d.Proxy set it sends everything through that proxy
// after checking the target's addresses.
func (d *Dialer) HTTPTransport() *http.Transport {
	t := &http.Transport{
		Proxy:               nil, // not ProxyFromEnvironment: a proxy would dial past the check
		DialContext:         d.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        16,
		IdleConnTimeout:     30 * time.Second,
	}
	if d.Proxy != nil {
		proxy := d.Proxy
		t.Proxy = func(req *http.Request) (*url.URL, error) {
			if err := d.checkAll(req.Context(), req.URL.Hostname()); err != nil {
				return nil, err
			}
			return proxy, nil
		}
		// Every connection goes to the proxy, which is trusted.
		plain := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: d.Resolver}
		t.DialContext = plain.DialContext
	}
	return t
}

// IsForbidden reports whether err comes from a refused address.
func IsForbidden(err error) bool {
	var fe *ForbiddenError
	return errors.As(err, &fe)
}
