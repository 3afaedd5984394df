// Package platform assembles algocloud's pieces (Temporal, store, CA, compute
// provider, certificate issuer, DNS, worker, API; see CloudOptions) for `algocloud dev`, `algocloud api`, `algocloud
// worker` and the integration tests, so all of them run the same wiring.
package platform

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/api"
	"github.com/algocloud/algocloud/predictions/batch"
	// Registers the endpoints' OpenAPI generator with templates.Clients, so
	// the API's openapi client is the bytes an endpoint serves at
	// /openapi.json. Here, not in api: api must not link the inference
	// server (ONNX Runtime is cgo; docs/architecture.md, Layering).
	_ "github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/blobs/s3store"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/payloadcodec"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/templates"
	"github.com/algocloud/algocloud/web"
	"github.com/algocloud/algocloud/worker"
	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/dns/route53"
)

// Options configures a platform. Zero values are dev defaults.
type Options struct {
	DataDir string
	// Embedded runs an in-process Temporal server (dev); otherwise TemporalAddress is dialled.
	Embedded        bool
	TemporalAddress string
	TemporalPort    int // embedded frontend port; 0 picks a free one
	UIPort          int // embedded UI port; 0 disables the UI
	Namespace       string
	DatabaseURL     string
	// RunAPI and RunWorker choose the pieces (dev runs both).
	RunAPI    bool
	RunWorker bool
	APIAddr   string // "127.0.0.1:0" picks a free port
	// Worker settings.
	InferCommand     []string
	Host             string
	Domain           string
	Pip              python.InstallOptions
	AllowLocalGit    bool
	AllowPrivateGit  bool
	AllowPrivateURLs bool
	// WebhookAllowLoopback lets webhook URLs reach loopback addresses (dev
	// and tests: a receiver on this machine); private, link-local and
	// metadata addresses stay refused. The API checks it when a prediction
	// or batch is created, the worker on every address it dials.
	WebhookAllowLoopback bool
	PredictTimeout       time.Duration
	// Sandbox is how author code runs: sandboxed (the zero value) unless
	// the operator chose --sandbox=none. Start refuses a worker on a
	// machine that cannot sandbox unless the mode is none.
	Sandbox activities.SandboxSettings
	// CertRenewEvery is the interval of the certificate renewal schedule
	// (worker.EnsureRenewalSchedule); 0 means worker.DefaultRenewEvery.
	CertRenewEvery time.Duration
	// CertValidity is the lifetime of endpoints' certificates from the local
	// CA; 0 means 90 days. Tests make it short to exercise renewal.
	CertValidity time.Duration
	// BlobBucket, when set, keeps uploads and Test Code's outputs in this
	// private S3 bucket under BlobPrefix (default "algocloud-blobs"), with
	// Cloud's AWSRegion and AWSEndpoint, so the API and the worker need not
	// share a disk; empty keeps them in <DataDir>/blobs.
	BlobBucket, BlobPrefix string
	// CodecEndpoint is the codec endpoint URL the embedded Temporal UI
	// calls to decode payloads (--codec-endpoint); empty: this platform's
	// own, <API URL>/codec. CodecOrigins are further browser origins (other
	// Temporal UIs) allowed to call this platform's codec endpoint; the
	// embedded UI's is always allowed.
	CodecEndpoint string
	CodecOrigins  []string
	// Cloud chooses the compute provider, certificate issuer and DNS; the
	// zero value is local processes, the local CA and no DNS.
	Cloud  CloudOptions
	Logger *slog.Logger
	// MaxActiveBatches is how many batches a user may have queued or
	// running; 0 is batch.DefaultMaxActive.
	MaxActiveBatches int
	// MaxBatchItems bounds a batch's items (archive members, URLs, objects
	// of an S3 prefix); 0 is batch.DefaultLimits'.
	MaxBatchItems int
	// BatchAgentSilence is how long a batch chunk's server agent may stay
	// silent before the worker abandons the chunk's command and runs what
	// is left itself; 0 is batch.DefaultAgentSilence. Tests shorten it.
	BatchAgentSilence time.Duration
	// PredictionRetention keeps async predictions' inputs and outputs this
	// long after they end; 0 is predictions.DefaultRetention.
	PredictionRetention time.Duration
	// MaxRunningPredictions caps a user's running async predictions; 0 is
	// predictions.DefaultMaxRunning.
	MaxRunningPredictions int
	// MaxPredictionInput bounds one async prediction's input; 0 is
	// predictions.DefaultMaxInputBytes.
	MaxPredictionInput int64
	// PredictionSweepEvery is how often the worker deletes expired
	// predictions' blobs; 0 means a minute.
	PredictionSweepEvery time.Duration
	// Agents gives every local server a server agent (algocloud-infer
	// agent, supervised by the local provider) with a credential minted by
	// the hub: the deployments provisioned from then on install, test and
	// serve through it, and the worker runs no author code for them (EC2
	// instances too with Cloud.EC2Agents: their user data installs it).
	// PlatformURL is the API the agents long-poll (default: this
	// platform's own, when it runs the API: dev); PlatformCAFile the PEM
	// CA its certificate chains to (empty: a plain-http loopback API or
	// the system's roots).
	Agents                      bool
	PlatformURL, PlatformCAFile string
}

