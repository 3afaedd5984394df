// Package acme obtains and renews TLS certificates from an ACME CA (Let's
// Encrypt in production, pebble in tests) with lego
// (github.com/go-acme/lego/v4), proving control of each name by HTTP-01 or
// by DNS-01 through TXT records (activities/dns keeps them in Route53).
//
// Where keys live: the ACME account key is in Options.AccountKeyFile, sealed
// with AES-256-GCM under Options.EncryptionKey (mode 0600; created on first
// use); it never leaves the worker. A certificate's private key is made by
// Obtain in memory and handed to the caller, who stores it sealed (SaveKey)
// next to the certificate and opens it only where TLS is served (LoadKey).
// Neither key is logged, put in an error, or sent anywhere but to what
// needs it: the CA sees only public keys and signatures.
//
// lego's API takes no context: each call ties lego's HTTP requests to its
// ctx, and a cancelled call returns at once while lego winds down. Calls on
// one Client run one at a time (the HTTP-01 server holds a port; lego keeps
// DNS-01 settings in package variables, so DNS-01 calls are serialised
// process-wide).
package acme

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	miekg "github.com/miekg/dns"

	"github.com/algocloud/algocloud/internal/sealed"
)

// Challenge types.
const (
	HTTP01 = "http-01"
	DNS01  = "dns-01"
)

// Defaults for Options.
const (
	DefaultHTTPPort              = 80
	DefaultDNSPropagationTimeout = 2 * time.Minute
	DefaultDNSPollInterval       = 2 * time.Second
	DefaultIssueTimeout          = 30 * time.Second
)

// Options configure a Client.
type Options struct {
	// DirectoryURL is the CA's ACME directory (https), e.g.
	// lego.LEDirectoryProduction.
	DirectoryURL string
	// Email is the account's contact; optional.
	Email string
	// CARoots are the roots trusted for the CA's HTTPS; nil means the
	// system's. Tests pass the root of pebble's TLS certificate.
	CARoots *x509.CertPool

	// Challenge is HTTP01 (the default) or DNS01.
	Challenge string
	// HTTPAddress and HTTPPort are where lego's own HTTP-01 server listens
	// while a challenge is open ("" is every interface; port default 80).
	HTTPAddress string
	HTTPPort    int
	// HTTPProvider, when set, answers HTTP-01 instead of lego's server, e.g.
	// an *HTTPTokens mounted in a server already on port 80.
	HTTPProvider challenge.Provider
	// DNSRecords answers DNS-01 by TXT records (e.g. *dns.Route53).
	DNSRecords TXTRecords
	// DNSProvider answers DNS-01 instead of DNSRecords (any lego provider).
	DNSProvider challenge.Provider
	// DNSResolvers ("host:port") are the resolvers lego asks until the TXT
	// record shows. Empty means the system's resolvers, and then also every
	// authoritative server of the zone on port 53.
	DNSResolvers []string
	// DNSPropagationTimeout and DNSPollInterval bound that wait; defaults
	// 2 minutes and 2 seconds. They apply to DNSRecords only.
	DNSPropagationTimeout, DNSPollInterval time.Duration

	// AccountKeyFile holds the ACME account key, sealed; created (0600, and
	// its folder 0700) when missing. Required.
	AccountKeyFile string
	// EncryptionKey (32 bytes, see ParseEncryptionKey) seals the account key.
	// In production it comes from the worker's configuration (an environment
	// variable or a secret store), never from the same disk. Required.
	EncryptionKey []byte

	// KeyType is the certificate key's type; default ECDSA P-256.
	KeyType certcrypto.KeyType
	// IssueTimeout bounds the wait for the CA to issue after validation;
	// default 30 seconds.
	IssueTimeout time.Duration
	// Logger receives one line per certificate; default slog.Default().
	Logger *slog.Logger
}

// Client obtains certificates from one ACME CA with one account. Its methods
// may be called concurrently; they run one at a time.
type Client struct {
	opts      Options
	key       crypto.Signer
	transport http.RoundTripper
	log       *slog.Logger

	mu  sync.Mutex
	reg *registration.Resource // the account, once registered
}

// dnsMu serialises DNS-01 calls in the process: lego keeps the resolvers
// and the zone cache of DNS-01 in package variables.
var dnsMu sync.Mutex

