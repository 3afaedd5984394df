package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
)

// record is a service's pid file, run/<name>.json: what a later Provider
// needs to re-attach, restart or stop it.
type record struct {
	Spec      compute.ServiceSpec `json:"spec"` // Port resolved
	Address   string              `json:"address"`
	PID       int                 `json:"pid"`
	Restarts  int                 `json:"restarts"`
	StartedAt time.Time           `json:"started_at"`
}

func (r *record) handle() compute.Handle {
	return compute.Handle{Provider: ProviderName, ServerID: r.Spec.Server.ID, Name: r.Spec.Name, Address: r.Address, PID: r.PID}
}

// service is a service this Provider supervises.
type service struct {
	serverID, name string
	spec           compute.ServiceSpec
	address        string
	log            *logWriter

	mu       sync.Mutex
	cur      *proc
	restarts int

	halted   chan struct{} // closed by halt: supervision ends, no more restarts
	haltOnce sync.Once
	done     chan struct{} // closed when the supervisor returns
}

func (s *service) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *service) halt() { s.haltOnce.Do(func() { close(s.halted) }) }

func (s *service) isHalted() bool {
	select {
	case <-s.halted:
		return true
	default:
		return false
	}
}

func key(serverID, name string) string { return serverID + "/" + name }

func (p *Provider) recordPath(serverID, name string) string {
	return filepath.Join(p.serverDir(serverID), "run", name+".json")
}