// Platform is a running set of pieces.
type Platform struct {
	opts     Options
	Temporal *temporaldev.Server
	Client   client.Client
	Store    *store.Store
	CA       *certs.CA
	// Provider runs endpoints with Cloud.Compute local.
	Provider *local.Provider
	// EC2, Bundles and TestServers (Test Code's local servers) are set
	// with Cloud.Compute ec2; Route53 with Cloud.DNS route53.
	EC2         *ec2.Provider
	Bundles     *ec2.BundleStore
	TestServers *local.Provider
	Route53     *route53.Route53
	worker      sdkworker.Worker
	http        *http.Server
	// APIURL is the API's base URL when RunAPI.
	APIURL      string
	apiListener net.Listener
	log         *slog.Logger

	// Codec encrypts every payload the platform's Temporal clients write
	// (key from Cloud.EncryptionKey or the development key file);
	// DataConverter and FailureConverter apply it, for clients and
	// replayers that read this platform's histories.
	Codec            *payloadcodec.Codec
	DataConverter    converter.DataConverter
	FailureConverter converter.FailureConverter
	codecToken       string
	// credKey seals fetch_code's Git credentials (API) and opens them
	// (worker): CloudOptions.EncryptionKey or the development key.
	credKey []byte

	// Blobs holds uploads and test outputs (BlobBucket, or <DataDir>/blobs).
	Blobs blobs.Store

	// Agents is the server agents' command channel: the API serves it under
	// /api/agent/v1 and the worker runs its RunOnServer activity. With API
	// and worker in one process (dev) a recorded command wakes the agent's
	// poll at once; apart, the API finds it in the store within a second.
	Agents *agenthub.Hub

	// batchActs are the batch activities, made once (batchActivities): the
	// worker runs them and the API issues first chunks with them, so both
	// know the agents a chunk was taken back from.
	batchActsOnce sync.Once
	batchActs     *batch.Activities
	// stopSweep ends the prediction retention sweep (predictions.go).
	stopSweep context.CancelFunc
}

