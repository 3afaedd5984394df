package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/dns"
	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testpebble"
)

// The main path: HTTP-01 validated for real by pebble (its VA resolves the
// name through ZoneDNS, i.e. from Route53, and fetches the token from lego's
// server), a certificate served by a Go TLS server and verified by a client
// that trusts only pebble's issuing root.
func TestObtainHTTP01(t *testing.T) {
	e := newEnv(t, testpebble.Config{ChainLength: 2})
	ctx := ctxFor(t)
	const name = "seg." + testDomain
	require.NoError(t, e.r53.Upsert(ctx, name, "127.0.0.1", 0))

	c := e.client(t, nil)
	certPEM, keyPEM, notAfter, err := c.Obtain(ctx, []string{name})
	require.NoError(t, err)

	leaf := leafOf(t, certPEM)
	require.Equal(t, []string{name}, leaf.DNSNames)
	require.Equal(t, leaf.NotAfter, notAfter)
	require.Equal(t, 3, strings.Count(string(certPEM), "BEGIN CERTIFICATE"), "leaf and both intermediates")
	require.NotEmpty(t, e.dns.Queries("tcp", name, miekg.TypeA), "pebble's VA found the name's address through Route53")

	chains, err := serveAndVerify(t, certPEM, keyPEM, name, e.pebble.IssuerRoots(t))
	require.NoError(t, err)
	require.NotEmpty(t, chains)
	require.Len(t, chains[0], 4, "leaf, two intermediates, pebble's root")
	require.Equal(t, leaf.SerialNumber, chains[0][0].SerialNumber)

	// Trusting the wrong root (pebble's HTTPS one) fails: verification is real.
	_, err = serveAndVerify(t, certPEM, keyPEM, name, e.pebble.TLSRoots())
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
	// And the certificate names only what was asked for.
	_, err = serveAndVerify(t, certPEM, keyPEM, "other."+testDomain, e.pebble.IssuerRoots(t))
	var invalid x509.HostnameError
	require.ErrorAs(t, err, &invalid)

	// The account key is sealed on disk, 0600, and opens only with its key.
	keyFile := e.options().AccountKeyFile
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Contains(t, string(raw), "BEGIN ALGOCLOUD SEALED DATA")
	require.NotContains(t, string(raw), "PRIVATE KEY")
	_, err = LoadKey(keyFile, e.encKey)
	require.NoError(t, err)
	other, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	_, err = LoadKey(keyFile, other)
	require.ErrorIs(t, err, sealed.ErrDecrypt)

	// The certificate's key, sealed by the caller, comes back for TLS.
	sealed := filepath.Join(e.dir, "cert", "key.sealed")
	require.NoError(t, os.MkdirAll(filepath.Dir(sealed), 0o700))
	require.NoError(t, SaveKey(sealed, e.encKey, keyPEM))
	back, err := LoadKey(sealed, e.encKey)
	require.NoError(t, err)
	_, err = serveAndVerify(t, certPEM, back, name, e.pebble.IssuerRoots(t))
	require.NoError(t, err)

	// A second client (a restarted worker) uses the same account key.
	c2 := e.client(t, nil)
	require.True(t, c.key.Public().(*ecdsa.PublicKey).Equal(c2.key.Public()))
	after, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, raw, after, "the key file is not rewritten")
	_, _, _, err = c2.Obtain(ctx, []string{name})
	require.NoError(t, err)
}