// New checks opts and loads (or creates and seals) the account key. It does
// not contact the CA: the first Obtain registers the account.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: directory URL %q is not an https URL", ErrDirectory, opts.DirectoryURL)
	}
	if opts.Challenge == "" {
		opts.Challenge = HTTP01
	}
	switch opts.Challenge {
	case HTTP01:
		if opts.HTTPPort == 0 {
			opts.HTTPPort = DefaultHTTPPort
		}
		if opts.HTTPProvider == nil && (opts.HTTPPort < 1 || opts.HTTPPort > 65535) {
			return nil, fmt.Errorf("acme: HTTP-01 port %d out of range", opts.HTTPPort)
		}
	case DNS01:
		if opts.DNSRecords == nil && opts.DNSProvider == nil {
			return nil, errors.New("acme: DNS-01 needs DNSRecords or a DNSProvider")
		}
	default:
		return nil, fmt.Errorf("acme: unknown challenge %q (want %s or %s)", opts.Challenge, HTTP01, DNS01)
	}
	if opts.DNSPropagationTimeout <= 0 {
		opts.DNSPropagationTimeout = DefaultDNSPropagationTimeout
	}
	if opts.DNSPollInterval <= 0 {
		opts.DNSPollInterval = DefaultDNSPollInterval
	}
	if opts.IssueTimeout <= 0 {
		opts.IssueTimeout = DefaultIssueTimeout
	}
	if opts.KeyType == "" {
		opts.KeyType = certcrypto.EC256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AccountKeyFile == "" {
		return nil, errors.New("acme: no account key file")
	}
	if len(opts.EncryptionKey) != sealed.EncryptionKeySize {
		return nil, fmt.Errorf("acme: encryption key has %d bytes, want %d", len(opts.EncryptionKey), sealed.EncryptionKeySize)
	}
	key, err := loadOrCreateKey(opts.AccountKeyFile, opts.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	return &Client{
		opts: opts,
		key:  key,
		transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: opts.CARoots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		},
		log: opts.Logger.With("acme", opts.DirectoryURL),
	}, nil
}

// Obtain gets a certificate for names (DNS names; the first is the subject)
// with a new private key. certPEM is the leaf followed by its intermediates;
// keyPEM is the key, for the caller to seal (SaveKey). A refusal of the names
// by the CA is a *RefusedError; a directory that cannot be used wraps
// ErrDirectory; anything else (a failed challenge, an outage) may pass on a
// retry.
func (c *Client) Obtain(ctx context.Context, names []string) (certPEM, keyPEM []byte, notAfter time.Time, err error) {
	return c.obtain(ctx, names, "")
}

// Renew obtains a new certificate, with a new key, for the names of certPEM
// (a certificate this or another Client obtained), telling the CA which one
// it replaces (ACME renewal information, RFC 9773) where the CA supports
// that. Renewing a certificate that was already replaced simply obtains
// another, so a retried renewal is harmless.
func (c *Client) Renew(ctx context.Context, certPEM []byte) (newCertPEM, keyPEM []byte, notAfter time.Time, err error) {
	leaf, err := parseLeaf(certPEM)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("renew: %w", err)
	}
	names := certcrypto.ExtractDomains(leaf)
	replaces, err := certificate.MakeARICertID(leaf)
	if err != nil {
		replaces = "" // no authority key ID: renew without naming it
	}
	return c.obtain(ctx, names, replaces)
}

// RenewalTime is when certPEM should be renewed: once two thirds of its
// lifetime have passed (30 days before the end of a 90-day certificate, as
// Let's Encrypt advises), so a failed attempt has time to be retried.
func RenewalTime(certPEM []byte) (time.Time, error) {
	leaf, err := parseLeaf(certPEM)
	if err != nil {
		return time.Time{}, err
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3), nil
}

type result struct {
	cert, key []byte
	notAfter  time.Time
	err       error
}

func (c *Client) obtain(ctx context.Context, names []string, replaces string) ([]byte, []byte, time.Time, error) {
	if len(names) == 0 {
		return nil, nil, time.Time{}, errors.New("obtain certificate: no names")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("obtain certificate for %v: %w", names, err)
	}
	done := make(chan result, 1)
	go func() { done <- c.run(ctx, names, replaces) }()
	select {
	case r := <-done:
		return r.cert, r.key, r.notAfter, r.err
	case <-ctx.Done():
		// lego's requests fail with ctx; it finishes in the background and
		// c.mu keeps the next call waiting until it has.
		return nil, nil, time.Time{}, fmt.Errorf("obtain certificate for %v: %w", names, ctx.Err())
	}
}

