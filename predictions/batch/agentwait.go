package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/internal/blobs"
)

// When a chunk stops waiting for its agent (docs/batches.md, "On the
// server's agent", Agent gone): the chunk's command is a waited one, with
// no task token the hub could fail when the agent goes silent
// (agenthub/silence.go only puts it back in the queue), so the waiting
// activity looks for itself: the agent silent for longer than a bound, its
// server's credential gone, or the deployment served by another server or
// by none. It then abandons the command (the agent, if it comes back,
// hears 409 and stops; its uploads are refused) and the worker runs what
// is left itself: the endpoint may well still answer (a local revision
// outlives its agent; an agent hung or cut off from the platform leaves its
// revision serving), and where it does not, the worker's path fails each
// item with why after its retry window, so the batch ends either way.

// DefaultAgentSilence is how long a chunk's agent may stay silent (past
// its silent_after, as this attempt of the chunk saw it) before the chunk
// runs without it. Long enough for an agent restart (seconds, its journal
// kept) and a network cut of a minute or so: four times the 30 s heartbeat
// timeout that backs the Deployment workflow's agent commands.
const DefaultAgentSilence = 2 * time.Minute

// agentLookEvery spaces the looks at the agent's liveness: two store reads,
// not worth doing at the parts' poll rate.
const agentLookEvery = time.Second

// agentLivenessStore is what the watch reads; *store.Store implements it.
type agentLivenessStore interface {
	AgentSilentAfter(ctx context.Context, serverID string) (time.Time, bool, error)
	BatchAgentServer(ctx context.Context, deploymentID string) (string, error)
}

// agentWatch follows the liveness of one chunk's agent during one attempt
// of the chunk. Silence is counted from when this attempt first saw the
// agent past its silent_after, not from the stored deadline itself: after
// a platform restart that deadline is as old as the platform's downtime,
// and the agent, which could not poll meanwhile, deserves the whole bound.
type agentWatch struct {
	st          agentLivenessStore
	deployment  string
	server      string
	bound       time.Duration
	next        time.Time
	silentSince time.Time
}

// newAgentWatch returns the chunk's watch, or nil when the store cannot
// tell (the chunk then waits for the agent or the batch's cancel).
func (a *Activities) newAgentWatch(in ChunkInput, server string) *agentWatch {
	st, ok := a.Store.(agentLivenessStore)
	if !ok {
		return nil
	}
	bound := a.AgentSilence
	if bound <= 0 {
		bound = DefaultAgentSilence
	}
	return &agentWatch{st: st, deployment: in.DeploymentID, server: server, bound: bound}
}

// gone says why the chunk should stop waiting for its agent as of now, ""
// while it should wait. A store that cannot be read says nothing: the
// agent is not blamed for the platform's trouble.
func (w *agentWatch) gone(ctx context.Context, now time.Time) string {
	if w == nil || now.Before(w.next) {
		return ""
	}
	w.next = now.Add(agentLookEvery)
	at, ok, err := w.st.AgentSilentAfter(ctx, w.server)
	if err != nil {
		return ""
	}
	if !ok {
		return fmt.Sprintf("server %s is gone (its agent's credential was removed)", w.server)
	}
	if srv, err := w.st.BatchAgentServer(ctx, w.deployment); err == nil && srv != w.server {
		if srv == "" {
			return fmt.Sprintf("the deployment's server %s was stopped", w.server)
		}
		return fmt.Sprintf("the deployment moved from server %s to server %s", w.server, srv)
	}
	if at.IsZero() || now.Before(at) {
		w.silentSince = time.Time{}
		return ""
	}
	if w.silentSince.IsZero() {
		w.silentSince = now
	}
	if silent := now.Sub(w.silentSince); silent >= w.bound {
		return fmt.Sprintf("the agent of server %s has been silent for %v (stopped, hung or cut off)", w.server, silent.Round(time.Second))
	}
	return ""
}

// leaveAgent ends the chunk's command (why as its result), records the
// parts from next on that the agent uploaded before that, and answers
// errAgentChunkFailed: the worker runs what is left. A part uploaded after
// the end is refused by the hub; one being written meanwhile is never
// read, and its items are sent again by the worker (recorded once).
func (a *Activities) leaveAgent(ctx context.Context, in ChunkInput, server, id string, next int, res *ChunkResult, why string) error {
	a.logWarn("the chunk stops waiting for its agent; the worker runs what is left", in, errors.New(why))
	as, ok := a.Store.(AgentStore)
	if !ok {
		return fmt.Errorf("%w: %s", errAgentChunkFailed, why)
	}
	result, err := json.Marshal(map[string]any{"ok": false, "error": "abandoned by the platform: " + why})
	if err != nil {
		return err
	}
	if _, err := as.AbandonAgentCommand(context.WithoutCancel(ctx), id, string(result)); err != nil {
		return fmt.Errorf("abandon the chunk's agent command: %w", err)
	}
	for ; ; next++ {
		b, err := a.Agents.Artifact(ctx, server, id, commands.BatchPartName(next))
		if errors.Is(err, blobs.ErrNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("read result part %d of %s: %w", next, id, err)
		}
		if err := a.recordPart(ctx, in, next, b, res); err != nil {
			return err
		}
	}
	if err := a.Agents.DeleteCommandFiles(ctx, server, id); err != nil {
		a.logWarn("agent chunk's files not deleted", in, err)
	}
	a.goneAgents.Store(server, time.Now())
	return fmt.Errorf("%w: %s", errAgentChunkFailed, why)
}

// stillGone reports whether this worker took a chunk back from server's
// agent and the agent has not polled since: the batch's next chunks then
// run on the worker's path at once rather than each waiting out the bound
// again. Kept in memory, not in the store: after a platform restart every
// agent's deadline is old, and each deserves a wait of its own.
func (a *Activities) stillGone(ctx context.Context, server string) bool {
	if _, ok := a.goneAgents.Load(server); !ok {
		return false
	}
	st, ok := a.Store.(agentLivenessStore)
	if !ok {
		return false
	}
	at, has, err := st.AgentSilentAfter(ctx, server)
	if err != nil {
		return false
	}
	// A poll since moves silent_after past now (and past the give-up).
	if has && time.Now().Before(at) {
		a.goneAgents.Delete(server)
		return false
	}
	return true
}
