package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	gitproto "github.com/go-git/go-git/v5/plumbing/transport/git"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/net/proxy"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// allowedSchemes are the transports Clone may use; "file" only with AllowLocal.
var allowedSchemes = map[string]bool{"http": true, "https": true, "ssh": true, "git": true, "file": true}

// checkURL parses raw the way go-git will and refuses what opts does not
// allow: other schemes (ext::, fd::, ftp), local paths without AllowLocal,
// and a host given as an address the policy refuses. Host names are checked
// when connecting, on the addresses actually dialled (see guard), not here:
// a second resolution could answer differently.
func checkURL(opts CloneOptions, policy netpolicy.Policy) (*transport.Endpoint, error) {
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
	if a, err := netip.ParseAddr(strings.Trim(ep.Host, "[]")); err == nil {
		if err := policy.Check(a); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrForbiddenURL, err)
		}
	}
	return ep, nil
}

// redact drops credentials from a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// go-git's transports are process-wide and take no dialer, so each clone
// registers a guard and hands go-git its ID as the endpoint's proxy URL
// (the one per-call value go-git carries to every transport). The wrappers
// installed below read it back and connect through the guard's
// netpolicy.Dialer:
//
//   - http, https: a go-git HTTP client over the dialer's http.Transport
//     (checked in the Control hook, each redirect hop too; no proxy from the
//     environment);
//   - ssh: go-git dials through golang.org/x/net/proxy, where guardScheme is
//     registered as a dialer type that is the guard itself (checked in the
//     Control hook; the host name stays the one the host key is checked
//     against; ALL_PROXY is not consulted);
//   - git://: go-git calls net.Dial itself, so the wrapper resolves the host
//     once through the policy and gives go-git the checked IP to dial (the
//     git-daemon "host" field then carries the IP).
//
// An endpoint without a guard (another go-git user in the process) gets the
// default guard: public addresses only.
const guardScheme = "algocloud-netpolicy"

// guard connects one clone through its dialer and remembers the first
// refusal, because go-git's errors do not wrap the dial's error.
type guard struct {
	id     string
	dialer *netpolicy.Dialer

	refused atomic.Pointer[netpolicy.ForbiddenError]
	once    sync.Once
	http    transport.Transport
	httpT   *http.Transport
}

var (
	guards       sync.Map // id -> *guard
	guardSeq     atomic.Uint64
	defaultGuard = &guard{id: "default", dialer: &netpolicy.Dialer{}}
)

// newGuard registers a guard for d until release is called, which also
// closes the idle HTTP connections the clone leaves.
func newGuard(d *netpolicy.Dialer) (g *guard, release func()) {
	g = &guard{id: "g" + strconv.FormatUint(guardSeq.Add(1), 10), dialer: d}
	guards.Store(g.id, g)
	return g, func() {
		guards.Delete(g.id)
		g.once.Do(func() {}) // no HTTP client after this
		if g.httpT != nil {
			g.httpT.CloseIdleConnections()
		}
	}
}

// proxyOptions is what go-git carries to the transport for this guard.
func (g *guard) proxyOptions() transport.ProxyOptions {
	return transport.ProxyOptions{URL: guardScheme + "://" + g.id}
}

// guardFor finds the guard an endpoint carries, or the default.
func guardFor(ep *transport.Endpoint) *guard {
	if u, err := url.Parse(ep.Proxy.URL); err == nil && u.Scheme == guardScheme {
		if g, ok := guards.Load(u.Host); ok {
			return g.(*guard)
		}
	}
	return defaultGuard
}

// note remembers err when it is a refusal.
func (g *guard) note(err error) error {
	if fe, ok := asForbidden(err); ok {
		g.refused.CompareAndSwap(nil, fe)
	}
	return err
}

// DialContext connects through the policy (proxy.ContextDialer, for ssh).
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := g.dialer.DialContext(ctx, network, addr)
	return c, g.note(err)
}

// Dial is DialContext without a context (proxy.Dialer).
func (g *guard) Dial(network, addr string) (net.Conn, error) {
	return g.DialContext(context.Background(), network, addr)
}

// httpTransport is a go-git HTTP client over the guard's dialer.
func (g *guard) httpTransport() transport.Transport {
	g.once.Do(func() {
		t := g.dialer.HTTPTransport()
		if g.dialer.Proxy == nil {
			t.DialContext = g.DialContext
		} else if p := t.Proxy; p != nil {
			t.Proxy = func(r *http.Request) (*url.URL, error) {
				u, err := p(r)
				return u, g.note(err)
			}
		}
		g.httpT = t
		g.http = githttp.NewClientWithOptions(&http.Client{Transport: t}, &githttp.ClientOptions{
			RedirectPolicy: githttp.FollowInitialRedirects,
		})
	})
	return g.http
}

// guardedTransport is what go-git finds for scheme: it picks the endpoint's
// guard and hands the connection to go-git's own transport.
type guardedTransport struct{ scheme string }

func (t guardedTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	inner, e, err := t.prepare(ep)
	if err != nil {
		return nil, err
	}
	return inner.NewUploadPackSession(e, auth)
}

func (t guardedTransport) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	inner, e, err := t.prepare(ep)
	if err != nil {
		return nil, err
	}
	return inner.NewReceivePackSession(e, auth)
}

func (t guardedTransport) prepare(ep *transport.Endpoint) (transport.Transport, *transport.Endpoint, error) {
	g := guardFor(ep)
	e := *ep
	switch t.scheme {
	case "ssh":
		e.Proxy = g.proxyOptions()
		return gitssh.DefaultClient, &e, nil
	case "git":
		e.Proxy = transport.ProxyOptions{}
		// go-git's git:// transport neither takes a dialer nor a context.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		addrs, err := g.dialer.Resolve(ctx, e.Host)
		if err != nil {
			return nil, nil, g.note(err)
		}
		e.Host = addrs[0].String()
		return gitproto.DefaultClient, &e, nil
	default: // http, https
		e.Proxy = transport.ProxyOptions{}
		tr := g.httpTransport()
		if tr == nil {
			return nil, nil, errors.New("connection policy used after its clone ended")
		}
		return tr, &e, nil
	}
}

// Installing the transports once at init (before any clone can run) avoids
// racing on go-git's process-wide map.
func init() {
	for _, s := range []string{"http", "https", "ssh", "git"} {
		client.InstallProtocol(s, guardedTransport{scheme: s})
	}
	guards.Store(defaultGuard.id, defaultGuard)
	proxy.RegisterDialerType(guardScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		if g, ok := guards.Load(u.Host); ok {
			return g.(*guard), nil
		}
		return nil, fmt.Errorf("no connection policy %q (its clone has ended)", u.Host)
	})
}

// asForbidden finds a policy refusal in err's chain.
func asForbidden(err error) (*netpolicy.ForbiddenError, bool) {
	var fe *netpolicy.ForbiddenError
	ok := errors.As(err, &fe)
	return fe, ok
}

// dialerFor is the dialer a clone connects through.
func dialerFor(opts CloneOptions) *netpolicy.Dialer {
	if opts.Dialer != nil {
		return opts.Dialer
	}
	d := &netpolicy.Dialer{} // public addresses only
	if opts.AllowPrivate {
		d.Policy.Allow = netpolicy.AllClasses
	}
	return d
}

// forbidden turns err into ErrForbiddenURL when the guard refused an address
// during the operation that failed.
func (g *guard) forbidden(err error) error {
	if fe := g.refused.Load(); fe != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenURL, fe)
	}
	return err
}
