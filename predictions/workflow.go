package predictions

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/store"
)

// Input starts a Prediction workflow. It carries references only: the input
// bytes are in the blob store under InputKey, never in history.
type Input struct {
	ID               string   `json:"id"`
	AlgorithmID      string   `json:"algorithm_id"`
	InputKey         string   `json:"input_key"`
	InputContentType string   `json:"input_content_type"`
	Webhook          string   `json:"webhook,omitempty"`
	WebhookEvents    []string `json:"webhook_events,omitempty"`
	// PredictTimeout bounds one predict call (the endpoint's own timeout
	// plus a margin); 0 means 2 minutes.
	PredictTimeout time.Duration `json:"predict_timeout,omitempty"`
	// Retention is how long the input and output are kept after the end.
	Retention time.Duration `json:"retention"`
}

// Result is the workflow's result: the final status.
type Result struct {
	Status string `json:"status"`
}

// maxQueued bounds how long a prediction may wait for its endpoint (stopped,
// overloaded, unreachable) before it fails.
const maxQueued = 24 * time.Hour

// Prediction is the workflow of one async prediction: mark it processing,
// call the endpoint until it answers (CallEndpoint's retry policy: only
// unanswered calls and 429/503 are retried, after Retry-After), record the
// end. A cancel abandons a predict in flight (the endpoint may finish it;
// the result is discarded) and records canceled. Each step is an activity,
// so a killed worker resumes where it was.
func Prediction(ctx workflow.Context, in Input) (Result, error) {
	var a *Activities
	short := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	predictTimeout := in.PredictTimeout
	if predictTimeout <= 0 {
		predictTimeout = 2 * time.Minute
	}
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    predictTimeout,
		ScheduleToCloseTimeout: maxQueued,
		// A worker killed mid-call is noticed in seconds, not at StartToClose.
		HeartbeatTimeout: 20 * time.Second,
		// The caller's retry loop: CallEndpoint returns errors only for what may
		// be retried, with the delay the endpoint asked for (NextRetryDelay);
		// the policy's own backoff covers the rest.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
		// Cancel abandons the call at once (the activity sees it at its
		// next heartbeat and drops the connection).
		WaitForCancellation: false,
	})

	res := FinishInput{ID: in.ID, AlgorithmID: in.AlgorithmID, Retention: in.Retention}
	err := workflow.ExecuteActivity(short, a.StartPrediction, in.ID).Get(ctx, nil)
	if err == nil {
		notifyWebhooks(ctx, in, EventStart)
		var out PredictOutcome
		err = workflow.ExecuteActivity(pctx, a.CallEndpoint, PredictInput{
			ID: in.ID, AlgorithmID: in.AlgorithmID, InputKey: in.InputKey, InputContentType: in.InputContentType,
		}).Get(ctx, &out)
		if err == nil {
			res.Outcome = out
		}
	}
	switch {
	case ctx.Err() != nil || temporal.IsCanceledError(err):
		res.Outcome = PredictOutcome{Status: store.PredictionCanceled}
	case err != nil:
		res.Outcome = PredictOutcome{Status: store.PredictionFailed, Error: err.Error()}
	}
	// Recorded even after a cancel: a disconnected context runs it.
	dctx, _ := workflow.NewDisconnectedContext(short)
	var applied bool
	if err := workflow.ExecuteActivity(dctx, a.FinishPrediction, res).Get(dctx, &applied); err != nil {
		return Result{}, err
	}
	if applied {
		if res.Outcome.Status == store.PredictionSucceeded {
			notifyWebhooks(dctx, in, EventOutput)
		}
		// The logs event: only when the algorithm printed something, and only
		// in runs whose history did not pass here before the change.
		if res.Outcome.LogsKey != "" && workflow.GetVersion(dctx, changeLogsEvent, workflow.DefaultVersion, 1) == 1 {
			notifyWebhooks(dctx, in, EventLogs)
		}
		notifyWebhooks(dctx, in, EventCompleted)
	}
	return Result{Status: res.Outcome.Status}, nil
}

// notifyWebhooks starts the webhook delivery of event when the prediction
// has a webhook and its filter (all events when empty) names the event: an
// activity renders the prediction as GET shows it now, then a
// webhook.Deliver child (ParentClosePolicy ABANDON) delivers it with
// webhook-id "<prediction id>-<event>", retrying for a day on its own. The
// prediction never waits for a receiver, and a failure to start a delivery
// is logged, never a failed prediction.
func notifyWebhooks(ctx workflow.Context, in Input, event string) {
	if in.Webhook == "" || (len(in.WebhookEvents) > 0 && !slices.Contains(in.WebhookEvents, event)) {
		return
	}
	var a *Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	var payload []byte
	if err := workflow.ExecuteActivity(actx, a.RenderPrediction, in.ID).Get(ctx, &payload); err != nil {
		workflow.GetLogger(ctx).Error("webhook payload", "prediction", in.ID, "event", event, "error", err)
		return
	}
	err := webhook.StartChild(ctx, webhook.DeliverInput{
		DeliveryID: in.ID + "-" + event, EndpointAlgorithmID: in.AlgorithmID, SubjectID: in.ID,
		URL: in.Webhook, Event: webhook.Event{Type: event, Payload: payload},
	})
	if err != nil {
		workflow.GetLogger(ctx).Error("start webhook delivery", "prediction", in.ID, "event", event, "error", err)
	}
}
