package agenthub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// put uploads body as artifact name of command id, as an agent would, and
// returns the status and the error body's code.
func (e *env) put(server, id, name, credential, lease string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPut, "https://"+e.api.addr+protocol.ArtifactPath(server, id, name), bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	if lease != "" {
		req.Header.Set(protocol.LeaseHeader, lease)
	}
	resp, err := e.httpClient().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var eb protocol.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Code
}

// TestArtifactUpload: a handler uploads a file with link.UploadArtifact
// before its result names it; the platform reads back the very bytes
// (Artifact) and deletes a server's artifacts on release. Uploads that are
// not the command's current hand-out's are refused: another server's
// credential 403, a stale lease 409, no lease 400, over the limit 413, a bad
// name 400 invalid_artifact_name, an unknown command 404. An upload made
// while the API is away is retried until it is back.
func TestArtifactUpload(t *testing.T) {
	e := newEnv(t)
	cred, other := e.mint("srv-art"), e.mint("srv-other")
	data := bytes.Repeat([]byte("\x89PNG artifact "), 1000)
	hold := make(chan struct{})
	e.agent("srv-art", cred, t.TempDir(), map[string]link.Handler{
		"make": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			if err := link.UploadArtifact(ctx, "out.png", data); err != nil {
				return nil, err
			}
			if err := link.UploadArtifact(ctx, "../x", data); err == nil {
				return nil, context.Canceled // never: a bad name is refused before sending
			}
			select { // keep the lease current while the test probes the route
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return json.RawMessage(`{"artifact":"out.png"}`), nil
		}),
	})
	require.ErrorIs(t, link.UploadArtifact(context.Background(), "x", nil), link.ErrNoUploader)
	run := e.start(agenthub.Cmd{Server: "srv-art", ID: "make-1", Kind: "make", Deployment: e.algID})
	c := e.command("make-1", store.AgentLeased)
	require.Eventually(t, func() bool {
		b, err := e.hub.Artifact(context.Background(), "srv-art", "make-1", "out.png")
		return err == nil && bytes.Equal(b, data)
	}, time.Minute, 50*time.Millisecond)

	for _, tc := range []struct {
		name, server, cred, lease, artifact string
		body                                []byte
		status                              int
		code                                string
	}{
		{"another server's credential", "srv-art", other, c.Lease, "out.png", data, 403, "agent_forbidden"},
		{"a command of another server", "srv-other", other, c.Lease, "out.png", data, 403, "agent_forbidden"},
		{"a stale lease", "srv-art", cred, "0123456789abcdef0123456789abcdef", "out.png", data, 409, "agent_stale_lease"},
		{"no lease", "srv-art", cred, "", "out.png", data, 400, "invalid_header"},
		{"a bad name", "srv-art", cred, c.Lease, ".hidden", data, 400, "invalid_artifact_name"},
		{"too large", "srv-art", cred, c.Lease, "big.bin", make([]byte, protocol.MaxArtifact+1), 413, "body_too_large"},
		{"an unknown command", "srv-art", cred, c.Lease, "out.png", data, 404, "agent_command_not_found"},
	} {
		id := "make-1"
		if tc.code == "agent_command_not_found" {
			id = "never-issued"
		}
		status, code := e.put(tc.server, id, tc.artifact, tc.cred, tc.lease, tc.body)
		require.Equal(t, tc.status, status, tc.name)
		require.Equal(t, tc.code, code, tc.name)
	}
	_, err := e.hub.Artifact(context.Background(), "srv-art", "make-1", "big.bin")
	require.ErrorIs(t, err, blobs.ErrNotFound, "a refused upload stores nothing")

	close(hold)
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"artifact":"out.png"}`, string(out.Output))

	// Cut off from the API when it uploads: the upload is retried until the
	// API is back.
	cut := make(chan struct{})
	cutData := []byte("made while the API was away")
	e.agent("srv-cut", e.mint("srv-cut"), t.TempDir(), map[string]link.Handler{
		"late": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			select {
			case <-cut:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if err := link.UploadArtifact(ctx, "late.txt", cutData); err != nil {
				return nil, err
			}
			return json.RawMessage(`{"artifact":"late.txt"}`), nil
		}),
	})
	run = e.start(agenthub.Cmd{Server: "srv-cut", ID: "late-1", Kind: "late", Deployment: e.algID})
	e.command("late-1", store.AgentLeased)
	e.api.stop()
	close(cut)
	time.Sleep(time.Second) // a few failed tries
	e.api.start(t)
	out, err = e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"artifact":"late.txt"}`, string(out.Output))
	got, err := e.hub.Artifact(context.Background(), "srv-cut", "late-1", "late.txt")
	require.NoError(t, err)
	require.Equal(t, cutData, got)

	require.NoError(t, e.hub.DeleteArtifacts(context.Background(), "srv-art"))
	_, err = e.hub.Artifact(context.Background(), "srv-art", "make-1", "out.png")
	require.ErrorIs(t, err, blobs.ErrNotFound)
}
