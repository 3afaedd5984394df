package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/certs/acme"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/internal/sealed"

	"github.com/algocloud/algocloud/activities/dns/route53"
)

// Choices of Options.Compute, Options.Certs and Options.DNS.
const (
	ComputeLocal = "local"
	ComputeEC2   = "ec2"
	CertsLocal   = "local"
	CertsACME    = "acme"
	DNSNone      = "none"
	DNSRoute53   = "route53"
)

// CloudOptions choose where endpoints run, who certifies them and who names
// them. The zero value is today's dev set-up: local processes, the local CA,
// no DNS. Credentials for AWS come from the standard chain (environment,
// shared files, instance role).
type CloudOptions struct {
	// Compute is ComputeLocal (default) or ComputeEC2.
	Compute string
	// Certs is CertsLocal (default) or CertsACME.
	Certs string
	// DNS is DNSNone (default) or DNSRoute53 (the zone of Options.Domain).
	DNS string

	// AWSRegion is the default region of EC2 and S3 (default us-east-1);
	// AWSEndpoint overrides every AWS endpoint (moto in tests).
	AWSRegion, AWSEndpoint string

	// EC2AMIs override some of the machine images (ec2.Options.AMIs keys:
	// "python", "python/gpu", "python/us-east-1", ...); the others stay
	// ec2.DefaultAMIs.
	EC2AMIs map[string]string
	// EC2Port is the endpoint port on instances; default 443.
	EC2Port int
	// EC2Agents, with Options.Agents, gives the instances the server
	// agent: their user data installs it with a credential made at launch,
	// and Install, Test Code and serving run there (the agents long-poll
	// Options.PlatformURL, or this platform's API in one process). The
	// CLI's --ec2-agents sets it, on by default. Off: EC2 keeps the
	// worker's path (a bundle served by fetch.sh's unit; Install and Test
	// Code on the worker).
	EC2Agents bool
	// EC2SubnetID places instances; empty: the region's default VPC.
	EC2SubnetID string
	// EC2HealthURL overrides where the provider checks an instance's
	// endpoint (tests point it at a local stand-in); default
	// https://<instance>:<port>/readyz, verified for <api-name>.<Domain>.
	EC2HealthURL func(compute.Server) string
	// EC2Poll is the interval of the provider's waits; default 5s.
	EC2Poll time.Duration

	// BundleBucket and BundlePrefix are the S3 bucket (required with EC2)
	// and key prefix (default "algocloud") the worker publishes the
	// inference binary and the deployments' encrypted bundles to;
	// ArtifactsURL is where instances fetch them (default the bucket's URL).
	BundleBucket, BundlePrefix, ArtifactsURL string

	// ACMEDirectory is the ACME CA's directory URL (required with
	// CertsACME); ACMEEmail its account contact; ACMECARoots trust the
	// directory's HTTPS (nil: the system's roots).
	ACMEDirectory, ACMEEmail string
	ACMECARoots              *x509.CertPool
	// ACMEDNSResolvers are the resolvers asked whether a DNS-01 record has
	// propagated (host:port); empty: the system's and the zone's servers.
	ACMEDNSResolvers []string
	// EndpointRoots are trusted for endpoints' certificates when the worker
	// checks their health with CertsACME (nil: the system's roots).
	EndpointRoots *x509.CertPool

	// DNSZoneID picks the Route53 zone by ID instead of by Domain; DNSPoll
	// is the interval of the waits for INSYNC (default 5s).
	DNSZoneID string
	DNSPoll   time.Duration

	// EncryptionKey (32 bytes) seals certificate and ACME account keys and
	// fetch_code's Git credentials at rest, derives the bundles' keys and,
	// in every mode, the payload codec's key that encrypts Temporal
	// payloads; when nil it is read from (or created in)
	// <data>/secrets/encryption.key, which is for development (one data
	// folder): in production pass it from a secret store, the same to api
	// and worker.
	EncryptionKey []byte
	// PreviousEncryptionKey (32 bytes, optional) is the key being rotated
	// out: payloads it encrypted still decode; new ones use EncryptionKey.
	PreviousEncryptionKey []byte
}

