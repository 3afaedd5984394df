package main

import (
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/sealed"

	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/platform"
)

// config is the one typed configuration of the algocloud binary, built from
// flags (and ALGOCLOUD_* environment variables as their defaults).
type config struct {
	DataDir         string
	APIAddr         string
	TemporalAddress string // empty in dev: run the embedded server
	TemporalPort    int
	UIPort          int
	Namespace       string
	DatabaseURL     string
	InferBinary     string
	Host            string
	Domain          string
	PipIndexURL     string
	PipFindLinks    string
	PipNoIndex      bool
	AllowLocalGit   bool
	AllowPrivateGit bool
	AllowPrivateURL bool
	// WebhookAllowLoopback: webhook URLs may reach loopback (api and worker).
	WebhookAllowLoopback bool
	PredictTimeout       time.Duration
	// PredictionRetention and MaxRunningPredictions: async predictions.
	PredictionRetention   time.Duration
	MaxRunningPredictions int
	MaxPredictionInput    int64
	// Sandbox is how author code runs (bwrap or none); SandboxScale
	// multiplies the instance types' limits.
	Sandbox        string
	SandboxScale   float64
	CertRenewEvery time.Duration
	LogLevel       string
	// Cloud: where endpoints run, who certifies and names them.
	Compute, Certs, DNS    string
	AWSRegion, AWSEndpoint string
	EC2AMIs, EC2Subnet     string
	EC2Port                int
	EC2Agents              bool
	EC2HealthURL           string
	BundleBucket           string
	BundlePrefix           string
	BlobBucket, BlobPrefix string
	ArtifactsURL           string
	ACMEDirectory          string
	ACMEEmail, ACMECARoot  string
	ACMEDNSResolvers       string
	EndpointCARoot         string
	DNSZoneID              string
	EncryptionKeyFile      string
	PrevEncryptionKeyFile  string
	// CodecEndpoint is the URL the embedded Temporal UI calls to decode
	// payloads (dev); CodecOrigins are other Temporal UIs' browser origins.
	CodecEndpoint string
	CodecOrigins  string
	// Agents gives local servers a server agent (worker); PlatformURL and
	// PlatformCAFile are where the agents reach the API (worker alone; dev
	// is its own API).
	Agents                      bool
	PlatformURL, PlatformCAFile string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("ALGOCLOUD_" + name); ok {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	v, ok := os.LookupEnv("ALGOCLOUD_" + name)
	if !ok {
		return def
	}
	return v == "1" || strings.EqualFold(v, "true")
}

// envFloat is a number from ALGOCLOUD_<name>, or def; a malformed value
// gives -1, which finish reports.
func envFloat(name string, def float64) float64 {
	v, ok := os.LookupEnv("ALGOCLOUD_" + name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// flags registers the flags of the server command o names, each only
// where it is read: api gets the API's, worker the worker's, dev the union
// of both and the embedded Temporal server's (instead of
// --temporal-address), with local-friendly defaults.
func (c *config) flags(fs *flag.FlagSet, o serveOptions) {
	// Read by every server command: the store, the CA and blobs (data),
	// the Temporal client and its payload codec (namespace, keys), the
	// web pages and the workers' certificates (domain), what the API
	// tells users about the sandbox and endpoint roots (sandbox, certs),
	// and the blob bucket (blob-*, aws-region, aws-endpoint).
	c.dataFlags(fs)
	fs.StringVar(&c.Namespace, "namespace", env("NAMESPACE", "default"), "Temporal namespace")
	fs.StringVar(&c.Domain, "domain", env("DOMAIN", "algocloud.test"), "endpoints are named <api-name>.<domain> in their certificates")
	fs.StringVar(&c.Sandbox, "sandbox", env("SANDBOX", "bwrap"), "how author code (pip installs, Test Code, endpoints' Python workers) runs: bwrap (sandboxed; docs/security.md) or none (UNSANDBOXED: it can read the platform's keys; never where others deploy code)")
	certsUsage := "who certifies endpoints: local (the platform's CA) or acme (needs --compute ec2 and --dns route53; DNS-01)"
	if !o.worker {
		certsUsage = "who certifies endpoints, the same as the worker's --certs: local (clients are told to verify them with the platform's CA) or acme (with the system's roots)"
	}
	fs.StringVar(&c.Certs, "certs", env("CERTS", "local"), certsUsage)
	fs.StringVar(&c.AWSRegion, "aws-region", env("AWS_REGION", "us-east-1"), "default AWS region of instances and the bundle and blob buckets")
	fs.StringVar(&c.AWSEndpoint, "aws-endpoint", env("AWS_ENDPOINT", ""), "override every AWS endpoint (e.g. moto's http://127.0.0.1:5000)")
	fs.StringVar(&c.BlobBucket, "blob-bucket", env("BLOB_BUCKET", ""), "private S3 bucket for uploads and test outputs, shared by api and worker (default: the folder <data>/blobs, which they must then share)")
	fs.StringVar(&c.BlobPrefix, "blob-prefix", env("BLOB_PREFIX", "algocloud-blobs"), "key prefix in --blob-bucket")
	c.keyFlags(fs)
	fs.StringVar(&c.PrevEncryptionKeyFile, "previous-encryption-key-file", env("PREVIOUS_ENCRYPTION_KEY_FILE", ""), "while rotating the key: file holding the previous key, whose payloads still decode; or set ALGOCLOUD_PREVIOUS_ENCRYPTION_KEY")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error")
	// Async predictions: the API checks webhook URLs at create and the
	// worker at every dial; the API's cancel and the worker's finish both
	// start the retention.
	fs.BoolVar(&c.WebhookAllowLoopback, "webhook-allow-loopback", envBool("WEBHOOK_ALLOW_LOOPBACK", false), "let webhook URLs reach loopback addresses (a receiver on this machine, for development); private, link-local and metadata addresses stay refused (api: when a prediction is created; worker: at every dial)")
	fs.DurationVar(&c.PredictionRetention, "prediction-retention", 24*time.Hour, "how long async predictions' inputs and outputs are kept after they end (then GET says expired)")
	if o.dev {
		fs.IntVar(&c.TemporalPort, "temporal-port", 7233, "embedded Temporal frontend port")
		fs.IntVar(&c.UIPort, "ui-port", 8233, "Temporal UI port (0 disables it)")
		fs.StringVar(&c.CodecEndpoint, "codec-endpoint", env("CODEC_ENDPOINT", ""), "codec endpoint URL the embedded Temporal UI decodes payloads with (default: this API's <addr>/codec)")
	} else {
		fs.StringVar(&c.TemporalAddress, "temporal-address", env("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port")
	}
	if o.api {
		fs.StringVar(&c.APIAddr, "addr", env("ADDR", "127.0.0.1:8080"), "API and wizard listen address")
		fs.Int64Var(&c.MaxPredictionInput, "max-prediction-input", 32<<20, "the largest async prediction input in bytes (more: 413 payload_too_large)")
		fs.IntVar(&c.MaxRunningPredictions, "max-running-predictions", 100, "how many async predictions one user may have starting or processing (more: 429 too_many_jobs)")
		fs.StringVar(&c.CodecOrigins, "codec-cors-origins", env("CODEC_CORS_ORIGINS", ""), "comma-separated origins of Temporal UIs (e.g. https://temporal-ui.example.com) allowed to call this API's codec endpoint /codec from the browser (the embedded UI's is always allowed)")
	}
	if o.worker {
		c.workerFlags(fs, o.dev)
	}
}

// workerFlags are the flags only the worker reads: how it runs endpoints
// and author code, and the cloud it runs them on.
func (c *config) workerFlags(fs *flag.FlagSet, dev bool) {
	fs.StringVar(&c.InferBinary, "infer-bin", env("INFER_BIN", ""), "path of the algocloud-infer binary (default: beside this binary, then PATH)")
	fs.StringVar(&c.Host, "host", env("HOST", "127.0.0.1"), "address endpoints listen on and clients dial (local provider)")
	fs.StringVar(&c.PipIndexURL, "pip-index-url", env("PIP_INDEX_URL", ""), "pip index URL for requirement installs")
	fs.StringVar(&c.PipFindLinks, "pip-find-links", env("PIP_FIND_LINKS", ""), "comma-separated pip --find-links folders or URLs")
	fs.BoolVar(&c.PipNoIndex, "pip-no-index", envBool("PIP_NO_INDEX", false), "install only from --pip-find-links")
	fs.BoolVar(&c.AllowLocalGit, "allow-local-git", envBool("ALLOW_LOCAL_GIT", dev), "allow code from local paths and file:// Git URLs")
	fs.BoolVar(&c.AllowPrivateGit, "allow-private-git", envBool("ALLOW_PRIVATE_GIT", dev), "allow Git URLs on loopback and private addresses")
	fs.BoolVar(&c.AllowPrivateURL, "allow-private-urls", envBool("ALLOW_PRIVATE_URLS", false), "let endpoints download image URLs from loopback and private addresses")
	fs.DurationVar(&c.PredictTimeout, "predict-timeout", 60*time.Second, "time limit of one prediction")
	fs.Float64Var(&c.SandboxScale, "sandbox-scale", envFloat("SANDBOX_SCALE", 1), "multiply every instance type's sandbox limits (memory, CPU, tasks) by this; 1 gives each instance type's own (t3.small: 2 GiB, 2 CPUs)")
	renewEvery, err := time.ParseDuration(env("CERT_RENEW_EVERY", "12h"))
	if err != nil {
		renewEvery = -1 // finish reports it
	}
	fs.DurationVar(&c.CertRenewEvery, "cert-renew-every", renewEvery, "how often the worker's Temporal Schedule looks for endpoint certificates due for renewal")
	// On in dev (its agents reach its own API); a worker needs to be told
	// where the API is, so there it is asked for with --platform-url.
	fs.BoolVar(&c.Agents, "agents", envBool("AGENTS", dev), "give each local server a server agent (algocloud-infer agent) that installs, tests and serves its deployment's code, so the worker runs no author code (--compute local, and EC2 instances unless --ec2-agents=false); servers provisioned without one keep the worker's path")
	if !dev {
		fs.StringVar(&c.PlatformURL, "platform-url", env("PLATFORM_URL", ""), "with --agents: the API's base URL the server agents long-poll (https://..., or http:// on loopback)")
		fs.StringVar(&c.PlatformCAFile, "platform-ca-file", env("PLATFORM_CA_FILE", ""), "with --agents: PEM file of the CA the API's TLS certificate chains to (default: the system's roots)")
	}
	c.cloudFlags(fs)
}

// dataFlags are the data folder and the metadata database: all that
// `algocloud token` needs, and what every server command shares.
func (c *config) dataFlags(fs *flag.FlagSet) {
	c.dataDirFlag(fs)
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "metadata database: sqlite:///path or postgres://... (default: SQLite in the data folder)")
}

// dataDirFlag is the data folder alone (codec-token reads its key there).
func (c *config) dataDirFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", env("DATA", ".algocloud"), "data folder (databases, CA, servers, uploads)")
}

// keyFlags name the file of the platform's encryption key: what
// `algocloud codec-token` needs besides --data.
func (c *config) keyFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.EncryptionKeyFile, "encryption-key-file", env("ENCRYPTION_KEY_FILE", ""), "file holding the 32-byte key (hex or base64) that encrypts Temporal payloads and seals keys, bundles and Git credentials, the same for api and worker; or set ALGOCLOUD_ENCRYPTION_KEY (default: <data>/secrets/encryption.key, created for development)")
}