// lockService serialises changes to one service across goroutines and processes.
func (p *Provider) lockService(serverID, name string) (func(), error) {
	unlock, err := lockFile(filepath.Join(p.serverDir(serverID), "run", name+".lock"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("server %s: %w", serverID, compute.ErrNotFound)
	}
	return unlock, err
}

// readRecord returns the service's record, or nil when there is none.
func (p *Provider) readRecord(serverID, name string) (*record, error) {
	b, err := os.ReadFile(p.recordPath(serverID, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read service record: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read service record %s: %w", p.recordPath(serverID, name), err)
	}
	return &r, nil
}

func (p *Provider) newService(spec compute.ServiceSpec, address string) *service {
	return &service{
		serverID: spec.Server.ID, name: spec.Name, spec: spec, address: address,
		log:    &logWriter{path: filepath.Join(p.serverDir(spec.Server.ID), "logs", spec.Name+".log"), max: p.opts.LogMaxBytes},
		halted: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start runs the service as a child process (own process group, output to
// logs/<name>.log, resource limits, Pdeathsig so it dies with the platform)
// and returns at once; poll Status or the service itself for readiness.
//
// When the service's record names a live process running spec.ConfigFile,
// Start re-attaches to it and returns its Handle instead (also across
// Provider instances). Port 0 reuses the service's previous port when free,
// else picks a free one. Start writes the chosen address into the config
// file's "listen" field, so the service listens where the Handle says. With
// spec.Restart the process is restarted when it exits, with capped
// exponential backoff.
func (p *Provider) Start(ctx context.Context, spec compute.ServiceSpec) (compute.Handle, error) {
	if err := checkProvider(spec.Server.Provider); err != nil {
		return compute.Handle{}, err
	}
	if !nameRe.MatchString(spec.Name) {
		return compute.Handle{}, permanent("start: service name %q must be lowercase letters, digits, '-' or '_'", spec.Name)
	}
	if !filepath.IsAbs(spec.ConfigFile) {
		return compute.Handle{}, permanent("start %s: config file %q must be an absolute path", spec.Name, spec.ConfigFile)
	}
	srv, err := p.readServer(spec.Server.ID)
	if err != nil {
		return compute.Handle{}, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	if p.isClosed() {
		return compute.Handle{}, errClosed
	}
	spec.Server = srv // the folder's own record, not what the caller holds
	unlock, err := p.lockService(srv.ID, spec.Name)
	if err != nil {
		return compute.Handle{}, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer unlock()

	rec, err := p.readRecord(srv.ID, spec.Name)
	if err != nil {
		return compute.Handle{}, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	if rec != nil && isOurs(rec.PID, rec.Spec.ConfigFile) {
		if rec.Spec.ConfigFile != spec.ConfigFile {
			return compute.Handle{}, fmt.Errorf("start %s on %s: already running with config %s; stop it first", spec.Name, srv.ID, rec.Spec.ConfigFile)
		}
		if !slices.Equal(rec.Spec.Args, spec.Args) {
			return compute.Handle{}, fmt.Errorf("start %s on %s: %w", spec.Name, srv.ID, ErrOtherArgs)
		}
		p.adopt(rec)
		return rec.handle(), nil
	}

	port := spec.Port
	if port == 0 && rec != nil && rec.Spec.Port != 0 && portFree(srv.Host, rec.Spec.Port) {
		port = rec.Spec.Port
	}
	if port == 0 {
		if port, err = freePort(srv.Host); err != nil {
			return compute.Handle{}, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	spec.Port = port
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(port))
	if len(spec.Args) == 0 {
		if err := setListen(spec.ConfigFile, addr); err != nil {
			return compute.Handle{}, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	} else if !slices.Contains(spec.Args, spec.ConfigFile) {
		return compute.Handle{}, permanent("start %s: its arguments must hold its config file %s", spec.Name, spec.ConfigFile)
	}

	p.forget(key(srv.ID, spec.Name)) // a supervisor of the dead process, if any
	s := p.newService(spec, addr)
	pr, err := p.spawn(s)
	if err != nil {
		return compute.Handle{}, fmt.Errorf("start %s on %s: %w", spec.Name, srv.ID, err)
	}
	if p.isClosed() { // Close ran meanwhile and did not see this service
		_ = p.terminate(context.Background(), pr)
		return compute.Handle{}, errClosed
	}
	rec = &record{Spec: spec, Address: addr, PID: pr.pid, StartedAt: time.Now().UTC()}
	if err := writeJSON(p.recordPath(srv.ID, spec.Name), rec); err != nil {
		_ = p.terminate(context.Background(), pr)
		return compute.Handle{}, fmt.Errorf("start %s: write pid file: %w", spec.Name, err)
	}
	s.cur = pr
	p.supervise(s)
	p.log.Info("service started", "server", srv.ID, "service", spec.Name, "pid", pr.pid, "address", addr)
	return rec.handle(), nil
}

// ErrOtherArgs is Start's error for a service that runs with other
// arguments (ServiceSpec.Args) than asked: the caller stops it first when
// the new ones must win (an agent told of a platform that moved).
var ErrOtherArgs = errors.New("already running with other arguments; stop it first")

// setListen sets the "listen" field of the JSON config at path, keeping the
// rest as it is.
func setListen(path, addr string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config %s is not a JSON object: %w", path, err)
	}
	want, _ := json.Marshal(addr)
	if string(cfg["listen"]) == string(want) {
		return nil
	}
	cfg["listen"] = want
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	perm := os.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
	}
	if err := writeFileAtomic(path, out, perm); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

func checkHandle(h compute.Handle) error {
	if err := checkProvider(h.Provider); err != nil {
		return err
	}
	if !validID(h.ServerID) || !nameRe.MatchString(h.Name) {
		return fmt.Errorf("service %s/%s: %w", h.ServerID, h.Name, compute.ErrNotFound)
	}
	return nil
}

// Status reports whether the service runs and how often it was restarted. A
// service without a record (never started, or stopped) or on a server that
// does not exist is compute.ErrNotFound.
func (p *Provider) Status(ctx context.Context, h compute.Handle) (compute.Status, error) {
	if err := checkHandle(h); err != nil {
		return compute.Status{}, err
	}
	if _, err := p.readServer(h.ServerID); err != nil {
		return compute.Status{}, err
	}
	p.mu.Lock()
	s := p.services[key(h.ServerID, h.Name)]
	p.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		pr, restarts := s.cur, s.restarts
		s.mu.Unlock()
		if pr.alive() {
			return compute.Status{State: compute.Running, Restarts: restarts, Detail: "pid " + strconv.Itoa(pr.pid)}, nil
		}
		detail := pr.exitStatus()
		if s.spec.Restart && !s.isHalted() {
			detail += "; restarting"
		}
		return compute.Status{State: compute.Exited, Restarts: restarts, Detail: strings.TrimPrefix(detail, "; ")}, nil
	}
	rec, err := p.readRecord(h.ServerID, h.Name)
	if err != nil {
		return compute.Status{}, err
	}
	if rec == nil {
		return compute.Status{}, fmt.Errorf("service %s on %s: %w", h.Name, h.ServerID, compute.ErrNotFound)
	}
	if isOurs(rec.PID, rec.Spec.ConfigFile) {
		return compute.Status{State: compute.Running, Restarts: rec.Restarts, Detail: "pid " + strconv.Itoa(rec.PID) + " (not supervised by this process)"}, nil
	}
	return compute.Status{State: compute.Exited, Restarts: rec.Restarts, Detail: "pid " + strconv.Itoa(rec.PID) + " is gone"}, nil
}

// Stop ends supervision, removes the service's record and stops its process
// group: SIGTERM, then SIGKILL after StopGrace (at once if ctx ends first).
// Stopping a service that is not running, or on a server that is gone, is a
// no-op.
func (p *Provider) Stop(ctx context.Context, h compute.Handle) error {
	if err := checkHandle(h); err != nil {
		if errors.Is(err, compute.ErrNotFound) {
			return nil
		}
		return err
	}
	return p.stop(ctx, h.ServerID, h.Name)
}

func (p *Provider) stop(ctx context.Context, serverID, name string) error {
	s := p.forget(key(serverID, name))
	unlock, err := p.lockService(serverID, name)
	if errors.Is(err, compute.ErrNotFound) {
		if s != nil { // the folder went away under a running service
			_ = p.terminate(ctx, s.current())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer unlock()
	rec, err := p.readRecord(serverID, name)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if err := os.Remove(p.recordPath(serverID, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop %s: remove pid file: %w", name, err)
	}
	var procs []*proc
	if s != nil {
		procs = append(procs, s.current())
	}
	if rec != nil && (s == nil || s.current().pid != rec.PID) && isOurs(rec.PID, rec.Spec.ConfigFile) {
		procs = append(procs, watch(rec.PID, rec.Spec.ConfigFile))
	}
	for _, pr := range procs {
		if err := p.terminate(ctx, pr); err != nil {
			return fmt.Errorf("stop %s on %s: %w", name, serverID, err)
		}
	}
	if s != nil {
		s.log.Close()
	}
	if len(procs) > 0 {
		p.log.Info("service stopped", "server", serverID, "service", name)
	}
	return nil
}

// Resume re-attaches to every service with a record and starts again those
// with Restart whose process is gone (after Close or a machine reboot). The
// platform calls it once at startup; it returns the handles of the services
// now running.
func (p *Provider) Resume(ctx context.Context) ([]compute.Handle, error) {
	servers, err := os.ReadDir(p.serversDir)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	var handles []compute.Handle
	var errs []error
	for _, d := range servers {
		if !d.IsDir() || !validID(d.Name()) {
			continue
		}
		runs, _ := os.ReadDir(filepath.Join(p.serversDir, d.Name(), "run"))
		for _, r := range runs {
			name, ok := strings.CutSuffix(r.Name(), ".json")
			if !ok || !nameRe.MatchString(name) {
				continue
			}
			rec, err := p.readRecord(d.Name(), name)
			if err != nil || rec == nil {
				errs = append(errs, err)
				continue
			}
			if !rec.Spec.Restart && !isOurs(rec.PID, rec.Spec.ConfigFile) {
				continue
			}
			h, err := p.Start(ctx, rec.Spec)
			if err != nil {
				errs = append(errs, fmt.Errorf("resume %s/%s: %w", d.Name(), name, err))
				continue
			}
			handles = append(handles, h)
		}
	}
	return handles, errors.Join(errs...)
}