// Start brings the configured pieces up; Stop takes them down.
func Start(ctx context.Context, o Options) (_ *Platform, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Domain == "" {
		o.Domain = "algocloud.test"
	}
	if o.PredictTimeout == 0 {
		o.PredictTimeout = 60 * time.Second
	}
	if o.DatabaseURL == "" {
		o.DatabaseURL = "sqlite://" + filepath.Join(o.DataDir, "algocloud.db")
	}
	validate := o.Cloud.validateValues
	if o.RunWorker {
		validate = o.Cloud.validate
	}
	if err := validate(); err != nil {
		return nil, err
	}
	if o.RunWorker {
		if err := checkSandbox(o); err != nil {
			return nil, err
		}
	}
	p := &Platform{opts: o, log: o.Logger}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	if err := p.setupCodec(); err != nil {
		return nil, err
	}
	if o.RunAPI {
		// Listen before the embedded UI starts, so it is told the codec
		// endpoint's real address when the port is picked here.
		if err := p.listenAPI(); err != nil {
			return nil, err
		}
	}
	hostPort := o.TemporalAddress
	if o.Embedded {
		p.Temporal, err = temporaldev.Start(temporaldev.Options{
			FrontendPort: o.TemporalPort, UIPort: o.UIPort, Namespace: o.Namespace,
			DatabaseFile: filepath.Join(o.DataDir, "temporal.db"), Logger: o.Logger,
			CodecEndpoint: codecEndpointFor(o, p.APIURL), SearchAttributes: workflows.SearchAttributeTypes(),
		})
		if err != nil {
			return nil, err
		}
		hostPort = p.Temporal.HostPort()
	}
	if p.Store, err = store.Open(ctx, o.DatabaseURL); err != nil {
		return nil, err
	}
	if p.CA, err = certs.LoadOrCreateCA(filepath.Join(o.DataDir, "ca")); err != nil {
		return nil, err
	}
	if p.Blobs, err = openBlobs(ctx, o); err != nil {
		return nil, err
	}
	// Every mode needs a key now: Git credentials are sealed at rest by the
	// API and opened by the worker, in dev as in production.
	if o.RunAPI || o.RunWorker {
		if p.credKey, err = p.encryptionKey(); err != nil {
			return nil, fmt.Errorf("encryption key: %w", err)
		}
	}
	p.Client, err = client.DialContext(ctx, client.Options{
		HostPort: hostPort, Namespace: o.Namespace,
		Logger:        sdklog.NewStructuredLogger(o.Logger.With("component", "temporal-sdk")),
		DataConverter: p.DataConverter, FailureConverter: p.FailureConverter,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", hostPort, err)
	}
	if !o.Embedded && (o.RunWorker || o.RunAPI) {
		// The embedded server registered them; a cluster's operator must.
		if err := p.checkSearchAttributes(ctx); err != nil {
			return nil, err
		}
	}
	if o.RunAPI || o.RunWorker {
		p.Agents, err = agenthub.New(agenthub.Config{Store: p.Store, Temporal: p.Client, Key: p.credKey, Blobs: p.Blobs,
			Logger: o.Logger.With("component", "agenthub")})
		if err != nil {
			return nil, err
		}
	}
	if o.RunWorker {
		if err := p.startWorker(ctx); err != nil {
			return nil, err
		}
	}
	if o.RunAPI {
		if err := p.startAPI(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Platform) startWorker(ctx context.Context) error {
	o := p.opts
	if len(o.InferCommand) == 0 {
		return errors.New("no inference server command (algocloud-infer)")
	}
	acts := &activities.Activities{
		CA: p.CA, Store: p.Store,
		UploadDir: p.UploadDir(), Blobs: p.Blobs, Python: "/usr/bin/python3", Pip: o.Pip,
		AllowLocalGit: o.AllowLocalGit, AllowPrivateGit: o.AllowPrivateGit, AllowPrivateURLs: o.AllowPrivateURLs,
		Domain: o.Domain, PredictTimeout: o.PredictTimeout, Logger: o.Logger.With("component", "activities"),
		CredentialsKey: p.credKey, Sandbox: o.Sandbox,
	}
	if err := p.wireCloud(ctx, acts); err != nil {
		return err
	}
	if err := p.wireAgents(acts); err != nil {
		return err
	}
	if acts.Agents != nil && p.Provider != nil {
		// The servers' agents come back with the platform (a step may be
		// waiting on one's answer, and only the next step's plan would
		// start it otherwise); each adopts the revisions it left serving.
		if hs, err := p.Provider.Resume(ctx); err != nil {
			p.log.Warn("resume the local servers' services", "error", err)
		} else if len(hs) > 0 {
			p.log.Info("resumed the local servers' services", "count", len(hs))
		}
	}
	if acts.Issuer == nil && o.CertValidity > 0 {
		acts.Issuer = certs.LocalIssuer{CA: p.CA, ValidFor: o.CertValidity}
	}
	acts.Workflows = p.Client
	p.worker = worker.New(p.Client, acts)
	worker.RegisterBatch(p.worker, p.batchActivities())
	worker.RegisterAgentHub(p.worker, p.Agents)
	worker.RegisterPredictions(p.worker, p.predictionActivities())
	worker.RegisterWebhooks(p.worker, &webhook.Activities{
		Store: p.Store, Key: p.credKey, Dialer: &netpolicy.Dialer{Policy: o.webhookPolicy(), Timeout: webhook.AttemptTimeout},
		Logger: o.Logger.With("component", "webhooks"),
	})
	if err := p.worker.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if err := worker.Reconcile(ctx, p.Client, p.Store, o.Logger); err != nil {
		return err
	}
	p.startPredictionSweep()
	every := o.CertRenewEvery
	if every == 0 {
		every = worker.DefaultRenewEvery
	}
	return worker.EnsureRenewalSchedule(ctx, p.Client, every, o.Logger)
}

// wireAgents sets the activities up to give local servers their agent
// (Options.Agents).
func (p *Platform) wireAgents(acts *activities.Activities) error {
	o := p.opts
	remote := o.Cloud.Compute == ComputeEC2 && o.Cloud.EC2Agents
	if !o.Agents || (p.Provider == nil && !remote) {
		return nil
	}
	url, err := p.agentsURL()
	if err != nil {
		return err
	}
	acts.Agents = &activities.AgentSettings{
		Hub: p.Agents, Command: o.InferCommand, PlatformURL: url, CAFile: o.PlatformCAFile,
		Remote: remote,
	}
	return nil
}

// agentsURL is the API's URL the server agents long-poll: PlatformURL, or
// this platform's own API when it runs one (dev).
func (p *Platform) agentsURL() (string, error) {
	url := p.opts.PlatformURL
	if url == "" && p.opts.RunAPI {
		url = p.APIURL
	}
	if url == "" {
		return "", errors.New("--agents needs --platform-url: the API's URL the server agents long-poll")
	}
	return url, nil
}

// stopAgents has every local server's agent stop its revisions, on a
// graceful stop: like the endpoints the provider runs itself, they stop
// with the platform. (Killed, the platform leaves them serving: they are
// not its children, and the agent started again adopts them.)
func (p *Platform) stopAgents() {
	if p.opts.Cloud.Compute == ComputeEC2 || len(p.opts.InferCommand) == 0 {
		return
	}
	socks, _ := filepath.Glob(filepath.Join(p.opts.DataDir, "servers", "*", "agent", "agent.sock"))
	var wg sync.WaitGroup
	for _, sock := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append(append([]string(nil), p.opts.InferCommand[1:]...), "agent", "stop", "--dir", filepath.Dir(sock))
			if out, err := exec.CommandContext(ctx, p.opts.InferCommand[0], args...).CombinedOutput(); err != nil {
				p.log.Warn("stop a server agent's revisions", "agent", filepath.Dir(sock), "error", err, "output", strings.TrimSpace(string(out)))
			}
		}()
	}
	wg.Wait()
}

// apiConfig is the API's configuration for these options.
func (p *Platform) apiConfig() api.Config {
	o := p.opts
	return api.Config{
		Store: p.Store, Workflows: api.NewTemporalWorkflows(p.Client),
		Blobs: p.Blobs, CredentialsKey: p.credKey, CARootPEM: p.CA.RootPEM(), Skeleton: templates.Skeleton, Web: web.Handler(web.WithDomain(o.Domain)),
		Logger: o.Logger.With("component", "api"),

		// With ACME the clients use the system's roots (the API parses the
		// worker's --certs flag too); /api/ca.pem still serves the local CA.
		PublicEndpointCerts: o.Cloud.Certs == CertsACME,
		Unsandboxed:         o.Sandbox.Unconfined(),
		Batches:             p.batchService(),
		Agents:              p.Agents,
		Webhooks:            p.Store,
		WebhookPolicy:       o.webhookPolicy(),
		Predictions:         p.predictionService(),
		PredictionURLPolicy: p.urlPolicy(),
		MaxPredictionInput:  o.MaxPredictionInput,
	}
}

// webhookPolicy is the webhook URL policy: public addresses only, and
// loopback with WebhookAllowLoopback.
func (o Options) webhookPolicy() netpolicy.Policy {
	if o.WebhookAllowLoopback {
		return netpolicy.Policy{Allow: netpolicy.Loopback}
	}
	return netpolicy.Policy{}
}

// checkSandbox refuses to run author code on a machine that cannot sandbox
// it, unless the operator said --sandbox=none; then it says so loudly.
func checkSandbox(o Options) error {
	if o.Sandbox.Unconfined() {
		o.Logger.Warn("SANDBOX OFF: " + activities.UnconfinedWarning + "; never run it so where other people deploy code")
		return nil
	}
	if err := sandbox.Available(); err != nil {
		return fmt.Errorf("author code runs only sandboxed, and this machine cannot sandbox it: %w; "+
			"install bubblewrap and slirp4netns (scripts/setup.sh), or start with --sandbox=none to run author code unconfined (never where others deploy code)", err)
	}
	return nil
}

// listenAPI opens the API's socket and sets APIURL; startAPI serves it.
func (p *Platform) listenAPI() error {
	addr := p.opts.APIAddr
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	p.apiListener = l
	p.APIURL = "http://" + l.Addr().String()
	return nil
}

func (p *Platform) startAPI() error {
	h := p.codecHandler(api.New(p.apiConfig()))
	l := p.apiListener
	p.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := p.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("api server", "error", err)
		}
	}()
	return nil
}

