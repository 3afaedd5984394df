package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// allowedSchemes are the transports Clone may use; "file" only with AllowLocal.
var allowedSchemes = map[string]bool{"http": true, "https": true, "ssh": true, "git": true, "file": true}

// checkURL parses raw the way go-git will and refuses what opts does not
// allow: other schemes (ext::, fd::, ftp), local paths without AllowLocal,
// and hosts that resolve to loopback, private, link-local, CGNAT, multicast or
// unspecified addresses without AllowPrivate.
//
// For http(s) the same rule is enforced again when connecting (see
// guardedDial), which also covers redirects and DNS answers that change after
// this check. ssh and git:// rely on this check alone.
func checkURL(ctx context.Context, opts CloneOptions) (*transport.Endpoint, error) {
	raw := opts.URL
	if raw == "" {
		return nil, fmt.Errorf("%w: empty URL", ErrForbiddenURL)
	}
	if strings.HasPrefix(raw, "-") || strings.ContainsAny(raw, "\x00\n\r\t ") {
		return nil, fmt.Errorf("%w: %q", ErrForbiddenURL, redact(raw))
	}
	if i := strings.Index(raw, "::"); i > 0 && !strings.Contains(raw[:i], "/") {
		// git's remote helper syntax, "ext::sh -c ..." runs a command.
		return nil, fmt.Errorf("%w: remote helper %q", ErrForbiddenURL, raw[:i])
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrForbiddenURL, redact(raw), err)
	}
	if !allowedSchemes[ep.Protocol] {
		return nil, fmt.Errorf("%w: scheme %q (use https, http, ssh or git)", ErrForbiddenURL, ep.Protocol)
	}
	if ep.Protocol == "file" {
		if !opts.AllowLocal {
			return nil, fmt.Errorf("%w: local repository %q", ErrForbiddenURL, raw)
		}
		return ep, nil
	}
	if ep.Host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrForbiddenURL, redact(raw))
	}
	if opts.AllowPrivate {
		return ep, nil
	}
	if _, err := resolvePublic(ctx, ep.Host); err != nil {
		return nil, err
	}
	return ep, nil
}

// resolvePublic resolves host and returns its addresses when every one of
// them is public; a private one is ErrForbiddenURL, a failed lookup
// ErrUnreachable.
func resolvePublic(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: resolve %s: %v", ErrUnreachable, host, err)
		}
		addrs = ips
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s has no address", ErrUnreachable, host)
	}
	for _, a := range addrs {
		if !publicAddr(a) {
			return nil, fmt.Errorf("%w: %s is a private or local address (%s)", ErrForbiddenURL, host, a)
		}
	}
	return addrs, nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicAddr reports whether a is a globally routable unicast address. It
// keeps clones away from this machine, its network and cloud metadata
// endpoints (169.254.169.254 is link-local).
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a) &&
		!(a.Is4() && a.As4()[0] == 0)
}

// redact drops credentials from a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

type policyKey struct{}

// withPrivateDenied marks ctx so that guardedDial refuses private addresses.
func withPrivateDenied(ctx context.Context) context.Context {
	return context.WithValue(ctx, policyKey{}, true)
}

// guardedDial connects like net.Dialer but, when ctx carries the deny policy,
// resolves the host itself, refuses it unless every address is public and
// dials the checked address (so a DNS answer cannot change in between).
// Without the policy it is a plain dial, so other go-git users in the process
// see the default behaviour. Behind an HTTP proxy this checks the proxy's
// address: a proxy on a private network needs AllowPrivate.
func guardedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if deny, _ := ctx.Value(policyKey{}).(bool); !deny {
		return d.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := resolvePublic(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// The http and https transports of go-git are process-wide; installing ours
// once at init (before any clone can run) avoids racing on go-git's map.
func init() {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = guardedDial
	c := githttp.NewClientWithOptions(&http.Client{Transport: t}, &githttp.ClientOptions{
		RedirectPolicy: githttp.FollowInitialRedirects,
	})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}
