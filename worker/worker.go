// Package worker builds the Temporal worker that runs Deployment workflows and
// their activities, and brings live endpoints back after a restart.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/predictions/webhook"
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
	w.RegisterWorkflow(workflows.RenewCertificates)
	w.RegisterActivity(acts)
	return w
}

// RegisterAgentHub registers the generic activity that has a command run by
// a server's agent (agenthub.ActivityName), so workflow steps can run
// author code on the server that serves it rather than on this worker.
// Call it before the worker starts.
func RegisterAgentHub(w sdkworker.Worker, hub *agenthub.Hub) {
	w.RegisterActivityWithOptions(hub.RunOnServer, activity.RegisterOptions{Name: agenthub.ActivityName})
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

// DefaultRenewEvery is how often the renewal schedule looks for certificates
// due for renewal.
const DefaultRenewEvery = 12 * time.Hour

// EnsureRenewalSchedule creates the Temporal Schedule that runs
// RenewCertificates every `every` (overlapping runs skipped), or, when it
// exists (another worker, an earlier start), sets its interval to every.
// Workers call it at start, so it is idempotent.
func EnsureRenewalSchedule(ctx context.Context, c client.Client, every time.Duration, log *slog.Logger) error {
	if every <= 0 {
		return fmt.Errorf("certificate renewal interval %s must be positive", every)
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   workflows.RenewalScheduleID,
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{
			ID:        workflows.RenewalWorkflowID,
			Workflow:  workflows.RenewCertificates,
			Args:      []any{workflows.RenewInput{}},
			TaskQueue: workflows.TaskQueue,
			// A run lists and signals; it never needs long.
			WorkflowExecutionTimeout: 30 * time.Minute,
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "renews endpoints' certificates before they expire (algocloud worker)",
	})
	if err == nil {
		log.Info("certificate renewal schedule created", "schedule", workflows.RenewalScheduleID, "every", every)
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create certificate renewal schedule: %w", err)
	}
	h := c.ScheduleClient().GetHandle(ctx, workflows.RenewalScheduleID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		cur := in.Description.Schedule.Spec
		if cur != nil && len(cur.Intervals) == 1 && cur.Intervals[0].Every == every && len(cur.Calendars) == 0 && len(cur.CronExpressions) == 0 {
			return nil, temporal.ErrSkipScheduleUpdate
		}
		sch := in.Description.Schedule
		sch.Spec = &spec
		return &client.ScheduleUpdate{Schedule: &sch}, nil
	}})
	if err != nil {
		return fmt.Errorf("update certificate renewal schedule: %w", err)
	}
	return nil
}

// RegisterBatch adds the Batch workflow and its activities to w (same task
// queue as the deployments: a batch's chunks are few, long activities).
func RegisterBatch(w sdkworker.Worker, acts *batch.Activities) {
	w.RegisterWorkflowWithOptions(batch.Batch, workflow.RegisterOptions{Name: batch.WorkflowName})
	w.RegisterActivity(acts)
}

// RegisterPredictions adds the Prediction workflow and its activities to w
// (the deployments' task queue: one worker binary serves both).
func RegisterPredictions(w sdkworker.Worker, acts *predictions.Activities) {
	w.RegisterWorkflow(predictions.Prediction)
	w.RegisterActivity(acts)
}

// RegisterWebhooks adds the webhook delivery workflow and its activities to
// w (the same task queue: prediction and batch workflows start deliveries
// as children, which run on their parent's queue).
func RegisterWebhooks(w sdkworker.Worker, acts *webhook.Activities) {
	webhook.Register(w, acts)
}
