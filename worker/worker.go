// Package worker builds the Temporal worker that runs Deployment workflows and
// their activities, and brings live endpoints back after a restart.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// New registers the Deployment workflow and every activity on the task queue.
func New(c client.Client, acts *activities.Activities) sdkworker.Worker {
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		// Steps are few and mostly wait on processes; a handful at once keeps a
		// 2-core machine responsive while 50 wizards run.
		MaxConcurrentActivityExecutionSize: 16,
	})
	w.RegisterWorkflow(workflows.Deployment)
	w.RegisterActivity(acts)
	return w
}

// Reconcile signals every live deployment so its workflow makes sure the
// endpoint runs (re-attaching or restarting it). Workers call it at start.
func Reconcile(ctx context.Context, c client.Client, st *store.Store, log *slog.Logger) error {
	live, err := st.ListLiveAlgorithms(ctx)
	if err != nil {
		return fmt.Errorf("list live deployments: %w", err)
	}
	for _, alg := range live {
		err := c.SignalWorkflow(ctx, workflows.WorkflowID(alg.ID), "", workflows.SignalReconcile, nil)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			log.Warn("live deployment has no running workflow", "deployment", alg.ID)
		case err != nil:
			return fmt.Errorf("signal %s: %w", alg.ID, err)
		}
	}
	if len(live) > 0 {
		log.Info("asked live deployments to reconcile", "count", len(live))
	}
	return nil
}
