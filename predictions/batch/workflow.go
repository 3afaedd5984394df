// Package batch runs batch jobs (issue 11): many inputs (an uploaded
// archive's files or a list of URLs) sent through one endpoint's /predict
// by a Batch workflow, with bounded concurrency, progress, an output zip and
// a per-item error report. Items are recorded in the store keyed by
// (batch, index) once, so a worker killed mid-batch retries only the
// items whose results were not recorded yet.
//
// History is bounded two ways: the workflow does not run one activity per
// item but one per chunk of ChunkSize items (the activity fans out inside,
// heartbeating), and it continues as new every ChunksPerRun chunks. An
// activity per item would put three events and a task round trip per item
// into the history and through the Temporal server, which on a 2-core
// machine costs more than a small model's predict; a chunk activity costs
// that once per ChunkSize items and the store keeps what each item did.
package batch

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/store"
)

// WorkflowName is the Batch workflow's registered type name.
const WorkflowName = "Batch"

// Defaults of the workflow's shape.
const (
	// ChunkSize is how many items one RunChunk activity does when the
	// Input names none: what every batch started before Input carried
	// DefaultChunkSize used, so running ones replay with it. Never change it.
	ChunkSize = 500
	// DefaultChunkSize is the chunk size the Service gives a new batch (in
	// its Input, so a batch keeps its shape across deploys): large enough
	// that a chunk's scheduling and ramp-down (a workflow task and an
	// activity task, 30 to 110 ms between chunks on the loaded 2-core
	// machine, with fewer than Concurrency requests in flight while the
	// chunk drains) are about 1 % of its items at a few hundred items a
	// second; a retried chunk re-reads only its pending items (one query),
	// so a larger chunk costs a crash nothing more.
	DefaultChunkSize = 2000
	// ChunksPerRun is how many chunks one run does before continuing as
	// new: about 5 events a chunk keeps a run's history under 1,000 events
	// whatever the batch's size.
	ChunksPerRun = 100
)

// WorkflowID is the Batch workflow's ID for a batch.
func WorkflowID(batchID string) string { return "batch-" + batchID }

// Input is the Batch workflow's input. It carries no input data and no
// token: the items are in the store, the token is derived at call time.
type Input struct {
	BatchID      string
	DeploymentID string
	Total        int
	Concurrency  int
	// Next is the first item index this run does (continue-as-new).
	Next int
	// ChunkSize is the items a chunk does (the Service sets
	// DefaultChunkSize; 0 is ChunkSize, as batches started before it have).
	// ChunksPerRun overrides the default (tests).
	ChunkSize    int
	ChunksPerRun int
	// Webhook and WebhookEvents: where the batch's events go (webhooks.go);
	// no Webhook, no deliveries. Continue-as-new carries them along.
	Webhook       string   `json:",omitempty"`
	WebhookEvents []string `json:",omitempty"`
}

// ChunkInput is RunChunk's input: items [From, To) of the batch.
type ChunkInput struct {
	BatchID      string
	DeploymentID string
	From, To     int
	Concurrency  int
}

// ChunkResult counts what one RunChunk attempt recorded.
type ChunkResult struct {
	Succeeded, Failed, Skipped int
}

// MarkInput is MarkBatch's input.
type MarkInput struct {
	BatchID string
	Status  string
	Error   string
}

// changeBatchLocalMark is the workflow.GetVersion change ID of MarkBatch as
// a local activity: it runs inside the workflow task that decides it, so
// marking the batch running, and its end state, costs no activity task
// dispatch and no further workflow task (70 to 260 ms at the start and 100
// to 200 ms at the end of a batch on the loaded 2-core machine, most of a
// small batch's gap to a client loop). workflows/versions.go lists it.
const changeBatchLocalMark = "batch-local-mark"

// marker records the batch's status with MarkBatch: as a local activity in
// runs that took changeBatchLocalMark, as a regular one in runs replaying a
// history from before it.
type marker struct {
	local bool
}

