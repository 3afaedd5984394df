// Package ec2 is the compute provider that runs each deployment on its own EC2
// instance (github.com/aws/aws-sdk-go-v2/service/ec2).
//
// A server is one instance, tagged algocloud:deployment=<id>, in a security
// group algocloud-<id> that opens only the endpoint port. Provision is
// idempotent twice over: it first looks the instance up by that tag, and
// RunInstances carries a ClientToken derived from the deployment ID, so a
// retried or replayed activity (even one whose first attempt died between
// RunInstances and its answer) never starts a second instance. Provision
// blocks until the instance runs and has an address; the ProvisionServer
// activity heartbeats on its own timer meanwhile, so no progress callback is
// needed.
//
// The inference service is started by the instance's user data at boot, so
// Start waits for the instance to run and the endpoint's health to answer,
// and marks the service started (a tag on the instance); Status maps the
// instance's state; Stop of the live service stops the instance (billing
// stops; Start starts it again and the boot fetches the current bundle);
// Release terminates it, waits until it is gone and deletes its security
// group.
//
// Server.ID is the instance ID. compute.Server has no region, so the provider
// remembers where it made each instance and, after a restart, finds an
// instance by trying the configured region first and then the other offered
// regions (spec.Regions).
package ec2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"
)

// ProviderName is the Provider field of the servers and handles this package makes.
const ProviderName = "ec2"

var _ compute.Provider = (*Provider)(nil)

// Options configure a Provider.
type Options struct {
	// Region is the default region: for specs without one, and the first
	// searched for an instance the provider did not make itself.
	Region string
	// Endpoint overrides the EC2 endpoint (tests: moto's http://127.0.0.1:PORT).
	Endpoint string
	// Credentials overrides the standard AWS credential chain (environment,
	// shared files, instance role). Tests pass static ones so that nothing
	// reaches for the instance metadata service.
	Credentials aws.CredentialsProvider
	// AMIs maps an environment to a machine image. Keys are tried from the
	// most specific: "<env>/<compute>/<region>", "<env>/<region>",
	// "<env>/<compute>", "<env>" (env "python" or "onnx", compute "cpu" or
	// "gpu"). A value starting with "ami-" is an image ID (regional: qualify
	// the key with the region); any other value is an image name pattern
	// (wildcards allowed) searched among AMIOwners' available images, newest
	// first. Nil means DefaultAMIs.
	AMIs map[string]string
	// AMIOwners limits the name search; nil means DefaultAMIOwners.
	AMIOwners []string
	// SubnetID and VPCID place instances and their security group; empty
	// means the region's default VPC.
	SubnetID, VPCID string
	// Port is the endpoint port opened in the security group; default 443.
	Port int
	// UserData makes the instance's cloud-init script; default
	// EncryptedUserData with ArtifactsURL and the deployment's keys derived
	// from BundleEncryptionKey, or DefaultUserData without that key.
	UserData func(compute.ServerSpec) (string, error)
	// BundleEncryptionKey (32 bytes) is the platform key the deployments'
	// bundle keys derive from (see DeriveBundleKeys and BundleStore).
	BundleEncryptionKey []byte
	// Domain, when set, names endpoints <api-name>.<Domain> (the instance's
	// algocloud:api-name tag): Start's health check then verifies the
	// endpoint's certificate for that name instead of the URL's host, as a
	// certificate from an ACME CA names no IP address.
	Domain string
	// ArtifactsURL is where the default user data fetches the inference binary
	// and the deployment's bundle (see DefaultUserData).
	ArtifactsURL string
	// HealthClient asks the endpoint's health; default a client with a 5s timeout.
	HealthClient *http.Client
	// HealthURL is the URL Start polls until it answers 200; it gets the
	// server with Port set to the service's port. Default
	// https://<host>:<port>/readyz. Tests point it at a local server: the
	// addresses moto hands out must never be dialled.
	HealthURL func(compute.Server) string
	// Poll is the interval between checks while waiting; default 5s.
	Poll time.Duration
	// StartTimeout bounds Start's wait for the instance and its health when
	// ctx has no earlier deadline; default 15 minutes.
	StartTimeout time.Duration
	// StagingDir, when set, gives each server a folder on the worker's disk,
	// StagingDir/<deployment-id>, as its Workdir (made by Provision, removed
	// by Release): the activities stage code, venv, certificates and configs
	// there, as they do in the local provider's server folder.
	StagingDir string
	// Agent, when set, gives the servers of specs that ask for one
	// (compute.ServerSpec.Agent) the server agent: their user data is
	// AgentUserData (BundleEncryptionKey required), not UserData.
	Agent *AgentOptions
	// Logger receives lifecycle events; default slog.Default().
	Logger *slog.Logger
}

// DefaultAMIs resolve by name: Canonical's Ubuntu 24.04 for CPU servers and
// AWS's Deep Learning Base AMI (NVIDIA driver, CUDA) for GPU servers.
var DefaultAMIs = map[string]string{
	spec.EnvPython:                  "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
	spec.EnvPython + "/" + spec.GPU: "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
	spec.EnvONNX:                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
	spec.EnvONNX + "/" + spec.GPU:   "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
}

// DefaultAMIOwners are the accounts whose images a name pattern may match:
// this account, Amazon, and Canonical.
var DefaultAMIOwners = []string{"self", "amazon", "099720109477"}

// Provider runs each deployment on an EC2 instance. Its methods may be called
// concurrently.
type Provider struct {
	opts  Options
	cfg   aws.Config
	log   *slog.Logger
	locks keyedMutex

	mu      sync.Mutex
	clients map[string]*ec2.Client // by region
	regions map[string]string      // instance ID -> region
}

