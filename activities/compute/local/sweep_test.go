package local

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
)

// Sweep by the deployment ID alone stops the server's running service and
// removes its folder, leaves other servers alone, and finds nothing the
// second time.
func TestSweep_RemovesServerByDeploymentID(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir())
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-lost"})
	require.NoError(t, err)
	cfg := writeConfig(t, s, "live")
	h, err := p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live", ConfigFile: cfg, Restart: true})
	require.NoError(t, err)
	waitHealthy(t, h)
	kept, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-kept"})
	require.NoError(t, err)

	require.NoError(t, p.Sweep(ctx, "dep-lost"))
	require.NoDirExists(t, s.Workdir)
	require.False(t, isOurs(h.PID, cfg))
	require.DirExists(t, kept.Workdir)

	require.NoError(t, p.Sweep(ctx, "dep-lost"), "sweeping again finds nothing")
	require.NoError(t, p.Sweep(ctx, "dep-never"))
	requirePermanent(t, p.Sweep(ctx, "../dep-kept"))
	require.DirExists(t, kept.Workdir)
}