// validate checks the choices as the worker uses them (each value, and
// how they combine) and fills in defaults.
func (c *CloudOptions) validate() error {
	if err := c.validateValues(); err != nil {
		return err
	}
	switch {
	case c.Compute == ComputeEC2 && c.BundleBucket == "":
		return errors.New("compute ec2 needs a bundle bucket (--bundle-bucket): instances fetch their code from it")
	case c.Certs == CertsACME && c.Compute != ComputeEC2:
		return errors.New("certs acme needs compute ec2: an ACME certificate names the endpoint's public DNS name, which a local endpoint does not have")
	case c.Certs == CertsACME && c.DNS != DNSRoute53:
		return errors.New("certs acme needs dns route53: the DNS-01 challenge is answered in the Route53 zone")
	case c.Certs == CertsACME && c.ACMEDirectory == "":
		return errors.New("certs acme needs an ACME directory URL (--acme-directory)")
	}
	return nil
}

// validateValues fills in the defaults and checks each choice alone: all
// that a platform without a worker checks, because the API reads only
// --certs of them (`algocloud api` takes no --compute, --dns or --acme-*, so
// their combination is the worker's to check).
func (c *CloudOptions) validateValues() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Compute, ComputeLocal)
	def(&c.Certs, CertsLocal)
	def(&c.DNS, DNSNone)
	def(&c.AWSRegion, "us-east-1")
	switch {
	case c.Compute != ComputeLocal && c.Compute != ComputeEC2:
		return fmt.Errorf("compute %q: want %s or %s", c.Compute, ComputeLocal, ComputeEC2)
	case c.Certs != CertsLocal && c.Certs != CertsACME:
		return fmt.Errorf("certs %q: want %s or %s", c.Certs, CertsLocal, CertsACME)
	case c.DNS != DNSNone && c.DNS != DNSRoute53:
		return fmt.Errorf("dns %q: want %s or %s", c.DNS, DNSNone, DNSRoute53)
	}
	return nil
}

// needsKey reports whether keys are sealed or bundles encrypted.
func (c CloudOptions) needsKey() bool { return c.Compute == ComputeEC2 || c.Certs == CertsACME }

