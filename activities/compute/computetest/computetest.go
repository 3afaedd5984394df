// Package computetest is the contract test suite every compute.Provider
// passes: idempotent Provision, Start, Stop and Release, re-attaching Start,
// and ErrNotFound where the contract promises it. The local provider runs it
// against real processes; the EC2 provider runs it against moto.
package computetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
)

// Suite configures Run for one provider.
type Suite struct {
	// ServerSpec is the template for the servers the suite provisions; each
	// test sets its own DeploymentID.
	ServerSpec compute.ServerSpec
	// WriteConfig writes the config of service name on server s (for the
	// inference server: inferapi.Config as JSON) and returns its path. Required.
	WriteConfig func(t *testing.T, s compute.Server, name string) string
	// Check, when set, returns nil once the service behind h answers (e.g.
	// GET /healthz); the suite polls it.
	Check func(ctx context.Context, h compute.Handle) error
	// Timeout bounds each wait for a state; default 60s.
	Timeout time.Duration
	// Poll is the interval between checks; default 50ms.
	Poll time.Duration
}

// Run runs the contract tests as subtests of t. Every server it provisions is
// released when its subtest ends.
func Run(t *testing.T, p compute.Provider, cfg Suite) {
	require.NotNil(t, cfg.WriteConfig, "computetest: Suite.WriteConfig is required")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	r := &runner{p: p, cfg: cfg}
	t.Run("ProvisionIsIdempotent", r.provisionIsIdempotent)
	t.Run("StartIsIdempotent", r.startIsIdempotent)
	t.Run("ConcurrentStartsShareOneService", r.concurrentStarts)
	t.Run("StopIsIdempotent", r.stopIsIdempotent)
	t.Run("ReleaseIsIdempotent", r.releaseIsIdempotent)
	t.Run("NotFound", r.notFound)
}

type runner struct {
	p   compute.Provider
	cfg Suite
}

func (r *runner) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// provision makes a server for a fresh deployment and releases it at cleanup.
func (r *runner) provision(t *testing.T) compute.Server {
	t.Helper()
	return r.provisionFor(t, "ct-"+uuid.NewString()[:13])
}

// provisionFor makes a server for deployment id and releases it at cleanup.
func (r *runner) provisionFor(t *testing.T, id string) compute.Server {
	t.Helper()
	spec := r.cfg.ServerSpec
	spec.DeploymentID = id
	s, err := r.p.Provision(r.ctx(t), spec)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		defer cancel()
		require.NoError(t, r.p.Release(ctx, s))
	})
	return s
}

func (r *runner) serviceSpec(t *testing.T, s compute.Server, name string) compute.ServiceSpec {
	return compute.ServiceSpec{Server: s, Name: name, Port: s.Port, ConfigFile: r.cfg.WriteConfig(t, s, name), Restart: true}
}

// waitRunning polls until h is Running and, with Check, answers.
func (r *runner) waitRunning(t *testing.T, h compute.Handle) {
	t.Helper()
	ctx := r.ctx(t)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := r.p.Status(ctx, h)
		if !assert.NoError(c, err) || !assert.Equal(c, compute.Running, st.State, st.Detail) {
			return
		}
		if r.cfg.Check != nil {
			assert.NoError(c, r.cfg.Check(ctx, h))
		}
	}, r.cfg.Timeout, r.cfg.Poll, "service %s on %s never ran and answered", h.Name, h.ServerID)
}

func (r *runner) provisionIsIdempotent(t *testing.T) {
	id := "ct-" + uuid.NewString()[:13]
	s := r.provisionFor(t, id)
	require.NotEmpty(t, s.ID)
	require.NotEmpty(t, s.Host)
	require.NotEmpty(t, s.Provider)

	// Server.ID need not be the deployment ID (EC2: the instance ID).
	spec := r.cfg.ServerSpec
	spec.DeploymentID = id
	again, err := r.p.Provision(r.ctx(t), spec)
	require.NoError(t, err)
	require.Equal(t, s, again, "Provision with the same DeploymentID returns the same Server")

	other := r.provision(t)
	require.NotEqual(t, s.ID, other.ID)
}

