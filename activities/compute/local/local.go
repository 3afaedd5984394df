// Package local is the compute provider that runs inference services as child
// processes on this machine: a "server" is a folder under DataDir/servers, a
// service is a supervised process with its own process group, log file and
// resource limits.
//
// State lives on disk (server.json, one record per service holding its pid),
// so a new Provider over the same DataDir, after a platform restart or in
// another worker process, re-attaches to services that still run. Changes to
// one service are serialised across processes by a flock on its lock file.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
)

// ProviderName is the Provider field of the servers and handles this package makes.
const ProviderName = "local"

var _ compute.Provider = (*Provider)(nil)

// Limits are resource limits applied to every service process (see
// applyLimits): the inference server, the platform's own Go code. The
// author's Python workers it starts get the limits of their sandbox
// (internal/sandbox: memory, tasks, CPU from the instance type).
type Limits struct {
	// NoFile is RLIMIT_NOFILE (soft and hard); 0 means 4096.
	NoFile uint64
	// AddressSpace is RLIMIT_AS in bytes; 0 leaves it unlimited. Python with
	// numpy and Go runtimes reserve far more virtual memory than they use, so
	// set it generously (several GiB) or not at all.
	AddressSpace uint64
}

// Options configure a Provider.
type Options struct {
	// DataDir holds the servers: DataDir/servers/<deployment-id>.
	DataDir string
	// Host is the address services listen on and clients dial; default 127.0.0.1.
	Host string
	// Command is the argv prefix that runs a service (normally the
	// algocloud-infer binary); the provider appends "--config", <config file>.
	Command []string
	// Logger receives lifecycle events; default slog.Default().
	Logger *slog.Logger
	// Limits apply to every service process.
	Limits Limits
	// Env is the services' environment. The platform's own environment (which
	// may hold cloud credentials) is not inherited; nil gives a minimal PATH,
	// LANG and HOME (the server folder).
	Env []string
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; default 10s.
	StopGrace time.Duration
	// LogMaxBytes caps a service's log file; past it the file is rotated to
	// <name>.log.1 (one old file is kept). Default 10 MiB.
	LogMaxBytes int64
	// MinBackoff and MaxBackoff bound the delay before a crashed service is
	// restarted; it doubles after each crash that follows a short run.
	// Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// Provider runs services as local processes. Its methods may be called
// concurrently; call Close on platform shutdown.
type Provider struct {
	opts       Options
	serversDir string
	log        *slog.Logger

	spawnMu sync.RWMutex // held for reading around a spawn; Close takes it to close spawnCh
	spawnCh chan spawnRequest

	mu       sync.Mutex
	services map[string]*service // by serverID/name: the ones this Provider supervises
	closed   bool
}

// New checks opts and starts a Provider.
func New(opts Options) (*Provider, error) {
	if opts.DataDir == "" {
		return nil, errors.New("local provider: no data folder")
	}
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return nil, errors.New("local provider: no service command")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local provider: %w", err)
	}
	opts.DataDir = dataDir
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 10 * time.Second
	}
	if opts.LogMaxBytes <= 0 {
		opts.LogMaxBytes = 10 << 20
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	opts.Command = append([]string(nil), opts.Command...)
	p := &Provider{
		opts:       opts,
		serversDir: filepath.Join(dataDir, "servers"),
		log:        opts.Logger.With("provider", ProviderName),
		spawnCh:    make(chan spawnRequest),
		services:   map[string]*service{},
	}
	if err := os.MkdirAll(p.serversDir, 0o700); err != nil {
		return nil, fmt.Errorf("local provider: %w", err)
	}
	go p.spawnLoop()
	return p, nil
}

