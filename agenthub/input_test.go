package agenthub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/store"
)

// getInput reads command id's input as an agent would and returns the
// status, the error code and the body.
func (e *env) getInput(server, id, credential, lease string) (int, string, []byte) {
	req, err := http.NewRequest(http.MethodGet, "https://"+e.api.addr+protocol.InputPath(server, id), nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	if lease != "" {
		req.Header.Set(protocol.LeaseHeader, lease)
	}
	resp, err := e.httpClient().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var eb protocol.ErrorBody
	_ = json.Unmarshal(buf.Bytes(), &eb)
	return resp.StatusCode, eb.Code, buf.Bytes()
}

// TestWaitedCommandInput: a waited command (Submit, no task token; a batch
// chunk) carries its input as an object the agent downloads over the
// channel: the very bytes for its own server under its lease, 403 for
// another server's credential or path, 409 for a stale lease, 400 without
// one. Its artifacts and result are stored (Result) with no Temporal
// activity behind it; submitting the same ID again answers the command as
// it is, never runs it twice; a command the platform abandons (a canceled
// batch) is seen as done by CheckCommand, and its input is refused 409.
func TestWaitedCommandInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cred, other := e.mint("srv-in"), e.mint("srv-other")
	input := bytes.Repeat([]byte("\x89PNG item "), 5000)
	hold := make(chan struct{})
	var runs atomic.Int64
	var stopped atomic.Bool
	e.agent("srv-in", cred, t.TempDir(), map[string]link.Handler{
		"chunk": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			runs.Add(1)
			b, err := link.DownloadInput(ctx)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(b, input) {
				return nil, errors.New("input differs")
			}
			if cmd.ID == "chunk-cancel" {
				for { // as a batch chunk does: until the platform ends it
					if err := link.CheckCommand(ctx); err != nil {
						stopped.Store(errors.Is(err, protocol.ErrCommandDone))
						return nil, err
					}
					select {
					case <-time.After(100 * time.Millisecond):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
			}
			if err := link.UploadArtifact(ctx, "part-000000", b[:100]); err != nil {
				return nil, err
			}
			progress("batch: 1 done, 0 failed, 0 left")
			if err := link.CheckCommand(ctx); err != nil {
				return nil, err
			}
			select {
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return json.RawMessage(`{"parts":1}`), nil
		}),
	})
	require.NoError(t, e.hub.PutInput(ctx, "srv-in", "chunk-1", input))
	c, err := e.hub.Submit(ctx, agenthub.Cmd{Server: "srv-in", ID: "chunk-1", Kind: "chunk"}, 3)
	require.NoError(t, err)
	require.Equal(t, store.AgentPending, c.State)
	c = e.command("chunk-1", store.AgentLeased)
	require.Eventually(t, func() bool {
		b, err := e.hub.Artifact(ctx, "srv-in", "chunk-1", "part-000000")
		return err == nil && len(b) == 100
	}, time.Minute, 50*time.Millisecond)

	status, _, body := e.getInput("srv-in", "chunk-1", cred, c.Lease)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, input, body)
	for _, tc := range []struct {
		name, server, cred, lease string
		status                    int
		code                      string
	}{
		{"another server's credential", "srv-in", other, c.Lease, 403, "agent_forbidden"},
		{"a command of another server", "srv-other", other, c.Lease, 403, "agent_forbidden"},
		{"a stale lease", "srv-in", cred, "0123456789abcdef0123456789abcdef", 409, "agent_stale_lease"},
		{"no lease", "srv-in", cred, "", 400, "invalid_header"},
	} {
		status, code, body := e.getInput(tc.server, "chunk-1", tc.cred, tc.lease)
		require.Equal(t, tc.status, status, tc.name)
		require.Equal(t, tc.code, code, tc.name)
		require.False(t, bytes.Contains(body, input[:20]), tc.name)
	}
	close(hold)
	c = e.command("chunk-1", store.AgentDone)
	out, err := agenthub.Result(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"parts":1}`, string(out))
	again, err := e.hub.Submit(ctx, agenthub.Cmd{Server: "srv-in", ID: "chunk-1", Kind: "chunk"}, 3)
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, again.State)
	_, err = e.hub.Submit(ctx, agenthub.Cmd{Server: "srv-other", ID: "chunk-1", Kind: "chunk"}, 3)
	require.Error(t, err, "an ID of another server's command")
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 1, runs.Load(), "submitted again, run once")

	// Abandoned while it runs: the handler's CheckCommand sees it done.
	require.NoError(t, e.hub.PutInput(ctx, "srv-in", "chunk-cancel", input))
	_, err = e.hub.Submit(ctx, agenthub.Cmd{Server: "srv-in", ID: "chunk-cancel", Kind: "chunk"}, 3)
	require.NoError(t, err)
	lc := e.command("chunk-cancel", store.AgentLeased)
	time.Sleep(300 * time.Millisecond)
	ok, err := e.st.AbandonAgentCommand(ctx, "chunk-cancel", `{"ok":false,"error":"batch canceled"}`)
	require.NoError(t, err)
	require.True(t, ok)
	status, code, _ := e.getInput("srv-in", "chunk-cancel", cred, lc.Lease)
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "agent_command_done", code)
	require.Eventually(t, stopped.Load, 10*time.Second, 50*time.Millisecond, "the handler hears it was ended")
	_, err = agenthub.Result(e.command("chunk-cancel", store.AgentDone))
	require.ErrorContains(t, err, "batch canceled")
}
