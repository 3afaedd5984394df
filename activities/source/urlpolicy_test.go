package source

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/netpolicy/netpolicytest"
)

// counter accepts TCP connections on a loopback address and counts them.
type counter struct {
	net.Listener
	conns atomic.Int32
}

func listenCount(t *testing.T, addr string) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	c := &counter{Listener: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *counter) port() string {
	_, p, _ := net.SplitHostPort(c.Addr().String())
	return p
}

// schemeURL is a repository URL on host:port for each network scheme.
func schemeURL(scheme, host, port string) string {
	hp := net.JoinHostPort(host, port)
	switch scheme {
	case "ssh":
		return "ssh://git@" + hp + "/org/repo.git"
	default:
		return scheme + "://" + hp + "/org/repo.git"
	}
}

var networkSchemes = []string{"http", "https", "ssh", "git"}

// withSSHAuth gives go-git's ssh transport credentials and a host key check
// that need no agent or known_hosts file, so an ssh clone gets as far as
// dialling.
func withSSHAuth(t *testing.T) {
	old := gitssh.DefaultAuthBuilder
	gitssh.DefaultAuthBuilder = func(user string) (gitssh.AuthMethod, error) {
		return &gitssh.Password{User: user, Password: "x",
			HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{HostKeyCallback: ssh.InsecureIgnoreHostKey()}}, nil
	}
	t.Cleanup(func() { gitssh.DefaultAuthBuilder = old })
}

func answers(m map[string]string) netpolicytest.Answer {
	return func(name string, _ int) []netip.Addr {
		if a, ok := m[name]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}
		}
		return nil
	}
}

// Host names are checked on the addresses they resolve to, when connecting,
// for every scheme: each forbidden form of an address is refused and a
// listener on the loopback address sees nothing. With loopback allowed the
// same URLs reach it, so the listener would have seen a refused dial.
func TestClone_RefusesResolvedAddressesAtDial(t *testing.T) {
	withSSHAuth(t)
	lo := listenCount(t, "127.0.0.1:0")
	names := map[string]string{
		"lo.test":        "127.0.0.1",
		"meta.test":      "169.254.169.254",
		"nat64.test":     "64:ff9b::a9fe:a9fe",
		"sixtofour.test": "2002:a9fe:a9fe::1",
		"compat.test":    "::a9fe:a9fe",
		"dummy.test":     "192.0.0.170",
		"bench.test":     "198.18.0.1",
		"reserved.test":  "240.0.0.1",
		"ula.test":       "fd00:ec2::254",
	}
	dns := netpolicytest.StartDNS(t, answers(names))
	dest := filepath.Join(t.TempDir(), "code")
	for _, scheme := range networkSchemes {
		for name := range names {
			u := schemeURL(scheme, name, lo.port())
			_, err := Clone(context.Background(), CloneOptions{URL: u, Dest: dest,
				Dialer: &netpolicy.Dialer{Resolver: dns.Resolver}})
			require.ErrorIs(t, err, ErrForbiddenURL, u)
			require.NoDirExists(t, dest)
		}
	}
	require.Zero(t, lo.conns.Load(), "a refused clone connected")

	for i, scheme := range networkSchemes {
		u := schemeURL(scheme, "lo.test", lo.port())
		_, err := Clone(context.Background(), CloneOptions{URL: u, Dest: dest,
			Dialer: &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{Allow: netpolicy.Loopback}}})
		require.ErrorIs(t, err, ErrUnreachable, "%s: the listener is no Git server", u)
		require.Eventually(t, func() bool { return lo.conns.Load() == int32(i+1) }, 5e9, 1e7, u)
	}
}

// DNS rebinding: the name answers an allowed address (127.0.0.2, where
// nothing listens) and then 127.0.0.1, which the policy refuses. A check
// that resolved separately from the dial would pass on the first answer and
// connect to the second; here each connection uses the address it checked,
// so the listener on 127.0.0.1 never sees one.
func TestClone_Rebinding(t *testing.T) {
	withSSHAuth(t)
	refused := listenCount(t, "127.0.0.1:0")
	dns := netpolicytest.StartDNS(t, func(name string, n int) []netip.Addr {
		if n == 0 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	})
	dialer := &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	dest := filepath.Join(t.TempDir(), "code")
	for _, scheme := range networkSchemes {
		host := scheme + ".rebind.test"
		u := schemeURL(scheme, host, refused.port())
		_, err := Clone(context.Background(), CloneOptions{URL: u, Dest: dest, Dialer: dialer})
		require.ErrorIs(t, err, ErrUnreachable, "%s: first answer allowed, nothing listens there", u)
		require.Equal(t, 1, dns.Lookups(host), "%s: one resolution, the one dialled", u)

		_, err = Clone(context.Background(), CloneOptions{URL: u, Dest: dest, Dialer: dialer})
		require.ErrorIs(t, err, ErrForbiddenURL, "%s: the new answer is refused", u)
	}
	require.Zero(t, refused.conns.Load(), "a clone reached the refused address")
}

// Proxies in the environment are not used for clones: they would connect to
// a forbidden target on the platform's behalf. The policy allows the
// proxy's own address here, so only ignoring the environment keeps it out.
func TestClone_IgnoresEnvironmentProxy(t *testing.T) {
	withSSHAuth(t)
	proxyLn := listenCount(t, "127.0.0.2:0")
	proxyAddr := proxyLn.Addr().String()
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(v, "http://"+proxyAddr)
	}
	t.Setenv("ALL_PROXY", "socks5://"+proxyAddr)
	t.Setenv("all_proxy", "socks5://"+proxyAddr)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	// Net/http reads the environment once per process: make sure it read
	// ours, or this test would prove nothing.
	req, _ := http.NewRequest(http.MethodGet, "https://meta.test/", nil)
	envProxy, err := http.ProxyFromEnvironment(req)
	require.NoError(t, err)
	require.Equal(t, &url.URL{Scheme: "http", Host: proxyAddr}, envProxy, "net/http read the proxy environment before this test")

	dns := netpolicytest.StartDNS(t, answers(map[string]string{"meta.test": "169.254.169.254"}))
	dialer := &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	dest := filepath.Join(t.TempDir(), "code")
	for _, scheme := range networkSchemes {
		u := schemeURL(scheme, "meta.test", "80")
		_, err := Clone(context.Background(), CloneOptions{URL: u, Dest: dest, Dialer: dialer})
		require.ErrorIs(t, err, ErrForbiddenURL, u)
	}
	require.Zero(t, proxyLn.conns.Load(), "the environment's proxy was used")
}

// A redirect from an allowed Git server to a refused address is refused when
// go-git follows it: every hop is dialled through the policy.
func TestClone_RedirectToRefusedAddress(t *testing.T) {
	refused := listenCount(t, "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.RedirectHandler("http://127.0.0.1:"+refused.port()+"/org/repo.git/info/refs?service=git-upload-pack", http.StatusFound)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dialer := &netpolicy.Dialer{Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	_, err = Clone(context.Background(), CloneOptions{URL: "http://" + ln.Addr().String() + "/org/repo.git",
		Dest: filepath.Join(t.TempDir(), "code"), Dialer: dialer})
	require.ErrorIs(t, err, ErrForbiddenURL)
	require.ErrorContains(t, err, "127.0.0.1")
	require.Zero(t, refused.conns.Load())
}