// cloudFlags are the worker's compute, DNS and ACME choices (defaults:
// local, no DNS; --certs, read by the API too, is shared). AWS credentials
// come from the standard chain.
func (c *config) cloudFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Compute, "compute", env("COMPUTE", "local"), "where endpoints run: local (processes here) or ec2 (one instance each)")
	fs.StringVar(&c.DNS, "dns", env("DNS", "none"), "endpoint names: none or route53 (<api-name>.<domain> in the zone of --domain)")
	fs.StringVar(&c.EC2AMIs, "ec2-ami", env("EC2_AMI", ""), "machine image overrides, comma-separated KEY=AMI-or-name-pattern (keys: python, python/gpu, python/<region>, ...)")
	fs.StringVar(&c.EC2Subnet, "ec2-subnet", env("EC2_SUBNET", ""), "subnet of instances (default: the region's default VPC)")
	fs.IntVar(&c.EC2Port, "ec2-port", 443, "endpoint port on instances (the only port their security group opens)")
	fs.BoolVar(&c.EC2Agents, "ec2-agents", envBool("EC2_AGENTS", true), "with --agents and --compute ec2: each instance runs the server agent (its user data installs it with a credential of its own), which installs, tests and serves there, so the agents must reach --platform-url; false: instances serve a bundle and Install and Test Code run on the worker (the old path, kept while some instances still use it)")
	fs.StringVar(&c.EC2HealthURL, "ec2-health-url", env("EC2_HEALTH_URL", ""), "where the worker checks an instance's endpoint, {host} and {port} replaced (default https://{host}:{port}/readyz; tests point it at a local stand-in)")
	fs.StringVar(&c.BundleBucket, "bundle-bucket", env("BUNDLE_BUCKET", ""), "S3 bucket the worker publishes the inference binary and encrypted code bundles to (required with --compute ec2)")
	fs.StringVar(&c.BundlePrefix, "bundle-prefix", env("BUNDLE_PREFIX", "algocloud"), "key prefix in --bundle-bucket")
	fs.StringVar(&c.ArtifactsURL, "artifacts-url", env("ARTIFACTS_URL", ""), "URL instances fetch the prefix from (default: the bucket's S3 URL)")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", env("ACME_DIRECTORY", ""), "ACME directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&c.ACMEEmail, "acme-email", env("ACME_EMAIL", ""), "ACME account contact")
	fs.StringVar(&c.ACMECARoot, "acme-ca-root", env("ACME_CA_ROOT", ""), "PEM file of roots trusted for the ACME directory's HTTPS (default: the system's; pebble's in tests)")
	fs.StringVar(&c.ACMEDNSResolvers, "acme-dns-resolvers", env("ACME_DNS_RESOLVERS", ""), "comma-separated host:port resolvers asked whether a DNS-01 record has propagated")
	fs.StringVar(&c.EndpointCARoot, "endpoint-ca-root", env("ENDPOINT_CA_ROOT", ""), "PEM file of roots trusted for endpoints' ACME certificates in health checks (default: the system's)")
	fs.StringVar(&c.DNSZoneID, "dns-zone-id", env("DNS_ZONE_ID", ""), "Route53 hosted zone ID (default: the zone named --domain)")
}

