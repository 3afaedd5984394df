package inference

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/netpolicy/netpolicytest"
	"github.com/stretchr/testify/require"
)

// TestFetchRefusesInternalAddresses uses the default policy: loopback, the
// metadata service, private ranges and redirects to them are refused before
// any connection is made.
func TestFetchRefusesInternalAddresses(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	defer target.Close()
	tu, _ := url.Parse(target.URL)
	f := newFetcher(&netpolicy.Dialer{}, 1<<20)
	for _, u := range []string{
		target.URL + "/a.png",
		"http://localhost:" + tu.Port() + "/a.png",
		"http://[::1]:" + tu.Port() + "/a.png",
		"http://[::ffff:127.0.0.1]:" + tu.Port() + "/a.png",
		"http://169.254.169.254/latest/meta-data/",
		"http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
		"http://[2002:a9fe:a9fe::1]/latest/meta-data/",
		"http://[::a9fe:a9fe]/latest/meta-data/",
		"http://192.0.0.170/a.png",
		"http://198.18.0.1/a.png",
		"http://240.0.0.1/a.png",
		"http://10.1.2.3/a.png",
		"http://192.168.0.1/a.png",
		"https://0.0.0.0/a.png",
	} {
		_, err := f.fetch(t.Context(), u)
		require.Equal(t, CodeURLForbidden, codeOf(err), "%s: %v", u, err)
	}
	require.Zero(t, hits.Load(), "the fetcher reached a loopback server")

	t.Run("redirect to loopback", func(t *testing.T) {
		// The first hop, on 127.0.0.2, stands in for a public server: the
		// test's policy allows that address only; the redirect target on
		// 127.0.0.1 is refused.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		redirector := httptest.NewUnstartedServer(http.RedirectHandler(target.URL+"/a.png", http.StatusFound))
		redirector.Listener.Close()
		redirector.Listener = ln
		redirector.Start()
		defer redirector.Close()
		f := newFetcher(&netpolicy.Dialer{Policy: netpolicy.Policy{
			AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		}}, 1<<20)
		_, err = f.fetch(t.Context(), redirector.URL+"/start")
		require.Equal(t, CodeURLForbidden, codeOf(err), "%v", err)
		require.Zero(t, hits.Load())
	})

	t.Run("name resolving to the metadata address", func(t *testing.T) {
		dns := netpolicytest.StartDNS(t, func(string, int) []netip.Addr {
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}
		})
		f := newFetcher(&netpolicy.Dialer{Resolver: dns.Resolver}, 1<<20)
		_, err := f.fetch(t.Context(), "http://metadata.test/latest/meta-data/")
		require.Equal(t, CodeURLForbidden, codeOf(err), "%v", err)
	})

	t.Run("allowed when configured", func(t *testing.T) {
		f := newFetcher(&netpolicy.Dialer{Policy: netpolicy.Policy{Allow: netpolicy.AllClasses}}, 1<<20)
		_, err := f.fetch(t.Context(), target.URL+"/a.png")
		require.Equal(t, CodeURLFetchFailed, codeOf(err), "reached the server, which sends an empty body: %v", err)
		require.EqualValues(t, 1, hits.Load())
	})
}
