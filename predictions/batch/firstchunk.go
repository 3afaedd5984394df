package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/algocloud/algocloud/store"
)

// The first chunk starts with the batch (docs/batches.md, "The first
// chunk starts with the batch"). A new batch's workflow starts, marks the
// batch running and schedules its first chunk, whose activity reads the
// pending items and issues the agent's command: 30 to 60 ms on a quiet
// 2-core machine (a few hundred when Temporal's store is slow to write)
// with the endpoint idle, against about a second for a 2,000-image batch of
// small PNGs. Where the deployment's server has a live agent,
// Service.Create issues that same command itself while the workflow
// starts, from the items it has just staged; the chunk's activity finds it by its ID
// (agentCommandID, from the batch and the chunk's bounds) and watches it as
// a retried activity would. The command and its input are what the
// activity would issue, so whichever of the two comes first, the agent runs
// the chunk once. A cancel ends the command (Service.Cancel) even when the
// workflow never got to the chunk.

// FirstChunk issues a new batch's first chunk on its deployment's server
// agent; *Activities implements it.
type FirstChunk interface {
	// StartFirstChunk issues in (the batch's first chunk, whose items are
	// all pending) on the deployment's agent when it has one that polls
	// now; it reports whether it did.
	StartFirstChunk(ctx context.Context, in ChunkInput, items []store.BatchItem) (bool, error)
	// EndFirstChunk ends the first chunk's command of a canceled batch.
	EndFirstChunk(ctx context.Context, b store.Batch) error
}

var _ FirstChunk = (*Activities)(nil)

// firstChunk is a new batch's first chunk, as its workflow will run it.
func firstChunk(batchID, deploymentID string, total, concurrency int) ChunkInput {
	return ChunkInput{BatchID: batchID, DeploymentID: deploymentID, From: 0, To: min(DefaultChunkSize, total), Concurrency: concurrency}
}

// StartFirstChunk implements FirstChunk. An agent that is not polling now
// (silent, gone, never seen) gets nothing: the activity decides then, with
// what it knows of agents it took chunks back from.
func (a *Activities) StartFirstChunk(ctx context.Context, in ChunkInput, items []store.BatchItem) (bool, error) {
	st, ok := a.Store.(agentLivenessStore)
	if a.Agents == nil || !ok || len(items) == 0 {
		return false, nil
	}
	srv := a.agentServer(ctx, in)
	if srv == "" {
		return false, nil
	}
	if at, known, err := st.AgentSilentAfter(ctx, srv); err != nil || !known || (!at.IsZero() && time.Now().After(at)) {
		return false, err
	}
	id := agentCommandID(in)
	if _, err := a.Agents.Command(ctx, id); !errors.Is(err, store.ErrNotFound) {
		return false, err // issued already (nil), or the store failed
	}
	var res ChunkResult
	cmd, err := a.issueOnAgent(ctx, in, srv, id, items, &res)
	if err != nil {
		return false, fmt.Errorf("issue the first chunk on server %s: %w", srv, err)
	}
	return cmd.ID != "", nil
}

// EndFirstChunk implements FirstChunk.
func (a *Activities) EndFirstChunk(ctx context.Context, b store.Batch) error {
	as, ok := a.Store.(AgentStore)
	if a.Agents == nil || !ok || b.Total == 0 {
		return nil
	}
	id := agentCommandID(firstChunk(b.ID, b.AlgorithmID, b.Total, b.Concurrency))
	_, err := as.AbandonAgentCommand(ctx, id, `{"ok":false,"error":"the batch was canceled"}`)
	return err
}
