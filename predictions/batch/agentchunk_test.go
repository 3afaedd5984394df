package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/store"
)

// packHub records what issueOnAgent hands the agents' channel (unit test
// of the packing; the agent's side runs for real in integration's
// TestBatchFromZip and TestBatchSurvivesAgentKill).
type packHub struct {
	AgentHub
	input   []byte
	payload commands.Batch
}

func (h *packHub) PutInput(_ context.Context, _, _ string, body []byte) error {
	h.input = append([]byte(nil), body...)
	return nil
}

func (h *packHub) Submit(_ context.Context, in agenthub.Cmd, _ int) (store.AgentCommand, error) {
	if err := json.Unmarshal(in.Payload, &h.payload); err != nil {
		return store.AgentCommand{}, err
	}
	if len(h.payload.Items) > 0 {
		return store.AgentCommand{}, errors.New("the items went unpacked")
	}
	if err := h.payload.UnpackItems(); err != nil {
		return store.AgentCommand{}, err
	}
	return store.AgentCommand{ID: in.ID}, nil
}

// TestIssueOnAgentPacksInputsInOrder: inputs read several at a time, over
// more than one window, are packed in the items' order with each item's
// length, and an input that cannot be read fails its item there (recorded
// in the real store) without shifting the others.
func TestIssueOnAgentPacksInputsInOrder(t *testing.T) {
	n := 2*packInputWindow + 7
	inputs := make([]string, n)
	for i := range inputs {
		inputs[i] = fmt.Sprintf("input-%d-%s", i, string(make([]byte, i%5)))
	}
	st, bl, b := newBatch(t, inputs)
	ctx := context.Background()
	gone := packInputWindow + 3 // in the second window
	require.NoError(t, bl.Delete(ctx, inputKey(b.ID, gone)))
	items, err := st.PendingBatchItems(ctx, b.ID, 0, n)
	require.NoError(t, err)
	hub := &packHub{}
	a := &Activities{Store: st, Blobs: bl, Agents: hub}
	in := ChunkInput{BatchID: b.ID, From: 0, To: n, Concurrency: 4}
	var res ChunkResult
	cmd, err := a.issueOnAgent(ctx, in, "srv", agentCommandID(in), items, &res)
	require.NoError(t, err)
	require.Equal(t, agentCommandID(in), cmd.ID)
	require.Equal(t, 1, res.Failed)

	require.Len(t, hub.payload.Items, n-1)
	require.Equal(t, int64(len(hub.input)), hub.payload.InputBytes)
	off := int64(0)
	want := 0
	for _, it := range hub.payload.Items {
		if want == gone {
			want++
		}
		require.Equal(t, want, it.Index)
		require.Equal(t, inputs[want], string(hub.input[off:off+it.Length]), "item %d", it.Index)
		off += it.Length
		want++
	}
	require.Equal(t, int64(len(hub.input)), off)
	failed, err := st.BatchItems(ctx, b.ID, store.ItemFailed, 0, 10)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, gone, failed[0].Index)
}