// run is one Obtain, start to end, under the client's lock.
func (c *Client) run(ctx context.Context, names []string, replaces string) result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.Challenge == DNS01 {
		dnsMu.Lock()
		defer dnsMu.Unlock()
	}
	fail := func(err error) result {
		return result{err: fmt.Errorf("obtain certificate for %v: %w", names, err)}
	}
	lc, err := c.legoClient(ctx)
	if err != nil {
		return fail(err)
	}
	res, err := lc.Certificate.Obtain(certificate.ObtainRequest{
		Domains:        names,
		Bundle:         true,
		ReplacesCertID: replaces,
	})
	if err != nil {
		return fail(refused(names, err))
	}
	leaf, err := parseLeaf(res.Certificate)
	if err != nil {
		return fail(fmt.Errorf("the CA's certificate: %w", err))
	}
	c.log.InfoContext(ctx, "certificate obtained", "names", names, "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter, "renewal", replaces != "")
	return result{cert: res.Certificate, key: res.PrivateKey, notAfter: leaf.NotAfter}
}

// legoClient makes a lego client for one call: its requests carry ctx, its
// challenge is set up, and the account is registered (once per Client:
// registering an existing key returns the existing account).
func (c *Client) legoClient(ctx context.Context) (*lego.Client, error) {
	cfg := lego.NewConfig(&user{email: c.opts.Email, key: c.key, reg: c.reg})
	cfg.CADirURL = c.opts.DirectoryURL
	cfg.UserAgent = "algocloud"
	cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute, Transport: ctxTransport{ctx: ctx, base: c.transport}}
	cfg.Certificate = lego.CertificateConfig{KeyType: c.opts.KeyType, Timeout: c.opts.IssueTimeout}
	lc, err := lego.NewClient(cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrDirectory, c.opts.DirectoryURL, err)
	}
	switch c.opts.Challenge {
	case HTTP01:
		err = lc.Challenge.SetHTTP01Provider(httpProvider(c.opts))
	case DNS01:
		err = lc.Challenge.SetDNS01Provider(c.dnsProvider(ctx), c.dnsOptions()...)
	}
	if err != nil {
		return nil, fmt.Errorf("set up %s: %w", c.opts.Challenge, err)
	}
	if c.reg == nil {
		reg, err := lc.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return nil, fmt.Errorf("register ACME account: %w", refused(nil, err))
		}
		c.reg = reg
	}
	return lc, nil
}

func (c *Client) dnsProvider(ctx context.Context) challenge.Provider {
	if c.opts.DNSProvider != nil {
		return c.opts.DNSProvider
	}
	return txtProvider{ctx: ctx, records: c.opts.DNSRecords, timeout: c.opts.DNSPropagationTimeout, interval: c.opts.DNSPollInterval}
}

// dnsOptions: with resolvers of its own, the record must show on each of
// them and nowhere else is asked. Without, lego's default: the system's
// resolvers, then every authoritative server of the zone. lego keeps the
// resolvers in a package variable, so every call sets them (under dnsMu).
func (c *Client) dnsOptions() []dns01.ChallengeOption {
	if len(c.opts.DNSResolvers) == 0 {
		return []dns01.ChallengeOption{dns01.AddRecursiveNameservers(systemResolvers)}
	}
	return []dns01.ChallengeOption{
		dns01.AddRecursiveNameservers(c.opts.DNSResolvers),
		dns01.RecursiveNSsPropagationRequirement(),
		dns01.DisableAuthoritativeNssPropagationRequirement(),
	}
}

// systemResolvers are the resolvers of /etc/resolv.conf, or lego's own
// defaults where there are none, as lego starts with.
var systemResolvers = func() []string {
	if cfg, err := miekg.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cfg.Servers) > 0 {
		return dns01.ParseNameservers(cfg.Servers)
	}
	return []string{"google-public-dns-a.google.com:53", "google-public-dns-b.google.com:53"}
}()

// user is lego's view of the account.
type user struct {
	email string
	key   crypto.Signer
	reg   *registration.Resource
}

func (u *user) GetEmail() string                        { return u.email }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

// parseLeaf returns the first certificate of a PEM bundle.
func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	certs, err := certcrypto.ParsePEMBundle(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return certs[0], nil
}

func itoa(n int) string { return strconv.Itoa(n) }