// UploadDir is where older APIs staged uploads on a disk shared with the
// worker; the worker still reads paths under it that old histories carry.
func (p *Platform) UploadDir() string { return filepath.Join(p.opts.DataDir, "uploads") }

// BlobDir is the blob store's folder when no BlobBucket is set.
func (p *Platform) BlobDir() string { return filepath.Join(p.opts.DataDir, "blobs") }

// openBlobs opens the blob store the options name.
func openBlobs(ctx context.Context, o Options) (blobs.Store, error) {
	if o.BlobBucket == "" {
		return blobs.NewDir(filepath.Join(o.DataDir, "blobs"))
	}
	return s3store.NewS3(ctx, s3store.S3Options{
		Bucket: o.BlobBucket, Prefix: o.BlobPrefix, Region: o.Cloud.AWSRegion, Endpoint: o.Cloud.AWSEndpoint,
	})
}

// EnsureDevUser creates the user "dev" with a token on first start and returns
// the token (empty when the user already existed).
func (p *Platform) EnsureDevUser(ctx context.Context) (string, error) {
	u, err := p.Store.CreateUser(ctx, "dev")
	if errors.Is(err, store.ErrConflict) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tok, _, err := p.Store.CreateToken(ctx, u.ID, "dev")
	return tok, err
}