// New loads the AWS configuration (credentials from the standard chain unless
// opts.Credentials is set) and returns a Provider. It makes no API call.
func New(ctx context.Context, opts Options) (*Provider, error) {
	if opts.Region == "" {
		return nil, errors.New("ec2 provider: no region")
	}
	if opts.Port == 0 {
		opts.Port = 443
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("ec2 provider: port %d out of range", opts.Port)
	}
	if opts.AMIs == nil {
		opts.AMIs = DefaultAMIs
	}
	if opts.AMIOwners == nil {
		opts.AMIOwners = DefaultAMIOwners
	}
	if opts.UserData == nil {
		artifacts, port, master := opts.ArtifactsURL, opts.Port, opts.BundleEncryptionKey
		opts.UserData = func(s compute.ServerSpec) (string, error) {
			if master == nil {
				return DefaultUserData(s, artifacts, port)
			}
			keys, err := DeriveBundleKeys(master, s.DeploymentID)
			if err != nil {
				return "", err
			}
			return EncryptedUserData(s, artifacts, port, keys)
		}
	}
	if opts.HealthClient == nil {
		opts.HealthClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.HealthURL == nil {
		opts.HealthURL = defaultHealthURL
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StagingDir != "" {
		dir, err := filepath.Abs(opts.StagingDir)
		if err != nil {
			return nil, fmt.Errorf("ec2 provider: %w", err)
		}
		opts.StagingDir = dir
	}
	load := []func(*config.LoadOptions) error{
		config.WithRegion(opts.Region),
		// Throttling (RequestLimitExceeded) and 5xx are retried with backoff;
		// a few more attempts than the default ride out a burst.
		config.WithRetryMaxAttempts(5),
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("ec2 provider: load AWS config: %w", err)
	}
	return &Provider{
		opts:    opts,
		cfg:     cfg,
		log:     opts.Logger.With("provider", ProviderName),
		clients: map[string]*ec2.Client{},
		regions: map[string]string{},
	}, nil
}

// client returns the EC2 client for region.
func (p *Provider) client(region string) *ec2.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[region]; ok {
		return c
	}
	c := ec2.NewFromConfig(p.cfg, func(o *ec2.Options) {
		o.Region = region
		if p.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(p.opts.Endpoint)
		}
	})
	p.clients[region] = c
	return c
}

func (p *Provider) remember(id, region string) {
	p.mu.Lock()
	p.regions[id] = region
	p.mu.Unlock()
}

var instanceIDRe = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// searchOrder is the region this provider made or found id in or, for an
// instance it has not seen, the default region and then the other offered
// regions.
func (p *Provider) searchOrder(id string) []string {
	p.mu.Lock()
	known := p.regions[id]
	p.mu.Unlock()
	if known != "" {
		return []string{known}
	}
	order := []string{p.opts.Region}
	others := make([]string, 0, len(spec.Regions))
	for r := range spec.Regions {
		if r != p.opts.Region {
			others = append(others, r)
		}
	}
	sort.Strings(others)
	return append(order, others...)
}

// find describes instance id wherever it is. An ID that is malformed, or
// found in no region, wraps compute.ErrNotFound; a terminated instance is
// returned as it is (callers decide what gone means).
func (p *Provider) find(ctx context.Context, id string) (string, types.Instance, error) {
	if !instanceIDRe.MatchString(id) {
		return "", types.Instance{}, fmt.Errorf("instance %q: %w", id, compute.ErrNotFound)
	}
	for i, region := range p.searchOrder(id) {
		inst, err := p.describe(ctx, region, id)
		if errors.Is(err, compute.ErrNotFound) {
			continue
		}
		if i > 0 && isCode(err, "OptInRequired", "AuthFailure") {
			continue // a region not enabled for the account holds no instance
		}
		if err != nil {
			return "", types.Instance{}, err
		}
		p.remember(id, region)
		return region, inst, nil
	}
	return "", types.Instance{}, fmt.Errorf("instance %s: %w", id, compute.ErrNotFound)
}

// describe returns instance id in region; not found wraps compute.ErrNotFound.
func (p *Provider) describe(ctx context.Context, region, id string) (types.Instance, error) {
	out, err := p.client(region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return types.Instance{}, classify("describe instance "+id, err)
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if aws.ToString(inst.InstanceId) == id {
				return inst, nil
			}
		}
	}
	return types.Instance{}, fmt.Errorf("instance %s: %w", id, compute.ErrNotFound)
}

// state is the instance's state name.
func state(inst types.Instance) types.InstanceStateName {
	if inst.State == nil {
		return ""
	}
	return inst.State.Name
}

// gone reports whether the instance is terminated or on its way there.
func gone(inst types.Instance) bool {
	s := state(inst)
	return s == types.InstanceStateNameTerminated || s == types.InstanceStateNameShuttingDown
}

// host is the address clients dial: the public IP, else the public DNS name,
// else (a private subnet) the private IP.
func host(inst types.Instance) string {
	for _, h := range []*string{inst.PublicIpAddress, inst.PublicDnsName, inst.PrivateIpAddress} {
		if aws.ToString(h) != "" {
			return aws.ToString(h)
		}
	}
	return ""
}

// tag returns the value of tag key on inst.
func tag(tags []types.Tag, key string) (string, bool) {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}

// poll calls check every Poll until it reports done or fails, or ctx ends.
func (p *Provider) poll(ctx context.Context, check func() (bool, error)) error {
	t := time.NewTicker(p.opts.Poll)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// keyedMutex serialises work on one key (a deployment) within this process.
// Across processes, EC2's ClientToken does the same for RunInstances.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
