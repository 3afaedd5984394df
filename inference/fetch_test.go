package inference

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublicOnly(t *testing.T) {
	for addr, allowed := range map[string]bool{
		"93.184.215.14": true, "8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "127.9.9.9": false, "::1": false, "::ffff:127.0.0.1": false,
		"10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false, "fd00:ec2::254": false,
		"169.254.169.254": false, "fe80::1": false, "0.0.0.0": false, "::": false,
		"100.100.100.200": false, "224.0.0.1": false, "255.255.255.255": false, "64:ff9b::a00:1": false,
	} {
		err := publicOnly(netip.AddrPortFrom(netip.MustParseAddr(addr), 80))
		require.Equal(t, allowed, err == nil, "%s: %v", addr, err)
	}
}

// TestFetchRefusesInternalAddresses uses the default policy: loopback, the
// metadata service, private ranges and redirects to them are refused before
// any connection is made.
func TestFetchRefusesInternalAddresses(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the fetcher reached a loopback server")
	}))
	defer target.Close()
	tu, _ := url.Parse(target.URL)
	f := newFetcher(publicOnly, 1<<20)
	for _, u := range []string{
		target.URL + "/a.png",
		"http://localhost:" + tu.Port() + "/a.png",
		"http://[::1]:" + tu.Port() + "/a.png",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.1.2.3/a.png",
		"http://192.168.0.1/a.png",
		"https://0.0.0.0/a.png",
	} {
		_, err := f.fetch(t.Context(), u)
		require.Equal(t, CodeURLForbidden, codeOf(err), "%s: %v", u, err)
	}

	t.Run("redirect to loopback", func(t *testing.T) {
		// The first hop stands in for a public server: the test's policy allows
		// its port only; the redirect target gets the default policy.
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/a.png", http.StatusFound))
		defer redirector.Close()
		ru, _ := url.Parse(redirector.URL)
		port, _ := strconv.Atoi(ru.Port())
		f := newFetcher(func(ap netip.AddrPort) error {
			if ap.Port() == uint16(port) {
				return nil
			}
			return publicOnly(ap)
		}, 1<<20)
		_, err := f.fetch(t.Context(), redirector.URL+"/start")
		require.Equal(t, CodeURLForbidden, codeOf(err), "%v", err)
	})
}
