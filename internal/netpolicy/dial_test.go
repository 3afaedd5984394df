package netpolicy_test

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/netpolicy/netpolicytest"
	"github.com/stretchr/testify/require"
)

// listener accepts on addr (a loopback address) and counts connections.
type listener struct {
	net.Listener
	conns atomic.Int32
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	l := &listener{Listener: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *listener) port() string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// fixed answers each name the same way every time.
func fixed(m map[string][]netip.Addr) netpolicytest.Answer {
	return func(name string, _ int) []netip.Addr { return m[name] }
}

// Names that resolve to refused addresses are refused at connect time,
// whichever form the address takes; a listener on the loopback address they
// name sees nothing, while a policy that allows loopback reaches it (so the
// listener would have noticed).
func TestDialer_RefusesResolvedAddresses(t *testing.T) {
	lo := listen(t, "127.0.0.1:0")
	dns := netpolicytest.StartDNS(t, fixed(map[string][]netip.Addr{
		"lo.test":       addrs("127.0.0.1"),
		"meta.test":     addrs("169.254.169.254"),
		"nat64.test":    addrs("64:ff9b::a9fe:a9fe"),
		"6to4.test":     addrs("2002:a9fe:a9fe::1"),
		"compat.test":   addrs("::a9fe:a9fe"),
		"dummy.test":    addrs("192.0.0.170"),
		"bench.test":    addrs("198.18.0.1"),
		"reserved.test": addrs("240.0.0.1"),
		"mixed.test":    addrs("10.0.0.1", "127.0.0.1"),
	}))
	d := &netpolicy.Dialer{Resolver: dns.Resolver}
	for _, name := range []string{"lo.test", "meta.test", "nat64.test", "6to4.test", "compat.test", "dummy.test", "bench.test", "reserved.test", "mixed.test"} {
		_, err := d.DialContext(t.Context(), "tcp", net.JoinHostPort(name, lo.port()))
		require.True(t, netpolicy.IsForbidden(err), "%s: %v", name, err)
		_, err = d.Resolve(t.Context(), name)
		require.True(t, netpolicy.IsForbidden(err), "%s: %v", name, err)
	}
	_, err := d.DialContext(t.Context(), "tcp", "127.0.0.1:"+lo.port())
	require.True(t, netpolicy.IsForbidden(err), "an IP literal is checked too: %v", err)
	_, err = d.DialContext(t.Context(), "unix", "/tmp/x.sock")
	require.Error(t, err)
	require.Zero(t, lo.conns.Load(), "no refused dial reached the listener")

	allow := &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{Allow: netpolicy.Loopback}}
	c, err := allow.DialContext(t.Context(), "tcp", net.JoinHostPort("lo.test", lo.port()))
	require.NoError(t, err)
	c.Close()
	c, err = allow.DialContext(t.Context(), "tcp", net.JoinHostPort("mixed.test", lo.port()))
	require.NoError(t, err, "the allowed address of a name is used, the refused one skipped")
	c.Close()
	require.Eventually(t, func() bool { return lo.conns.Load() == 2 }, 5e9, 1e7)
}

// DNS rebinding: the name first answers an allowed address, then a refused
// one. Each connection checks the address it is about to use, so the second
// never reaches the listener on the refused address.
func TestDialer_Rebinding(t *testing.T) {
	refused := listen(t, "127.0.0.1:0")
	allowed := listen(t, "127.0.0.2:"+refused.port())
	dns := netpolicytest.StartDNS(t, func(name string, n int) []netip.Addr {
		if n == 0 {
			return addrs("127.0.0.2")
		}
		return addrs("127.0.0.1")
	})
	d := &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	addr := net.JoinHostPort("rebind.test", refused.port())
	c, err := d.DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	c.Close()
	_, err = d.DialContext(t.Context(), "tcp", addr)
	require.True(t, netpolicy.IsForbidden(err), "%v", err)
	require.Eventually(t, func() bool { return allowed.conns.Load() == 1 }, 5e9, 1e7)
	require.Zero(t, refused.conns.Load())
}

// proxyServer is an HTTP proxy stand-in on 127.0.0.2 that records requests
// and answers them itself.
func proxyServer(t *testing.T) (*url.URL, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	var seen atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "via proxy")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, &seen
}

// A proxy in the environment is never used: it would connect to a refused
// target on our behalf. The policy even allows the proxy's address here, so
// only ignoring the environment keeps the proxy from seeing the request.
func TestHTTPTransport_IgnoresEnvironmentProxy(t *testing.T) {
	proxy, seen := proxyServer(t)
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(v, proxy.String())
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	dns := netpolicytest.StartDNS(t, fixed(map[string][]netip.Addr{"meta.test": addrs("169.254.169.254")}))
	d := &netpolicy.Dialer{Resolver: dns.Resolver, Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	client := &http.Client{Transport: d.HTTPTransport()}
	for _, u := range []string{"http://meta.test/latest/meta-data/", "https://meta.test/latest/meta-data/"} {
		_, err := client.Get(u)
		require.True(t, netpolicy.IsForbidden(err), "%s: %v", u, err)
	}
	require.Zero(t, seen.Load(), "the environment's proxy saw a request")
}

// An explicitly configured proxy is trusted, but the target's addresses are
// checked before anything is sent to it.
func TestHTTPTransport_ExplicitProxyChecksTarget(t *testing.T) {
	proxy, seen := proxyServer(t)
	dns := netpolicytest.StartDNS(t, fixed(map[string][]netip.Addr{
		"meta.test":  addrs("169.254.169.254"),
		"mixed.test": addrs("127.0.0.2", "10.0.0.1"),
		"ok.test":    addrs("127.0.0.2"),
	}))
	d := &netpolicy.Dialer{Resolver: dns.Resolver, Proxy: proxy, Policy: netpolicy.Policy{
		AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}}
	client := &http.Client{Transport: d.HTTPTransport()}
	for _, u := range []string{"http://meta.test/", "http://mixed.test/", "http://169.254.169.254/"} {
		_, err := client.Get(u)
		require.True(t, netpolicy.IsForbidden(err), "%s: %v", u, err)
	}
	require.Zero(t, seen.Load())

	resp, err := client.Get("http://ok.test:" + strconv.Itoa(80) + "/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "via proxy", string(b))
	require.EqualValues(t, 1, seen.Load())
}
