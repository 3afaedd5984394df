package agenthub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/store"
)

// closed reports whether ch is closed now.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestChangedWakesOnPartAndResult: a waited command's issuer (a batch
// chunk) is woken through Changed when the hub of its process stores the
// command's artifact, and again when it stores its result, each sent by a
// real agent over the TLS API; the channel stays open while the agent
// holds its work, and what woke it is in the store when it closes. A
// channel given up with stop is forgotten (the next Changed is a new one).
func TestChangedWakesOnPartAndResult(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cred := e.mint("srv-w")
	holdPart, holdResult := make(chan struct{}), make(chan struct{})
	e.agent("srv-w", cred, t.TempDir(), map[string]link.Handler{
		"chunk": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			for _, hold := range []chan struct{}{holdPart, holdResult} {
				select {
				case <-hold:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				if hold == holdPart {
					if err := link.UploadArtifact(ctx, "part-000000", []byte("part bytes")); err != nil {
						return nil, err
					}
				}
			}
			return json.RawMessage(`{"parts":1}`), nil
		}),
	})

	// Given up: forgotten, so nothing is kept for a command never notified.
	first, stop := e.hub.Changed("chunk-w")
	stop()
	again, stop := e.hub.Changed("chunk-w")
	require.NotEqual(t, first, again, "a stopped channel is not handed out again")
	defer stop()

	require.NoError(t, e.hub.PutInput(ctx, "srv-w", "chunk-w", []byte("in")))
	_, err := e.hub.Submit(ctx, agenthub.Cmd{Server: "srv-w", ID: "chunk-w", Kind: "chunk"}, 3)
	require.NoError(t, err)
	e.command("chunk-w", store.AgentLeased)
	require.False(t, closed(again), "nothing stored yet")
	same, stopSame := e.hub.Changed("chunk-w")
	defer stopSame()
	require.Equal(t, again, same, "waiters before a change share its channel")

	close(holdPart)
	select {
	case <-again:
	case <-time.After(time.Minute):
		t.Fatal("the part's upload did not wake the issuer")
	}
	b, err := e.hub.Artifact(ctx, "srv-w", "chunk-w", "part-000000")
	require.NoError(t, err, "woken once the part is stored")
	require.Equal(t, "part bytes", string(b))

	afterPart, stop2 := e.hub.Changed("chunk-w")
	defer stop2()
	require.False(t, closed(afterPart), "a new channel for the next change")
	require.Equal(t, store.AgentLeased, e.command("chunk-w", store.AgentLeased).State)
	close(holdResult)
	select {
	case <-afterPart:
	case <-time.After(time.Minute):
		t.Fatal("the result did not wake the issuer")
	}
	c, err := e.hub.Command(ctx, "chunk-w")
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, c.State, "woken once the result is stored")
	out, err := agenthub.Result(c)
	require.NoError(t, err)
	require.JSONEq(t, `{"parts":1}`, string(out))
}