// Stop shuts everything down: API first, then the worker, the endpoints
// (children of this process), the client, the store and Temporal.
func (p *Platform) Stop() {
	if p.Agents != nil {
		p.Agents.Close() // the agents' long polls would hold the API's shutdown for up to 25 s
	}
	if p.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = p.http.Shutdown(ctx)
		cancel()
	} else if p.apiListener != nil {
		_ = p.apiListener.Close() // Start failed between listening and serving
	}
	if p.stopSweep != nil {
		p.stopSweep()
	}
	if p.worker != nil {
		p.worker.Stop()
	}
	if p.Provider != nil {
		p.stopAgents()
		p.Provider.Close()
	}
	if p.TestServers != nil {
		p.TestServers.Close()
	}
	if p.Client != nil {
		p.Client.Close()
	}
	if p.Store != nil {
		p.Store.Close()
	}
	if p.Temporal != nil {
		p.Temporal.Stop()
	}
}

// SplitList splits a comma-separated flag value.
func SplitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// CreateToken creates user (when new) in the database at dsn and returns a new
// API token for it, shown once.
func CreateToken(ctx context.Context, dsn, user string) (string, error) {
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, user)
	if errors.Is(err, store.ErrConflict) {
		u, err = st.UserByName(ctx, user)
	}
	if err != nil {
		return "", err
	}
	tok, _, err := st.CreateToken(ctx, u.ID, "cli")
	return tok, err
}
