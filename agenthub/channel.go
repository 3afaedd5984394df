package agenthub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/store"
)

// The API's side of the channel (package api's AgentHub interface): each
// method is called for a request already authenticated as serverID.

// AuthenticateAgent returns the server a credential belongs to, or an error
// wrapping store.ErrUnauthorized.
func (h *Hub) AuthenticateAgent(ctx context.Context, credential string) (string, error) {
	return h.store.AgentServerByCredential(ctx, hashCredential(credential))
}

// NextCommand hands serverID's next pending command out under a new lease,
// waiting up to wait (at most protocol.MaxWait) for one; nil when none came.
// A command recorded in this process wakes it at once; one recorded by
// another process (a worker apart from the API) is seen within PollEvery.
//
// boot is the polling agent process's boot ID ("" from an agent that sends
// none). When it is not the one the store holds for serverID, the agent
// started anew (killed and restarted, or the server rebooted): the
// commands handed out to its previous process are put back to pending
// first (their leases void, so a late answer of the dead process is
// refused), and this poll hands them to the new process at once. The
// activity attempt stays the same, so nothing waits for its heartbeat
// timeout. The boot is kept in the store, so an API process that started
// after the agent (a restart, or one of several) re-hands nothing.
//
// Each poll also moves the server's silent_after (silence.go): while a poll
// is held, the agent is there; once it ends, the agent has twice the wait
// it asked for to poll again.
func (h *Hub) NextCommand(ctx context.Context, serverID, boot string, wait time.Duration) (*protocol.Command, error) {
	wait = min(max(wait, 0), protocol.MaxWait)
	if err := h.noteBoot(ctx, serverID, boot); err != nil {
		return nil, err
	}
	if err := h.notePoll(ctx, serverID, time.Now().Add(wait+silentPeriods*pollPeriod(wait))); err != nil {
		return nil, err
	}
	defer func() { // the poll ended: the agent polls again within its period
		end := context.WithoutCancel(ctx)
		if err := h.notePoll(end, serverID, time.Now().Add(silentPeriods*pollPeriod(wait))); err != nil {
			h.log.WarnContext(end, "agent poll not noted", "server", serverID, "error", err)
		}
	}()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(h.pollEvery)
	defer poll.Stop()
	for {
		woken := h.wakeup(serverID) // before looking, so a record after the look still wakes us
		lease, err := newLease()
		if err != nil {
			return nil, err
		}
		c, ok, err := h.store.ClaimAgentCommand(ctx, serverID, lease)
		if err != nil {
			return nil, fmt.Errorf("next command of server %s: %w", serverID, err)
		}
		if ok {
			return &protocol.Command{
				ID: c.ID, Server: c.ServerID, Kind: c.Kind, Attempt: c.Attempt, Lease: lease,
				HeartbeatSeconds: c.Heartbeat, Payload: []byte(c.Payload),
			}, nil
		}
		select {
		case <-woken:
		case <-poll.C:
		case <-deadline.C:
			return nil, nil
		case <-h.closing:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// noteBoot records boot as serverID's agent process and, when the store
// held another one, requeues the commands leased to the previous process
// (NextCommand). The cache spares the store a write per poll.
func (h *Hub) noteBoot(ctx context.Context, serverID, boot string) error {
	if boot == "" {
		return nil
	}
	h.mu.Lock()
	prev := h.boots[serverID]
	h.mu.Unlock()
	if prev == boot {
		return nil
	}
	changed, n, err := h.store.NoteAgentBoot(ctx, serverID, boot)
	if err != nil {
		return fmt.Errorf("agent of server %s started anew: %w", serverID, err)
	}
	h.mu.Lock()
	h.boots[serverID] = boot
	h.mu.Unlock()
	if n > 0 {
		h.log.InfoContext(ctx, "agent started anew; the commands its previous process held are handed out again",
			"server", serverID, "commands", n, "new_boot", changed)
	}
	return nil
}

// leased returns command id if serverID may answer it under lease, else the
// protocol's refusal: ErrUnknownCommand, ErrForbidden (another server's),
// ErrStaleLease.
func (h *Hub) leased(ctx context.Context, serverID, id, lease string) (store.AgentCommand, error) {
	c, err := h.store.GetAgentCommand(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, protocol.ErrUnknownCommand
	}
	if err != nil {
		return c, err
	}
	if c.ServerID != serverID {
		return c, protocol.ErrForbidden
	}
	if c.State != store.AgentLeased || lease == "" || c.Lease != lease {
		return c, protocol.ErrStaleLease
	}
	return c, nil
}

// CommandProgress records a sign of life and output lines of a command
// handed out under p.Lease: an activity heartbeat with the lines as its
// details, and the lines in the deployment's event log (the wizard's
// progress log).
func (h *Hub) CommandProgress(ctx context.Context, serverID string, p protocol.Progress) error {
	c, err := h.leased(ctx, serverID, p.CommandID, p.Lease)
	if err != nil {
		return err
	}
	if len(c.TaskToken) == 0 {
		return nil // a waited command (input.go): its activity watches the store
	}
	token, err := h.openToken(c.ID, c.TaskToken)
	if err != nil {
		return err
	}
	if err := h.temporal.RecordActivityHeartbeat(ctx, token, p.Lines); err != nil {
		if isGone(err) {
			// The attempt timed out; its retry will void this lease.
			return fmt.Errorf("heartbeat command %s: %w", c.ID, protocol.ErrStaleLease)
		}
		return fmt.Errorf("heartbeat command %s: %w: %w", c.ID, protocol.ErrUnavailable, err)
	}
	if c.Deployment != "" {
		for _, line := range p.Lines {
			kind, msg := h.eventLine(c.Kind, line)
			if err := h.store.AddEvent(ctx, c.Deployment, kind, msg); err != nil {
				// The log is for people; a missing line must not fail the command.
				h.log.WarnContext(ctx, "agent progress line not logged", "command", c.ID, "error", err)
				break
			}
		}
	}
	return nil
}

// eventLine is how a progress line of a command of kind shows in the
// event log: under the command's kind, without the "<kind>: " prefix an
// agent's own log gives it ("test: booting…" is the event test/"booting…",
// as when the worker ran the step), or under the hub's EventKind when the
// command has no kind.
func (h *Hub) eventLine(kind, line string) (string, string) {
	if kind == "" {
		return h.eventKind, line
	}
	return kind, strings.TrimPrefix(line, kind+": ")
}

// CommandResult records the agent's answer to a command handed out under
// r.Lease and completes its activity. An answer already recorded is
// acknowledged again when it is the same (Ack.Duplicate: the agent lost the
// first acknowledgement) and refused with ErrCommandDone when it differs;
// the activity is completed again in the first case, in case the first
// completion did not reach Temporal.
func (h *Hub) CommandResult(ctx context.Context, serverID string, r protocol.Result) (protocol.Ack, error) {
	enc, err := encodeResult(r)
	if err != nil {
		return protocol.Ack{}, err
	}
	c, err := h.leased(ctx, serverID, r.CommandID, r.Lease)
	duplicate := false
	switch {
	case errors.Is(err, protocol.ErrStaleLease) && c.State == store.AgentDone:
		if c.Result != enc {
			return protocol.Ack{}, protocol.ErrCommandDone
		}
		duplicate = true
	case err != nil:
		return protocol.Ack{}, err
	default:
		ok, err := h.store.FinishAgentCommand(ctx, c.ID, r.Lease, enc)
		if err != nil {
			return protocol.Ack{}, err
		}
		if !ok { // reissued or answered since we read it
			return h.CommandResult(ctx, serverID, r)
		}
	}
	if len(c.TaskToken) == 0 { // a waited command (input.go): stored is all; its issuer is told
		h.notifyChanged(c.ID)
		return protocol.Ack{CommandID: c.ID, Duplicate: duplicate}, nil
	}
	token, err := h.openToken(c.ID, c.TaskToken)
	if err != nil {
		return protocol.Ack{}, err
	}
	var cerr error
	if r.OK {
		cerr = h.temporal.CompleteActivity(ctx, token, Outcome{Output: r.Output}, nil)
	} else {
		cerr = h.temporal.CompleteActivity(ctx, token, nil, commandFailed(c.ID, r.Error))
	}
	switch {
	case cerr == nil:
	case isGone(cerr):
		// That attempt is over (timed out, or completed by the first of two
		// identical answers); the stored result completes the next attempt.
		h.log.InfoContext(ctx, "agent result stored for the command's next attempt", "command", c.ID, "error", cerr)
	default:
		// Stored, but Temporal did not take it: the agent sends it again and
		// the duplicate path completes the activity.
		return protocol.Ack{}, fmt.Errorf("complete command %s: %w: %w", c.ID, protocol.ErrUnavailable, cerr)
	}
	return protocol.Ack{CommandID: c.ID, Duplicate: duplicate}, nil
}

// isGone reports whether Temporal says the activity attempt a task token
// names is no longer running.
func isGone(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