func (r *runner) startIsIdempotent(t *testing.T) {
	s := r.provision(t)
	spec := r.serviceSpec(t, s, "live")
	h, err := r.p.Start(r.ctx(t), spec)
	require.NoError(t, err)
	require.Equal(t, s.ID, h.ServerID)
	require.Equal(t, "live", h.Name)
	require.NotEmpty(t, h.Address)
	r.waitRunning(t, h)

	again, err := r.p.Start(r.ctx(t), spec)
	require.NoError(t, err)
	require.Equal(t, h, again, "Start of a running service re-attaches")

	st, err := r.p.Status(r.ctx(t), h)
	require.NoError(t, err)
	require.Equal(t, compute.Running, st.State)
	require.Zero(t, st.Restarts)
	require.NoError(t, r.p.Stop(r.ctx(t), h))
}

func (r *runner) concurrentStarts(t *testing.T) {
	s := r.provision(t)
	spec := r.serviceSpec(t, s, "live")
	const n = 4
	handles := make([]compute.Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handles[i], errs[i] = r.p.Start(r.ctx(t), spec)
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, handles[0], handles[i])
	}
	r.waitRunning(t, handles[0])
	require.NoError(t, r.p.Stop(r.ctx(t), handles[0]))
}

func (r *runner) stopIsIdempotent(t *testing.T) {
	s := r.provision(t)
	h, err := r.p.Start(r.ctx(t), r.serviceSpec(t, s, "test"))
	require.NoError(t, err)
	r.waitRunning(t, h)

	require.NoError(t, r.p.Stop(r.ctx(t), h))
	require.NoError(t, r.p.Stop(r.ctx(t), h), "Stop of a stopped service is a no-op")
	requireNotRunning(t, r.p, r.ctx(t), h)

	// A stopped service starts again.
	h2, err := r.p.Start(r.ctx(t), r.serviceSpec(t, s, "test"))
	require.NoError(t, err)
	r.waitRunning(t, h2)
	require.NoError(t, r.p.Stop(r.ctx(t), h2))
}

func (r *runner) releaseIsIdempotent(t *testing.T) {
	s := r.provision(t)
	h, err := r.p.Start(r.ctx(t), r.serviceSpec(t, s, "live"))
	require.NoError(t, err)
	r.waitRunning(t, h)

	require.NoError(t, r.p.Release(r.ctx(t), s), "Release stops the services and frees the server")
	require.NoError(t, r.p.Release(r.ctx(t), s), "Release of a released server is a no-op")
	_, err = r.p.Status(r.ctx(t), h)
	require.ErrorIs(t, err, compute.ErrNotFound)
	require.NoError(t, r.p.Stop(r.ctx(t), h), "Stop on a released server is a no-op")
}

func (r *runner) notFound(t *testing.T) {
	s := r.provision(t)
	ctx := r.ctx(t)

	_, err := r.p.Status(ctx, compute.Handle{Provider: s.Provider, ServerID: s.ID, Name: "never-started"})
	require.ErrorIs(t, err, compute.ErrNotFound, "Status of a service never started")

	gone := s
	gone.ID = "ct-missing-" + uuid.NewString()[:8]
	_, err = r.p.Status(ctx, compute.Handle{Provider: s.Provider, ServerID: gone.ID, Name: "live"})
	require.ErrorIs(t, err, compute.ErrNotFound, "Status on a server that does not exist")
	spec := r.serviceSpec(t, s, "live")
	spec.Server = gone
	_, err = r.p.Start(ctx, spec)
	require.ErrorIs(t, err, compute.ErrNotFound, "Start on a server that does not exist")
	require.NoError(t, r.p.Release(ctx, gone), "Release of an unknown server is a no-op")
}

// requireNotRunning checks a stopped service reads as Exited or ErrNotFound.
func requireNotRunning(t *testing.T, p compute.Provider, ctx context.Context, h compute.Handle) {
	t.Helper()
	st, err := p.Status(ctx, h)
	if errors.Is(err, compute.ErrNotFound) {
		return
	}
	require.NoError(t, err)
	require.NotEqual(t, compute.Running, st.State)
}
