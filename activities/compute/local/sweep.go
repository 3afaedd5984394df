package local

import (
	"context"

	"github.com/algocloud/algocloud/activities/compute"
)

var _ compute.Sweeper = (*Provider)(nil)

// Sweep releases the deployment's server without its Server record: a local
// server's ID is its deployment ID (servers/<deployment-id>), so this is
// Release of that ID, stopping its services and removing its folder. A
// deployment without a folder is a no-op.
func (p *Provider) Sweep(ctx context.Context, deploymentID string) error {
	if !validID(deploymentID) {
		return permanent("sweep: deployment id %q is not valid (letters, digits, '.', '_', '-')", deploymentID)
	}
	return p.Release(ctx, compute.Server{Provider: ProviderName, ID: deploymentID})
}
