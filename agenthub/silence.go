package agenthub

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// ErrTypeAgentSilent is the application error type of a command's activity
// attempt that the hub failed because the agent holding the command stopped
// polling (silence.go). It is retryable: the retry hands the command out
// again, and the agent, once back, runs it (or, if it still runs it, only
// moves it to the new lease: agent/link).
const ErrTypeAgentSilent = "AgentSilent"

// silentPeriods is how many of its poll periods an agent may go without
// polling before it counts as gone. The agent polls again as soon as a poll
// ends (a few hundred milliseconds of backoff after a failed one), so two
// periods leave room for a slow round trip and a first retry.
const silentPeriods = 2

// minPollPeriod is the shortest period counted for a poll (a wait of 0, as
// tests ask, would otherwise make the agent silent at once).
const minPollPeriod = 2 * time.Second

// pollPeriod is the period an agent that asked for wait polls with.
func pollPeriod(wait time.Duration) time.Duration { return max(wait, minPollPeriod) }

// notePoll moves serverID's silent_after to at.
func (h *Hub) notePoll(ctx context.Context, serverID string, at time.Time) error {
	if err := h.store.NoteAgentPoll(ctx, serverID, at); err != nil {
		return fmt.Errorf("agent of server %s: %w", serverID, err)
	}
	return nil
}

// watchSilence looks for silent agents every `every`, from `grace` after
// the hub's start until Close.
func (h *Hub) watchSilence(every, grace time.Duration) {
	select {
	case <-h.closing:
		return
	case <-time.After(grace):
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		h.checkSilence(context.Background())
		select {
		case <-h.closing:
			return
		case <-tick.C:
		}
	}
}

// checkSilence voids the leases of the commands whose agent has not polled
// by its silent_after and fails their activity attempts, retryable, with an
// error (and an event-log line) that says so. The agent's link polls with a
// short wait while it runs commands (link.Config.RunningWait), so a stopped
// or hung agent is noticed within seconds; the heartbeat timeout (30 s in
// the Deployment workflow) stays the backstop. Of several hubs (API
// processes) over one store, one voids each hand-out (RequeueAgentLease).
func (h *Hub) checkSilence(ctx context.Context) {
	cmds, err := h.store.SilentAgentLeases(ctx, time.Now())
	if err != nil {
		h.log.WarnContext(ctx, "look for silent agents", "error", err)
		return
	}
	for _, c := range cmds {
		ok, err := h.store.RequeueAgentLease(ctx, c.ID, c.Lease)
		if err != nil {
			h.log.WarnContext(ctx, "void a silent agent's lease", "command", c.ID, "error", err)
			continue
		}
		if !ok { // answered, handed out again, or voided by another hub meanwhile
			continue
		}
		msg := fmt.Sprintf("the agent of server %s stopped polling (stopped, hung or cut off): command %s is handed out again when it polls", c.ServerID, c.ID)
		h.log.InfoContext(ctx, "agent silent; its command's attempt failed for a retry", "server", c.ServerID, "command", c.ID)
		if c.Deployment != "" {
			if err := h.store.AddEvent(ctx, c.Deployment, c.Kind, msg); err != nil {
				h.log.WarnContext(ctx, "silent agent line not logged", "command", c.ID, "error", err)
			}
		}
		if len(c.TaskToken) == 0 {
			continue // a waited command (input.go): its activity watches the store; requeued is all
		}
		token, err := h.openToken(c.ID, c.TaskToken)
		if err != nil {
			h.log.WarnContext(ctx, "silent agent's command", "command", c.ID, "error", err)
			continue
		}
		err = h.temporal.CompleteActivity(ctx, token, nil, temporal.NewApplicationError(msg, ErrTypeAgentSilent))
		if err != nil && !isGone(err) {
			// The lease is void all the same: the heartbeat timeout retries it.
			h.log.WarnContext(ctx, "fail a silent agent's command attempt", "command", c.ID, "error", err)
		}
	}
}
