package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"
)

// SweepServer removes what the provider made for a deployment whose server
// the workflow never recorded: a Provision that launched an instance and
// then failed for good (its answer lost, every later attempt failing)
// leaves Delete no Server to release. It calls the provider's Sweep (see
// compute.Sweeper; a provider without it has nothing to sweep) and deletes
// the deployment's published bundle. Heartbeats while it waits; an invalid
// deployment ID is a non-retryable BadInput error.
func (a *Activities) SweepServer(ctx context.Context, deploymentID string) error {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "sweeping" })()
	if sw, ok := a.Provider.(compute.Sweeper); ok {
		if err := sw.Sweep(ctx, deploymentID); err != nil {
			var perm *compute.PermanentError
			if errors.As(err, &perm) {
				return nonRetryable(actdef.BadInputErrorType, err)
			}
			return fmt.Errorf("sweep deployment %s: %w", deploymentID, err)
		}
	}
	if a.Bundles != nil {
		if err := a.Bundles.Delete(ctx, deploymentID); err != nil {
			var perm *compute.PermanentError
			if errors.As(err, &perm) {
				return nonRetryable(actdef.BadInputErrorType, err)
			}
			return fmt.Errorf("sweep deployment %s: delete bundle: %w", deploymentID, err)
		}
	}
	return nil
}