// cloud turns the cloud flags into the platform's options.
func (c *config) cloud() (platform.CloudOptions, error) {
	o := platform.CloudOptions{
		Compute: c.Compute, Certs: c.Certs, DNS: c.DNS, AWSRegion: c.AWSRegion, AWSEndpoint: c.AWSEndpoint,
		EC2SubnetID: c.EC2Subnet, EC2Port: c.EC2Port, EC2Agents: c.EC2Agents, BundleBucket: c.BundleBucket, BundlePrefix: c.BundlePrefix,
		ArtifactsURL: c.ArtifactsURL, ACMEDirectory: c.ACMEDirectory, ACMEEmail: c.ACMEEmail,
		ACMEDNSResolvers: platform.SplitList(c.ACMEDNSResolvers), DNSZoneID: c.DNSZoneID,
	}
	if tmpl := c.EC2HealthURL; tmpl != "" {
		o.EC2HealthURL = func(s compute.Server) string {
			return strings.NewReplacer("{host}", s.Host, "{port}", strconv.Itoa(s.Port)).Replace(tmpl)
		}
	}
	if c.EC2AMIs != "" {
		o.EC2AMIs = map[string]string{}
		for _, kv := range platform.SplitList(c.EC2AMIs) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return o, fmt.Errorf("--ec2-ami: %q is not KEY=IMAGE", kv)
			}
			o.EC2AMIs[k] = v
		}
	}
	var err error
	if o.ACMECARoots, err = loadPool(c.ACMECARoot, "--acme-ca-root"); err != nil {
		return o, err
	}
	if o.EndpointRoots, err = loadPool(c.EndpointCARoot, "--endpoint-ca-root"); err != nil {
		return o, err
	}
	if o.EncryptionKey, err = readKey("ALGOCLOUD_ENCRYPTION_KEY", c.EncryptionKeyFile, "--encryption-key-file"); err != nil {
		return o, err
	}
	if o.PreviousEncryptionKey, err = readKey("ALGOCLOUD_PREVIOUS_ENCRYPTION_KEY", c.PrevEncryptionKeyFile, "--previous-encryption-key-file"); err != nil {
		return o, err
	}
	return o, nil
}