// DNS-01 end to end: the TXT records go to Route53 through activities/dns,
// lego waits until ZoneDNS (reading Route53) shows them, pebble's VA reads
// them from ZoneDNS. A name and its wildcard share one TXT name, so both
// values must be there at once; afterwards none is left.
func TestObtainDNS01(t *testing.T) {
	e := newEnv(t, testpebble.Config{})
	ctx := ctxFor(t)
	const name = "seg." + testDomain
	const challenge = "_acme-challenge." + name

	c := e.client(t, func(o *Options) {
		o.Challenge = DNS01
		o.DNSRecords = e.r53
		o.DNSResolvers = []string{e.dns.Addr}
		o.DNSPollInterval = 20 * time.Millisecond
		o.DNSPropagationTimeout = 30 * time.Second
	})
	certPEM, keyPEM, _, err := c.Obtain(ctx, []string{name, "*." + name})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{name, "*." + name}, leafOf(t, certPEM).DNSNames)

	var seen []string
	for _, q := range e.dns.Queries("tcp", challenge, miekg.TypeTXT) {
		seen = append(seen, q.Values...)
	}
	require.NotEmpty(t, seen, "pebble's VA read the TXT record from Route53")
	require.NotEmpty(t, e.dns.Queries("udp", challenge, miekg.TypeTXT), "lego checked propagation on the resolver")
	_, err = e.r53.TXT(ctx, challenge)
	require.ErrorIs(t, err, dns.ErrNotFound, "challenge records cleaned up")

	roots := e.pebble.IssuerRoots(t)
	_, err = serveAndVerify(t, certPEM, keyPEM, name, roots)
	require.NoError(t, err)
	_, err = serveAndVerify(t, certPEM, keyPEM, "api."+name, roots)
	require.NoError(t, err, "the wildcard covers names under it")
}

// Short-lived certificates (pebble's profile validity) renewed: each renewal
// is a new certificate with a new serial and a new key; renewing the same
// old certificate twice (a retried activity) works too.
func TestRenew(t *testing.T) {
	const validity = 10 * time.Minute
	e := newEnv(t, testpebble.Config{Validity: validity})
	ctx := ctxFor(t)
	const name = "seg." + testDomain
	require.NoError(t, e.r53.Upsert(ctx, name, "127.0.0.1", 0))
	c := e.client(t, nil)

	cert1, key1, _, err := c.Obtain(ctx, []string{name})
	require.NoError(t, err)
	leaf1 := leafOf(t, cert1)
	require.Equal(t, validity, leaf1.NotAfter.Sub(leaf1.NotBefore).Round(time.Minute), "short-lived as configured")
	at, err := RenewalTime(cert1)
	require.NoError(t, err)
	require.Equal(t, leaf1.NotBefore.Add(leaf1.NotAfter.Sub(leaf1.NotBefore)*2/3), at)

	cert2, key2, notAfter2, err := c.Renew(ctx, cert1)
	require.NoError(t, err)
	leaf2 := leafOf(t, cert2)
	require.NotEqual(t, leaf1.SerialNumber, leaf2.SerialNumber)
	require.NotEqual(t, string(key1), string(key2), "a renewal gets a new key")
	require.Equal(t, leaf1.DNSNames, leaf2.DNSNames)
	require.False(t, notAfter2.Before(leaf1.NotAfter))

	cert3, _, _, err := c.Renew(ctx, cert1)
	require.NoError(t, err, "renewing an already replaced certificate")
	leaf3 := leafOf(t, cert3)
	require.NotEqual(t, leaf1.SerialNumber, leaf3.SerialNumber)
	require.NotEqual(t, leaf2.SerialNumber, leaf3.SerialNumber)

	_, err = serveAndVerify(t, cert2, key2, name, e.pebble.IssuerRoots(t))
	require.NoError(t, err)

	_, _, _, err = c.Renew(ctx, []byte("not a certificate"))
	require.ErrorContains(t, err, "renew")
}