var (
	idRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// validID reports whether id is a safe folder name: no separators, no "..",
// not hidden.
func validID(id string) bool { return idRe.MatchString(id) && !strings.Contains(id, "..") }

func permanent(format string, args ...any) error {
	return &compute.PermanentError{Err: fmt.Errorf(format, args...)}
}

// serverFile is what server.json holds.
type serverFile struct {
	Server  compute.Server     `json:"server"`
	Spec    compute.ServerSpec `json:"spec"`
	Created time.Time          `json:"created"`
}

func (p *Provider) serverDir(id string) string { return filepath.Join(p.serversDir, id) }

// readServer loads a server; a missing one wraps compute.ErrNotFound.
func (p *Provider) readServer(id string) (compute.Server, error) {
	if !validID(id) {
		return compute.Server{}, fmt.Errorf("server %q: %w", id, compute.ErrNotFound)
	}
	var f serverFile
	b, err := os.ReadFile(filepath.Join(p.serverDir(id), "server.json"))
	if errors.Is(err, os.ErrNotExist) {
		return compute.Server{}, fmt.Errorf("server %s: %w", id, compute.ErrNotFound)
	}
	if err != nil {
		return compute.Server{}, fmt.Errorf("read server %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return compute.Server{}, fmt.Errorf("read server %s: %w", id, err)
	}
	return f.Server, nil
}

// Provision creates the server folder for spec.DeploymentID (with run/ and
// logs/) and reserves a free port for the live service. It is idempotent: the
// same DeploymentID returns the same Server, port included.
func (p *Provider) Provision(ctx context.Context, spec compute.ServerSpec) (compute.Server, error) {
	id := spec.DeploymentID
	if !validID(id) {
		return compute.Server{}, permanent("provision: deployment id %q is not a safe folder name (letters, digits, '.', '_', '-')", id)
	}
	unlock, err := lockFile(filepath.Join(p.serversDir, ".provision.lock"))
	if err != nil {
		return compute.Server{}, fmt.Errorf("provision %s: %w", id, err)
	}
	defer unlock()
	if s, err := p.readServer(id); err == nil {
		return s, nil
	} else if !errors.Is(err, compute.ErrNotFound) {
		return compute.Server{}, err
	}
	dir := p.serverDir(id)
	for _, d := range []string{filepath.Join(dir, "run"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return compute.Server{}, fmt.Errorf("provision %s: %w", id, err)
		}
	}
	port, err := p.reservePort()
	if err != nil {
		return compute.Server{}, fmt.Errorf("provision %s: %w", id, err)
	}
	s := compute.Server{Provider: ProviderName, ID: id, Host: p.opts.Host, Port: port, Workdir: dir}
	if err := writeJSON(filepath.Join(dir, "server.json"), serverFile{Server: s, Spec: spec, Created: time.Now().UTC()}); err != nil {
		return compute.Server{}, fmt.Errorf("provision %s: %w", id, err)
	}
	p.log.Info("server provisioned", "server", id, "port", port)
	return s, nil
}

// reservePort picks a free port that no other server has reserved. The
// caller holds the provision lock.
func (p *Provider) reservePort() (int, error) {
	used := map[int]bool{}
	entries, _ := os.ReadDir(p.serversDir)
	for _, e := range entries {
		if s, err := p.readServer(e.Name()); err == nil {
			used[s.Port] = true
		}
	}
	for range 50 {
		port, err := freePort(p.opts.Host)
		if err != nil {
			return 0, err
		}
		if !used[port] {
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
}

// freePort asks the kernel for a port that is free on host right now.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be bound on host now.
func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Release stops every service of s and removes its folder (code, venv,
// certificates, logs). Releasing a server that is already gone is a no-op.
func (p *Provider) Release(ctx context.Context, s compute.Server) error {
	if err := checkProvider(s.Provider); err != nil {
		return err
	}
	if !validID(s.ID) {
		return permanent("release: server id %q is not valid", s.ID)
	}
	dir := p.serverDir(s.ID)
	names := map[string]bool{}
	if entries, err := os.ReadDir(filepath.Join(dir, "run")); err == nil {
		for _, e := range entries {
			if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
				names[n] = true
			}
		}
	}
	p.mu.Lock()
	for _, svc := range p.services {
		if svc.serverID == s.ID {
			names[svc.name] = true
		}
	}
	p.mu.Unlock()
	for name := range names {
		if err := p.stop(ctx, s.ID, name); err != nil {
			return fmt.Errorf("release %s: %w", s.ID, err)
		}
	}
	// Under the provision lock only rename the folder out of the way (a
	// concurrent Provision must not see it half deleted); the slow delete of
	// code and venv runs after, so releases and provisions do not queue.
	unlock, err := lockFile(filepath.Join(p.serversDir, ".provision.lock"))
	if err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	trash := filepath.Join(p.serversDir, ".released-"+s.ID)
	err = os.Rename(dir, trash)
	unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	p.log.Info("server released", "server", s.ID)
	return nil
}

func checkProvider(name string) error {
	if name != ProviderName {
		return permanent("provider %q cannot act on a %q server or service", ProviderName, name)
	}
	return nil
}

// Close stops supervising and stops every service this Provider runs or
// re-attached to (SIGTERM, then SIGKILL after StopGrace), on platform
// shutdown. Their records stay, so Resume on a later Provider starts them
// again. Further calls on p fail; Close is idempotent.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	svcs := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	p.services = map[string]*service{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range svcs {
		s.halt()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.StopGrace+10*time.Second)
			defer cancel()
			if pr := s.current(); pr != nil {
				_ = p.terminate(ctx, pr)
			}
			<-s.done
			s.log.Close()
		}()
	}
	wg.Wait()
	p.spawnMu.Lock()
	close(p.spawnCh)
	p.spawnMu.Unlock()
	return nil
}

func (p *Provider) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// lockFile takes an exclusive flock on path (created if missing). flock locks
// belong to the open file, so they also order goroutines of one process, and
// the kernel drops them when a holder dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// writeJSON writes v to path atomically (temporary file, then rename), mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
