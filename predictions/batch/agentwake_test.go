package batch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// TestRunOnAgentWokenByTheHub: with its poll an hour apart, a chunk on the
// agent still records each part and ends as soon as the real hub (the
// real store and blob store) stores the part and the result: the hub's
// wake-up, not the tick, carries it. The agent's side is played through the
// hub's own methods (claim, upload, result), as the API calls them, each
// step only once the chunk has looked for it and not found it (so only a
// wake-up or the tick makes it look again).
func TestRunOnAgentWokenByTheHub(t *testing.T) {
	inputs := []string{"a", "bb", "ccc", "dddd"}
	st, bl, b := newBatch(t, inputs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound on a hang, not a timing
	defer cancel()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	hub, err := agenthub.New(agenthub.Config{Store: st, Key: key, Blobs: bl, PollEvery: time.Hour})
	require.NoError(t, err)
	defer hub.Close()
	_, err = hub.MintCredential(ctx, "srv")
	require.NoError(t, err)
	items, err := st.PendingBatchItems(ctx, b.ID, 0, len(inputs))
	require.NoError(t, err)
	// The store without its liveness methods: no deployment or server
	// rows here for the agent watch (agentwait.go, tested apart) to read.
	a := &Activities{Store: struct{ Store }{st}, Blobs: bl, Agents: hub, Poll: time.Hour}
	in := ChunkInput{BatchID: b.ID, From: 0, To: len(inputs), Concurrency: 2}

	// The agent: two parts of two items each, then the result.
	looks := make(chan string, 1024)
	seen := &lookHub{Hub: hub, looks: looks}
	a.Agents = seen
	after := func(want string) error {
		for {
			select {
			case got := <-looks:
				if got == want {
					return nil
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	agentErr := make(chan error, 1)
	go func() {
		agentErr <- func() error {
			c, err := hub.NextCommand(ctx, "srv", "boot-1", protocol.MaxWait)
			if err != nil || c == nil {
				return fmt.Errorf("no command handed out: %v", err)
			}
			for p := range 2 {
				if err := after("missing " + commands.BatchPartName(p)); err != nil {
					return err
				}
				var part []byte
				for _, i := range []int{2 * p, 2*p + 1} {
					part = commands.AppendBatchRecord(part, commands.BatchResult{Index: i, HTTPStatus: 200,
						ContentType: "text/plain", Body: []byte("out-" + inputs[i])})
				}
				if err := hub.PutArtifact(ctx, "srv", c.ID, c.Lease, commands.BatchPartName(p), bytes.NewReader(part)); err != nil {
					return err
				}
			}
			out, err := json.Marshal(commands.BatchOutput{Parts: 2, Items: 4, Succeeded: 4})
			if err != nil {
				return err
			}
			if err := after("missing " + commands.BatchPartName(2)); err != nil {
				return err
			}
			if err := after("running"); err != nil {
				return err
			}
			_, err = hub.CommandResult(ctx, "srv", protocol.Result{CommandID: c.ID, Lease: c.Lease, OK: true, Output: out})
			return err
		}()
	}()

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	chunk := func(ctx context.Context) (ChunkResult, error) { return a.runOnAgent(ctx, in, "srv", items) }
	env.RegisterActivity(chunk)
	v, err := env.ExecuteActivity(chunk)
	require.NoError(t, err)
	require.NoError(t, <-agentErr)
	var res ChunkResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, 4, res.Succeeded)
	done, err := st.BatchItems(ctx, b.ID, store.ItemSucceeded, 0, 10)
	require.NoError(t, err)
	require.Len(t, done, 4)
	for _, it := range done {
		rc, err := OpenOutput(ctx, bl, it.OutputKey)
		require.NoError(t, err)
		body := make([]byte, 64)
		n, _ := rc.Read(body)
		rc.Close()
		require.Equal(t, "out-"+inputs[it.Index], string(body[:n]))
	}
}

// lookHub is the real hub, telling the test what the chunk looked for and
// did not find: a part not there yet ("missing part-…"), the command still
// running ("running").
type lookHub struct {
	*agenthub.Hub
	looks chan<- string
}

func (h *lookHub) tell(s string) {
	select {
	case h.looks <- s:
	default:
	}
}

func (h *lookHub) Artifact(ctx context.Context, serverID, commandID, name string) ([]byte, error) {
	b, err := h.Hub.Artifact(ctx, serverID, commandID, name)
	if errors.Is(err, blobs.ErrNotFound) {
		h.tell("missing " + name)
	}
	return b, err
}

func (h *lookHub) Command(ctx context.Context, id string) (store.AgentCommand, error) {
	c, err := h.Hub.Command(ctx, id)
	if err == nil && c.State != store.AgentDone {
		h.tell("running")
	}
	return c, err
}