// readKey reads a 32-byte key from file (when set) or the environment
// variable; nil when neither is set. Errors never hold the value.
func readKey(envName, file, flagName string) ([]byte, error) {
	key := os.Getenv(envName)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		key = string(b)
	}
	if key == "" {
		return nil, nil
	}
	k, err := sealed.ParseEncryptionKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s (or %s): %w", flagName, envName, err)
	}
	return k, nil
}

// loadPool reads a PEM file of roots; "" is nil (the system's roots).
func loadPool(path, flagName string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", flagName, path)
	}
	return pool, nil
}

// finish checks the flags of the server command o names and resolves
// derived defaults after they are parsed.
func (c *config) finish(o serveOptions) error {
	if c.Sandbox != string(sandbox.ModeBwrap) && c.Sandbox != string(sandbox.ModeNone) {
		return fmt.Errorf("--sandbox (ALGOCLOUD_SANDBOX) is %q: want bwrap (sandboxed) or none (unsandboxed)", c.Sandbox)
	}
	if o.worker {
		if c.CertRenewEvery <= 0 {
			return errors.New("--cert-renew-every (ALGOCLOUD_CERT_RENEW_EVERY) must be a positive duration such as 12h")
		}
		if c.SandboxScale <= 0 || c.SandboxScale > 64 {
			return fmt.Errorf("--sandbox-scale (ALGOCLOUD_SANDBOX_SCALE) is %v: want a number above 0 and at most 64", c.SandboxScale)
		}
	}
	return c.finishData()
}

// finishData makes the data folder absolute and present, and defaults the
// database to SQLite in it.
func (c *config) finishData() error {
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "algocloud.db")
	}
	return nil
}

func (c *config) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// inferBinary finds algocloud-infer beside this executable or on PATH.
func (c *config) inferBinary() (string, error) {
	if c.InferBinary != "" {
		return c.InferBinary, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "algocloud-infer")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := execLookPath("algocloud-infer"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("algocloud-infer not found beside this binary or on PATH: build it with `task build` (or go build -o bin/ ./cmd/...) or pass --infer-bin")
}
