package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/predictions/webhook"
)

// Webhook events a batch emits (the values of its webhook_events_filter).
const (
	// EventStart: the batch began running (once, on its first run).
	EventStart = webhook.EventStart
	// EventCompleted: it ended, succeeded, failed or canceled; the body
	// has its counts and its output and error report URLs.
	EventCompleted = webhook.EventCompleted
)

// Events is every event a batch emits, in the order they happen.
var Events = []string{EventStart, EventCompleted}

// changeBatchWebhooks is the workflow.GetVersion change ID of the Batch
// workflow's webhook deliveries: a batch started with a webhook renders
// itself and starts a WebhookDeliver child at start and at its end.
// workflows/versions.go lists it (why, and when its old branch may go);
// its tests read this package's sources and corpus too.
const changeBatchWebhooks = "batch-webhooks"

// DeliveryID is the webhook-id (and the delivery workflow's name) of a
// batch's event: derived from both, so a replayed or retried Batch run
// finds the delivery it started before and each event is sent once.
func DeliveryID(batchID, event string) string { return batchID + "-" + event }

// notifyWebhook starts the delivery of event when the batch has a webhook
// and its filter (every event when empty) names the event: RenderBatch
// renders the batch as GET shows it now, then a webhook.Deliver child
// (ParentClosePolicy ABANDON) delivers it, retrying for a day on its own.
// The batch never waits for a receiver, and a delivery that cannot start
// is logged, never a failed batch. Batches from before the change (which
// had no webhook: the API refused one) keep their history's commands.
func notifyWebhook(ctx workflow.Context, in Input, event string) {
	if in.Webhook == "" || (len(in.WebhookEvents) > 0 && !slices.Contains(in.WebhookEvents, event)) {
		return
	}
	if workflow.GetVersion(ctx, changeBatchWebhooks, workflow.DefaultVersion, 1) != 1 {
		return
	}
	var a *Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	var payload []byte
	if err := workflow.ExecuteActivity(actx, a.RenderBatch, in.BatchID).Get(ctx, &payload); err != nil {
		workflow.GetLogger(ctx).Error("batch webhook payload", "batch", in.BatchID, "event", event, "error", err)
		return
	}
	err := webhook.StartChild(ctx, webhook.DeliverInput{
		DeliveryID: DeliveryID(in.BatchID, event), EndpointAlgorithmID: in.DeploymentID, SubjectID: in.BatchID,
		URL: in.Webhook, Event: webhook.Event{Type: event, Payload: payload},
	})
	if err != nil {
		workflow.GetLogger(ctx).Error("start batch webhook delivery", "batch", in.BatchID, "event", event, "error", err)
	}
}

// canceledWithWebhook reports whether a batch canceled before it began
// running (its first MarkBatch canceled) still owes its webhook the
// completed event: it has a webhook, so it started after the change.
func canceledWithWebhook(ctx workflow.Context, in Input) bool {
	return ctx.Err() != nil && in.Webhook != "" &&
		workflow.GetVersion(ctx, changeBatchWebhooks, workflow.DefaultVersion, 1) == 1
}

// RenderBatch is the batch as GET answers it now (a webhook's body), its
// urls absolute when APIBaseURL is set.
func (a *Activities) RenderBatch(ctx context.Context, batchID string) ([]byte, error) {
	b, err := a.Store.BatchByID(ctx, batchID)
	if err != nil {
		return nil, err
	}
	alg, err := a.Store.GetAlgorithmByID(ctx, b.AlgorithmID)
	if err != nil {
		return nil, fmt.Errorf("render batch %s: %w", batchID, err)
	}
	return json.Marshal(NewView(b, a.APIBaseURL+"/api/v1/endpoints/"+alg.APIName+"/batches", time.Now()))
}