// newMarker reads the change's version once at the start of a run, before
// the run's first command, so every MarkBatch of the run (and of a running
// batch's later runs, which start with it) is the same kind.
func newMarker(ctx workflow.Context) marker {
	return marker{local: workflow.GetVersion(ctx, changeBatchLocalMark, workflow.DefaultVersion, 1) == 1}
}

// options gives ctx the MarkBatch options of the marker's kind, the same
// for both: an attempt may take 30 s (at the end of a batch with an S3
// output it also writes the manifest and error report to the user's bucket;
// a local activity that outlasts the workflow task's timeout has the SDK
// extend the task, so it needs no shorter bound), and it is retried without
// a limit on attempts (idempotent: it sets the status and its time; the
// S3 objects are written whole again), as long as a batch may take to come
// back from a store outage.
func (m marker) options(ctx workflow.Context) workflow.Context {
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second}
	if m.local {
		return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			// Without it the SDK bounds every retry by StartToCloseTimeout.
			ScheduleToCloseTimeout: 7 * 24 * time.Hour,
			RetryPolicy:            retry,
		})
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         retry,
	})
}

// mark runs MarkBatch under markCtx (from options) and waits for it. The
// method of a nil *Activities names the activity; as a local activity the
// worker runs the registered one (RegisterBatch registers Activities).
func (m marker) mark(markCtx workflow.Context, in MarkInput) error {
	var a *Activities
	if m.local {
		return workflow.ExecuteLocalActivity(markCtx, a.MarkBatch, in).Get(markCtx, nil)
	}
	return workflow.ExecuteActivity(markCtx, a.MarkBatch, in).Get(markCtx, nil)
}

// Batch is the workflow of one batch job: it marks the batch running, runs
// its chunks in order (each with the batch's concurrency), and marks it
// succeeded, failed or canceled. Cancelling the workflow abandons the chunk
// in flight.
func Batch(ctx workflow.Context, in Input) error {
	var a *Activities
	chunk, perRun := in.ChunkSize, in.ChunksPerRun
	if chunk <= 0 {
		chunk = ChunkSize
	}
	if perRun <= 0 {
		perRun = ChunksPerRun
	}
	m := newMarker(ctx)
	markCtx := m.options(ctx)
	if in.Next == 0 {
		if err := m.mark(markCtx, MarkInput{BatchID: in.BatchID, Status: store.BatchRunning}); err != nil {
			if canceledWithWebhook(ctx, in) {
				return finish(ctx, markCtx, m, in, store.BatchCanceled, "", temporal.NewCanceledError())
			}
			return err
		}
		notifyWebhook(ctx, in, EventStart)
	}
	chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A chunk waits on the endpoint (429s included); the heartbeat
		// notices a lost worker, this only a wedged one.
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    10 * time.Second,
		WaitForCancellation: false,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	done := 0
	for from := in.Next; from < in.Total; from += chunk {
		if done == perRun {
			next := in
			next.Next = from
			return workflow.NewContinueAsNewError(ctx, Batch, next)
		}
		to := min(from+chunk, in.Total)
		err := workflow.ExecuteActivity(chunkCtx, a.RunChunk, ChunkInput{
			BatchID: in.BatchID, DeploymentID: in.DeploymentID, From: from, To: to, Concurrency: in.Concurrency,
		}).Get(ctx, nil)
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) || ctx.Err() != nil {
			return finish(ctx, markCtx, m, in, store.BatchCanceled, "", temporal.NewCanceledError())
		}
		if err != nil {
			return finish(ctx, markCtx, m, in, store.BatchFailed, err.Error(), err)
		}
		done++
	}
	return finish(ctx, markCtx, m, in, store.BatchSucceeded, "", nil)
}

// finish records the batch's end state, even when the workflow is being
// cancelled, starts the completed webhook, and returns ret.
func finish(ctx, markCtx workflow.Context, m marker, in Input, status, msg string, ret error) error {
	if ctx.Err() != nil {
		dc, _ := workflow.NewDisconnectedContext(markCtx)
		markCtx = dc
	}
	if err := m.mark(markCtx, MarkInput{BatchID: in.BatchID, Status: status, Error: msg}); err != nil {
		return err
	}
	notifyWebhook(markCtx, in, EventCompleted)
	return ret
}
