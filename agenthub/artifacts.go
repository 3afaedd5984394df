package agenthub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/algocloud/algocloud/agent/protocol"
)

// Artifacts: files a command made on the server (a test's output), uploaded
// by the agent before it posts the result that names them, kept in the blob
// store under agent/<server>/<command>/<name>, so results and workflow
// histories carry names, never the bytes.

// ErrNoBlobs is the artifact methods' error when the hub has no blob store.
var ErrNoBlobs = errors.New("agenthub: no blob store for artifacts")

// artifactKey is where an artifact is kept.
func artifactKey(server, commandID, name string) string {
	return "agent/" + server + "/" + commandID + "/" + name
}

// PutArtifact stores body (at most protocol.MaxArtifact bytes) as artifact
// name of command commandID, handed out to serverID under lease. Refusals
// are the protocol's (ErrUnknownCommand, ErrForbidden, ErrStaleLease),
// protocol.ErrArtifactTooLarge, or a name error; the caller checks name with
// protocol.ValidArtifactName first to answer it apart.
func (h *Hub) PutArtifact(ctx context.Context, serverID, commandID, lease, name string, body io.Reader) error {
	if h.blobs == nil {
		return ErrNoBlobs
	}
	if err := protocol.ValidArtifactName(name); err != nil {
		return fmt.Errorf("artifact name: %w", err)
	}
	if _, err := h.leased(ctx, serverID, commandID, lease); err != nil {
		return err
	}
	// Read it whole (bounded) before storing: a body cut short or over the
	// limit never replaces a good one.
	b, err := io.ReadAll(io.LimitReader(body, protocol.MaxArtifact+1))
	if err != nil {
		return fmt.Errorf("read artifact %s of %s: %w", name, commandID, err)
	}
	if len(b) > protocol.MaxArtifact {
		return protocol.ErrArtifactTooLarge
	}
	if err := h.blobs.Put(ctx, artifactKey(serverID, commandID, name), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("store artifact %s of %s: %w", name, commandID, err)
	}
	h.notifyChanged(commandID)
	return nil
}

// Artifact returns artifact name of command commandID of serverID, as the
// agent uploaded it; blobs.ErrNotFound when there is none.
func (h *Hub) Artifact(ctx context.Context, serverID, commandID, name string) ([]byte, error) {
	if h.blobs == nil {
		return nil, ErrNoBlobs
	}
	if err := protocol.ValidArtifactName(name); err != nil {
		return nil, fmt.Errorf("artifact name: %w", err)
	}
	rc, err := h.blobs.Get(ctx, artifactKey(serverID, commandID, name))
	if err != nil {
		return nil, fmt.Errorf("artifact %s of %s: %w", name, commandID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, protocol.MaxArtifact+1))
	if err != nil {
		return nil, fmt.Errorf("read artifact %s of %s: %w", name, commandID, err)
	}
	return b, nil
}

// DeleteArtifacts removes every artifact of serverID (the server is
// released).
func (h *Hub) DeleteArtifacts(ctx context.Context, serverID string) error {
	if h.blobs == nil {
		return nil
	}
	if err := protocol.ValidID(serverID); err != nil {
		return fmt.Errorf("delete artifacts: server id: %w", err)
	}
	if err := h.blobs.Delete(ctx, "agent/"+serverID); err != nil {
		return fmt.Errorf("delete artifacts of server %s: %w", serverID, err)
	}
	return nil
}