func TestBadDirectory(t *testing.T) {
	key, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	dir := t.TempDir()
	opts := func(url string) Options {
		return Options{DirectoryURL: url, AccountKeyFile: filepath.Join(dir, "account.key"), EncryptionKey: key, Logger: quiet()}
	}
	for _, bad := range []string{"", "not a url", "http://127.0.0.1:14000/dir", "https:///dir"} {
		_, err := New(opts(bad))
		require.ErrorIs(t, err, ErrDirectory, bad)
	}

	ctx := ctxFor(t)
	closed := "https://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/dir"
	c, err := New(opts(closed))
	require.NoError(t, err, "New does not contact the CA")
	_, _, _, err = c.Obtain(ctx, []string{"seg." + testDomain})
	require.ErrorIs(t, err, ErrDirectory)
	require.ErrorContains(t, err, closed)

	p := testpebble.Start(t, testpebble.Config{})
	for _, tc := range []struct {
		url   string
		roots *x509.CertPool
		why   string
	}{
		{strings.TrimSuffix(p.DirectoryURL, "/dir") + "/nope", p.TLSRoots(), "404"},
		{p.DirectoryURL, nil, "certificate"}, // pebble's HTTPS is not trusted by the system
	} {
		o := opts(tc.url)
		o.CARoots = tc.roots
		c, err := New(o)
		require.NoError(t, err)
		_, _, _, err = c.Obtain(ctx, []string{"seg." + testDomain})
		require.ErrorIs(t, err, ErrDirectory, tc.url)
		require.ErrorContains(t, err, tc.url)
		require.ErrorContains(t, err, tc.why)
	}
}

// A name pebble will not certify is a *RefusedError: callers make it a
// non-retryable failure. Nothing is validated, so no DNS or HTTP is needed.
func TestRefusedName(t *testing.T) {
	p := testpebble.Start(t, testpebble.Config{Blocked: []string{"blocked." + testDomain}})
	key, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	c, err := New(Options{
		DirectoryURL: p.DirectoryURL, CARoots: p.TLSRoots(),
		AccountKeyFile: filepath.Join(t.TempDir(), "account.key"), EncryptionKey: key, Logger: quiet(),
	})
	require.NoError(t, err)
	ctx := ctxFor(t)
	for _, tc := range []struct{ name, typ string }{
		{"api.blocked." + testDomain, "urn:ietf:params:acme:error:rejectedIdentifier"},
		{"bad_name." + testDomain, "urn:ietf:params:acme:error:malformed"},
		{"seg." + testDomain + ".", "urn:ietf:params:acme:error:malformed"},
	} {
		_, _, _, err := c.Obtain(ctx, []string{tc.name})
		var re *RefusedError
		require.ErrorAs(t, err, &re, tc.name)
		require.Equal(t, tc.typ, re.Type)
		require.Equal(t, []string{tc.name}, re.Names)
		require.NotEmpty(t, re.Detail)
		require.ErrorContains(t, err, tc.name)
	}
}

// A cancelled Obtain returns with ctx's error; the client still works after.
func TestObtainCancelled(t *testing.T) {
	e := newEnv(t, testpebble.Config{})
	const name = "seg." + testDomain
	c := e.client(t, nil)
	// No address record yet: the challenge cannot pass, lego keeps polling.
	ctx, cancel := context.WithTimeout(ctxFor(t), 300*time.Millisecond)
	defer cancel()
	_, _, _, err := c.Obtain(ctx, []string{name})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, e.r53.Upsert(ctxFor(t), name, "127.0.0.1", 0))
	_, _, _, err = c.Obtain(ctxFor(t), []string{name})
	require.NoError(t, err)
}

// HTTPTokens answers HTTP-01 from a server that is already running (here on
// the port pebble's VA looks at), instead of lego's own.
func TestHTTPTokens(t *testing.T) {
	e := newEnv(t, testpebble.Config{})
	ctx := ctxFor(t)
	const name = "seg." + testDomain
	require.NoError(t, e.r53.Upsert(ctx, name, "127.0.0.1", 0))

	tokens := &HTTPTokens{}
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.Handle(ChallengePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		tokens.ServeHTTP(w, r)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(e.httpPort))
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := e.client(t, func(o *Options) { o.HTTPProvider = tokens })
	_, _, _, err = c.Obtain(ctx, []string{name})
	require.NoError(t, err)
	require.Positive(t, hits.Load())
	tokens.mu.RLock()
	require.Empty(t, tokens.tokens, "tokens withdrawn after the challenge")
	tokens.mu.RUnlock()
}
