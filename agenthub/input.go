package agenthub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/store"
)

// Input objects and waited commands: what a batch chunk run by a server's
// agent needs (predictions/batch, agent/commands KindBatch).
//
// A command may have an input object (PutInput), kept in the blob store
// beside its artifacts (agent/<server>/<command>/.input: an artifact name
// cannot start with '.', so the two never meet) and read by the agent over
// its channel (CommandInput, GET protocol.InputPath) under the command's
// lease: only the server the command was issued to may read it, so the
// payload carries references, never the bytes.
//
// A waited command (Submit) has no task token: the activity that issued it
// stays running and watches it (Command) instead of being completed by the
// agent's result, because it has work to do as the agent's artifacts come
// (recording a batch chunk's results part by part). Its progress and result
// are recorded as any command's, without a heartbeat or a completion sent
// to Temporal.

// inputKey is where a command's input object is kept.
func inputKey(server, commandID string) string {
	return "agent/" + server + "/" + commandID + "/.input"
}

// PutInput stores body (at most protocol.MaxInput bytes) as the input
// object of command commandID of serverID. Call it before Submit, so the
// agent never gets a command whose input is missing.
func (h *Hub) PutInput(ctx context.Context, serverID, commandID string, body []byte) error {
	if h.blobs == nil {
		return ErrNoBlobs
	}
	if err := protocol.ValidID(serverID); err != nil {
		return fmt.Errorf("command input: server id: %w", err)
	}
	if err := protocol.ValidID(commandID); err != nil {
		return fmt.Errorf("command input: command id: %w", err)
	}
	if len(body) > protocol.MaxInput {
		return fmt.Errorf("command input of %s: %d bytes, over the %d-byte limit", commandID, len(body), protocol.MaxInput)
	}
	if err := h.blobs.Put(ctx, inputKey(serverID, commandID), bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("store the input of command %s: %w", commandID, err)
	}
	return nil
}

// CommandInput opens the input object of command commandID for serverID,
// which holds it under lease. Refusals are the protocol's: ErrForbidden
// (another server's command), ErrUnknownCommand, ErrCommandDone (the
// command is over: a canceled batch chunk; the agent stops it),
// ErrStaleLease; blobs.ErrNotFound (wrapped) when it has no input.
func (h *Hub) CommandInput(ctx context.Context, serverID, commandID, lease string) (io.ReadCloser, error) {
	if h.blobs == nil {
		return nil, ErrNoBlobs
	}
	c, err := h.leased(ctx, serverID, commandID, lease)
	if errors.Is(err, protocol.ErrStaleLease) && c.State == store.AgentDone {
		return nil, protocol.ErrCommandDone
	}
	if err != nil {
		return nil, err
	}
	rc, err := h.blobs.Get(ctx, inputKey(serverID, commandID))
	if err != nil {
		return nil, fmt.Errorf("input of command %s: %w", commandID, err)
	}
	return rc, nil
}

// Submit records a waited command (no task token) unless one with its ID
// exists, and wakes the server's long polls. It answers the command as it
// is now: a command issued before (the activity retried after a crash) is
// left as it is, running or done, so nothing is sent twice. An ID already
// used for another server or kind is an error.
func (h *Hub) Submit(ctx context.Context, in Cmd, heartbeatSeconds int) (store.AgentCommand, error) {
	if err := protocol.ValidID(in.ID); err != nil {
		return store.AgentCommand{}, fmt.Errorf("command id: %w", err)
	}
	if err := protocol.ValidID(in.Server); err != nil {
		return store.AgentCommand{}, fmt.Errorf("server id: %w", err)
	}
	for range 3 {
		cur, err := h.store.GetAgentCommand(ctx, in.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			c := store.AgentCommand{ID: in.ID, ServerID: in.Server, Deployment: in.Deployment, Kind: in.Kind,
				Payload: string(in.Payload), State: store.AgentPending, Attempt: 1, Heartbeat: heartbeatSeconds,
				TaskToken: []byte{}} // none (the column is NOT NULL)
			err = h.store.InsertAgentCommand(ctx, c)
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			if err != nil {
				return c, fmt.Errorf("record command %s: %w", in.ID, err)
			}
			h.notify(in.Server)
			return c, nil
		case err != nil:
			return cur, fmt.Errorf("record command %s: %w", in.ID, err)
		case cur.ServerID != in.Server || cur.Kind != in.Kind:
			return cur, fmt.Errorf("command id %s is already used for a %s command of server %s", in.ID, cur.Kind, cur.ServerID)
		default:
			return cur, nil
		}
	}
	return store.AgentCommand{}, fmt.Errorf("record command %s: it kept changing under us", in.ID)
}

// Command returns command id as the store has it now: its state and, once
// done, its result (Result).
func (h *Hub) Command(ctx context.Context, id string) (store.AgentCommand, error) {
	return h.store.GetAgentCommand(ctx, id)
}

// Result decodes a done command's stored answer: its output, or an error
// saying why the agent failed it.
func Result(c store.AgentCommand) (json.RawMessage, error) {
	if c.State != store.AgentDone {
		return nil, fmt.Errorf("command %s is %s, not done", c.ID, c.State)
	}
	var r storedResult
	if err := json.Unmarshal([]byte(c.Result), &r); err != nil {
		return nil, fmt.Errorf("read stored result of command %s: %w", c.ID, err)
	}
	if !r.OK {
		msg := r.Error
		if msg == "" {
			msg = "the agent gave no reason"
		}
		return nil, fmt.Errorf("command %s failed on the server: %s", c.ID, msg)
	}
	return r.Output, nil
}

// DeleteCommandFiles removes a command's input object and artifacts once
// its issuer has kept what it needs (a batch chunk's parts are recorded
// under the batch's own keys).
func (h *Hub) DeleteCommandFiles(ctx context.Context, serverID, commandID string) error {
	if h.blobs == nil {
		return nil
	}
	if err := protocol.ValidID(serverID); err != nil {
		return fmt.Errorf("delete command files: server id: %w", err)
	}
	if err := protocol.ValidID(commandID); err != nil {
		return fmt.Errorf("delete command files: command id: %w", err)
	}
	if err := h.blobs.Delete(ctx, "agent/"+serverID+"/"+commandID); err != nil {
		return fmt.Errorf("delete files of command %s: %w", commandID, err)
	}
	return nil
}