// encryptionKey returns the configured key or the development one on disk.
func (p *Platform) encryptionKey() ([]byte, error) {
	o := p.opts
	if o.Cloud.EncryptionKey != nil {
		if len(o.Cloud.EncryptionKey) != sealed.EncryptionKeySize {
			return nil, fmt.Errorf("encryption key has %d bytes, want %d", len(o.Cloud.EncryptionKey), sealed.EncryptionKeySize)
		}
		return o.Cloud.EncryptionKey, nil
	}
	path := filepath.Join(o.DataDir, "secrets", "encryption.key")
	b, err := os.ReadFile(path)
	if err == nil {
		return sealed.ParseEncryptionKey(string(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := sealed.NewEncryptionKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return p.encryptionKey() // another process made it meanwhile
	}
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(f, "%x\n", k)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	p.log.Warn("created a development encryption key on the data disk; pass ALGOCLOUD_ENCRYPTION_KEY in production", "file", path)
	return k, nil
}

// wireCloud sets the activities' provider, issuer, DNS and bundle store
// from the cloud options; the defaults are the local provider and CA.
func (p *Platform) wireCloud(ctx context.Context, acts *activities.Activities) error {
	o := p.opts
	c := o.Cloud
	var key []byte
	if c.needsKey() {
		var err error
		if key, err = p.encryptionKey(); err != nil {
			return fmt.Errorf("encryption key: %w", err)
		}
	}
	var r53 *route53.Route53
	if c.DNS == DNSRoute53 {
		var err error
		r53, err = route53.NewRoute53(ctx, route53.Options{
			Endpoint: c.AWSEndpoint, ZoneID: c.DNSZoneID, Domain: o.Domain, Poll: c.DNSPoll,
			Logger: o.Logger.With("component", "route53"),
		})
		if err != nil {
			return fmt.Errorf("dns route53: %w", err)
		}
		acts.DNS = r53
		p.Route53 = r53
	}
	if c.Certs == CertsACME {
		acme.RouteLegoLogs(o.Logger.With("component", "lego")) // lego logs through a package variable
		client, err := acme.New(acme.Options{
			DirectoryURL: c.ACMEDirectory, Email: c.ACMEEmail, CARoots: c.ACMECARoots,
			Challenge: acme.DNS01, DNSRecords: r53, DNSResolvers: c.ACMEDNSResolvers,
			AccountKeyFile: filepath.Join(o.DataDir, "acme", "account.key"), EncryptionKey: key,
			Logger: o.Logger.With("component", "acme"),
		})
		if err != nil {
			return fmt.Errorf("certs acme: %w", err)
		}
		acts.Issuer = acme.Issuer{Client: client, Directory: c.ACMEDirectory}
	}
	if c.Compute == ComputeLocal {
		var err error
		p.Provider, err = local.New(local.Options{
			DataDir: o.DataDir, Host: o.Host, Command: o.InferCommand, Logger: o.Logger.With("component", "local-compute"),
		})
		if err != nil {
			return err
		}
		acts.Provider = p.Provider
		return nil
	}
	return p.wireEC2(ctx, acts, key)
}

// wireEC2 makes the bundle store (and publishes the inference binary to
// it), the EC2 provider, and the local provider Test Code runs on.
func (p *Platform) wireEC2(ctx context.Context, acts *activities.Activities, key []byte) error {
	o := p.opts
	c := o.Cloud
	store, err := ec2.NewBundleStore(ctx, ec2.BundleStoreOptions{
		Bucket: c.BundleBucket, Prefix: c.BundlePrefix, Region: c.AWSRegion, Endpoint: c.AWSEndpoint,
		EncryptionKey: key, PublicURL: c.ArtifactsURL,
	})
	if err != nil {
		return err
	}
	if err := store.PublishBinary(ctx, o.InferCommand[0]); err != nil {
		return err
	}
	roots := c.EndpointRoots
	if c.Certs == CertsLocal {
		roots = p.CA.Pool()
	}
	port := c.EC2Port
	if port == 0 {
		port = 443
	}
	healthURL := c.EC2HealthURL
	if healthURL == nil {
		healthURL = func(s compute.Server) string {
			return "https://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) + "/readyz"
		}
	}
	var agent *ec2.AgentOptions
	if o.Agents && c.EC2Agents {
		if agent, err = p.ec2AgentOptions(); err != nil {
			return err
		}
	}
	var amis map[string]string // nil: the provider's defaults
	if len(c.EC2AMIs) > 0 {
		amis = maps.Clone(ec2.DefaultAMIs)
		maps.Copy(amis, c.EC2AMIs)
	}
	prov, err := ec2.New(ctx, ec2.Options{
		Region: c.AWSRegion, Endpoint: c.AWSEndpoint, AMIs: amis, SubnetID: c.EC2SubnetID, Port: port,
		ArtifactsURL: store.ArtifactsURL(), BundleEncryptionKey: key, Domain: o.Domain,
		HealthURL: healthURL,
		HealthClient: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		}},
		Poll: c.EC2Poll, StagingDir: filepath.Join(o.DataDir, "ec2"), Logger: o.Logger.With("component", "ec2-compute"),
		Agent: agent,
	})
	if err != nil {
		return err
	}
	p.TestServers, err = local.New(local.Options{
		DataDir: filepath.Join(o.DataDir, "test-servers"), Host: "127.0.0.1", Command: o.InferCommand,
		Logger: o.Logger.With("component", "test-servers"),
	})
	if err != nil {
		return err
	}
	p.EC2, p.Bundles = prov, store
	acts.Provider, acts.Bundles, acts.KeyEncryptionKey, acts.Tests = prov, store, key, p.TestServers
	return nil
}

// ec2AgentOptions are what an instance's user data needs for its agent:
// the hub that mints its credential, the API's URL and its CA.
func (p *Platform) ec2AgentOptions() (*ec2.AgentOptions, error) {
	url, err := p.agentsURL()
	if err != nil {
		return nil, err
	}
	var caPEM []byte
	if f := p.opts.PlatformCAFile; f != "" {
		if caPEM, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("--platform-ca-file: %w", err)
		}
	}
	if p.Agents == nil {
		return nil, errors.New("--ec2-agents: no agent hub")
	}
	return &ec2.AgentOptions{Register: p.Agents.RegisterCredential, Revoke: p.Agents.RevokeCredential, PlatformURL: url, PlatformCAPEM: caPEM}, nil
}
