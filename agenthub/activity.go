package agenthub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/store"
)

// ActivityName is the name RunOnServer is registered under; workflows
// execute it by this name.
const ActivityName = "RunOnServer"

// ErrTypeCommandFailed is the application error type of a command the agent
// ran and answered as failed (Result.OK false). It is not retried: the agent
// did run it, and running it again would fail the same way.
const ErrTypeCommandFailed = "AgentCommandFailed"

// ErrTypeInvalidCommand is the application error type of a command the
// activity refuses before recording it (a bad ID, or an ID already used for
// another server or kind); not retried.
const ErrTypeInvalidCommand = "AgentInvalidCommand"

// Cmd is RunOnServer's input: what a workflow asks a server's agent to do.
type Cmd struct {
	// Server is the server whose agent runs the command.
	Server string
	// ID is the command's ID, deterministic in the workflow (e.g. workflow
	// ID, step and revision): every attempt of the step uses the same ID, so
	// the agent runs it at most once. A step that must run again (a second
	// Test Code of the same revision) needs a new ID.
	ID string
	// Kind picks the agent's handler.
	Kind string
	// Deployment, when set, is the algorithm whose event log receives the
	// command's progress lines.
	Deployment string
	// Payload is the kind's input: references only, never a secret (it is
	// kept in the store and handed to the agent as is).
	Payload json.RawMessage
}

// Outcome is RunOnServer's result: the Output of the agent's successful
// Result.
type Outcome struct {
	Output json.RawMessage
}

// RunOnServer is the generic activity that has a command run by a server's
// agent. It records the command with this attempt's task token and returns
// activity.ErrResultPending; the agent's result completes it later through
// the API (CommandResult). A command already answered completes at once with
// the stored answer. Run it with a HeartbeatTimeout (the agent heartbeats
// through its progress; a vanished agent times out and the retry hands the
// command out again) and a RetryPolicy without a low MaximumAttempts (each
// attempt that times out is a hand-out lost, not a failure of the command).
func (h *Hub) RunOnServer(ctx context.Context, in Cmd) (Outcome, error) {
	if err := protocol.ValidID(in.ID); err != nil {
		return Outcome{}, temporal.NewNonRetryableApplicationError("command id: "+err.Error(), ErrTypeInvalidCommand, nil)
	}
	if err := protocol.ValidID(in.Server); err != nil {
		return Outcome{}, temporal.NewNonRetryableApplicationError("server id: "+err.Error(), ErrTypeInvalidCommand, nil)
	}
	if in.Kind == "" {
		return Outcome{}, temporal.NewNonRetryableApplicationError("command "+in.ID+" has no kind", ErrTypeInvalidCommand, nil)
	}
	info := activity.GetInfo(ctx)
	sealed, err := h.sealToken(in.ID, info.TaskToken)
	if err != nil {
		return Outcome{}, err
	}
	heartbeat := int(info.HeartbeatTimeout.Seconds() / 3)
	if info.HeartbeatTimeout > 0 && heartbeat < 1 {
		heartbeat = 1
	}
	for range 3 { // a concurrent insert of the same ID (not expected) is re-read
		cur, err := h.store.GetAgentCommand(ctx, in.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			err = h.store.InsertAgentCommand(ctx, store.AgentCommand{
				ID: in.ID, ServerID: in.Server, Deployment: in.Deployment, Kind: in.Kind, Payload: string(in.Payload),
				State: store.AgentPending, Attempt: int(info.Attempt), Heartbeat: heartbeat, TaskToken: sealed,
			})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return Outcome{}, fmt.Errorf("record command %s: %w", in.ID, err)
			}
		case err != nil:
			return Outcome{}, fmt.Errorf("record command %s: %w", in.ID, err)
		case cur.ServerID != in.Server || cur.Kind != in.Kind:
			return Outcome{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("command id %s is already used for a %s command of server %s", in.ID, cur.Kind, cur.ServerID), ErrTypeInvalidCommand, nil)
		case cur.State == store.AgentDone:
			return outcomeOf(cur)
		default:
			ok, err := h.store.ReissueAgentCommand(ctx, in.ID, int(info.Attempt), heartbeat, sealed)
			if err != nil {
				return Outcome{}, fmt.Errorf("record command %s: %w", in.ID, err)
			}
			if !ok { // answered since we read it
				continue
			}
			activity.GetLogger(ctx).Info("agent command handed out again", "command", in.ID, "server", in.Server, "attempt", info.Attempt)
		}
		h.notify(in.Server)
		return Outcome{}, activity.ErrResultPending
	}
	return Outcome{}, fmt.Errorf("record command %s: it kept changing under us", in.ID)
}

// outcomeOf turns a done command's stored result into the activity's answer.
func outcomeOf(c store.AgentCommand) (Outcome, error) {
	var r storedResult
	if err := json.Unmarshal([]byte(c.Result), &r); err != nil {
		return Outcome{}, fmt.Errorf("read stored result of command %s: %w", c.ID, err)
	}
	if !r.OK {
		return Outcome{}, commandFailed(c.ID, r.Error)
	}
	return Outcome{Output: r.Output}, nil
}

// commandFailed is the activity error of a command the agent answered as
// failed.
func commandFailed(id, msg string) error {
	if msg == "" {
		msg = "the agent gave no reason"
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("command %s failed on the server: %s", id, msg), ErrTypeCommandFailed, nil)
}
