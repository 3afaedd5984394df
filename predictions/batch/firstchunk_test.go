package batch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// startTemporal is a Temporal start that waits for the first chunk to be
// issued before answering (or fails), so a test sees the two overlap.
type startTemporal struct {
	issued  chan struct{}
	fail    error
	started bool
}

func (s *startTemporal) ExecuteWorkflow(ctx context.Context, _ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	select {
	case <-s.issued:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the first chunk was not issued while the workflow started")
	}
	s.started = true
	return nil, s.fail
}

func (s *startTemporal) CancelWorkflow(context.Context, string, string) error { return nil }

// recordFirst records what Service.Create asks of the first chunk.
type recordFirst struct {
	mu     sync.Mutex
	in     ChunkInput
	items  []store.BatchItem
	ended  []string
	issued chan struct{}
}

func (r *recordFirst) StartFirstChunk(_ context.Context, in ChunkInput, items []store.BatchItem) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.in, r.items = in, items
	close(r.issued)
	return true, nil
}

func (r *recordFirst) EndFirstChunk(_ context.Context, b store.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, agentCommandID(firstChunk(b.ID, b.AlgorithmID, b.Total, b.Concurrency)))
	return nil
}

// serviceFixture opens a real store and blob folder with a user and an
// algorithm ("alg").
func serviceFixture(t *testing.T) (*store.Store, blobs.Store, store.User) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	bl, err := blobs.NewDir(t.TempDir())
	require.NoError(t, err)
	u, err := st.CreateUser(ctx, "u")
	require.NoError(t, err)
	require.NoError(t, st.CreateAlgorithm(ctx, store.Algorithm{ID: "alg", OwnerID: u.ID, Name: "a", APIName: "a"}))
	return st, bl, u
}

// TestCreateIssuesTheFirstChunkWhileTheWorkflowStarts: an archive batch's
// first chunk (its first DefaultChunkSize staged items) is handed to
// FirstChunk while the workflow starts; a start that fails ends it again.
func TestCreateIssuesTheFirstChunkWhileTheWorkflowStarts(t *testing.T) {
	ctx := context.Background()
	st, bl, u := serviceFixture(t)
	var entries []entry
	for i := range DefaultChunkSize + 5 {
		entries = append(entries, entry{name: fmt.Sprintf("%04d.txt", i), body: fmt.Sprint(i)})
	}
	for _, fail := range []error{nil, errors.New("temporal down")} {
		first := &recordFirst{issued: make(chan struct{})}
		tc := &startTemporal{issued: first.issued, fail: fail}
		s := &Service{Store: st, Blobs: bl, Temporal: tc, FirstChunk: first}
		alg, err := st.GetAlgorithmByID(ctx, "alg")
		require.NoError(t, err)
		b, err := s.Create(ctx, Request{Algorithm: alg, OwnerID: u.ID, Archive: writeZip(t, entries), Concurrency: 3})
		require.True(t, tc.started)
		first.mu.Lock()
		require.Equal(t, ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: DefaultChunkSize, Concurrency: 3}, first.in)
		require.Len(t, first.items, DefaultChunkSize)
		require.Equal(t, 0, first.items[0].Index)
		require.Equal(t, DefaultChunkSize-1, first.items[DefaultChunkSize-1].Index)
		require.NotEmpty(t, first.items[7].Input, "staged inputs")
		ended := first.ended
		first.mu.Unlock()
		if fail == nil {
			require.NoError(t, err)
			require.Empty(t, ended)
			continue
		}
		require.Error(t, err)
		require.Equal(t, []string{agentCommandID(first.in)}, ended, "a workflow that did not start leaves no chunk running")
		got, err := st.BatchByID(ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, store.BatchFailed, got.Status)
	}
}

// doneHub answers for one command already issued and done on "srv-old",
// with one result part; anything else fails the test.
type doneHub struct {
	t    *testing.T
	id   string
	part []byte
}

func (h *doneHub) PutInput(context.Context, string, string, []byte) error {
	h.t.Error("the chunk issued its command again")
	return nil
}

func (h *doneHub) Submit(context.Context, agenthub.Cmd, int) (store.AgentCommand, error) {
	h.t.Error("the chunk issued its command again")
	return store.AgentCommand{}, nil
}

func (h *doneHub) Command(_ context.Context, id string) (store.AgentCommand, error) {
	if id != h.id {
		return store.AgentCommand{}, store.ErrNotFound
	}
	return store.AgentCommand{ID: id, ServerID: "srv-old", Kind: commands.KindBatch, State: store.AgentDone,
		Result: `{"ok":true,"output":{"parts":1,"items":3,"succeeded":3}}`}, nil
}

func (h *doneHub) Artifact(_ context.Context, server, id, name string) ([]byte, error) {
	if server != "srv-old" || id != h.id || name != commands.BatchPartName(0) {
		return nil, blobs.ErrNotFound
	}
	return h.part, nil
}

func (h *doneHub) DeleteCommandFiles(context.Context, string, string) error { return nil }

func (h *doneHub) Changed(string) (<-chan struct{}, func()) {
	c := make(chan struct{})
	close(c)
	return c, func() {}
}

// failEndpoint fails the test if the worker's path sends anything.
type failEndpoint struct{ t *testing.T }

func (e failEndpoint) Predict(context.Context, string, []byte, string) (Response, error) {
	e.t.Error("the worker sent an item that a command already ran")
	return Response{}, errors.New("no")
}

func (failEndpoint) Retryable(error) bool { return false }

// TestRunChunkWatchesACommandIssuedBefore: a chunk whose deployment has no
// agent for the activity now (stopped, or given up on by this worker) but
// whose command was issued already (Service.Create's first chunk) records
// that command's results instead of sending its items again.
func TestRunChunkWatchesACommandIssuedBefore(t *testing.T) {
	st, bl, b := newBatch(t, []string{"a", "b", "c"})
	in := ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: 3, Concurrency: 2}
	var part []byte
	for i := range 3 {
		part = commands.AppendBatchRecord(part, commands.BatchResult{Index: i, HTTPStatus: 200, ContentType: "text/plain", Body: []byte{'A' + byte(i)}})
	}
	a := &Activities{Store: st, Blobs: bl, Agents: &doneHub{t: t, id: agentCommandID(in), part: part}, Endpoint: failEndpoint{t}}
	res, err := runChunk(t, a, in)
	require.NoError(t, err)
	require.Equal(t, 3, res.Succeeded)
	items, err := st.BatchItems(context.Background(), b.ID, store.ItemSucceeded, 0, 10)
	require.NoError(t, err)
	require.Len(t, items, 3)
}

// TestEndFirstChunkAbandonsItsCommand: canceling a batch ends its first
// chunk's command in the store (the agent's next look is refused and it
// stops), once; a batch without one changes nothing.
func TestEndFirstChunkAbandonsItsCommand(t *testing.T) {
	ctx := context.Background()
	st, bl, b := newBatch(t, []string{"a", "b"})
	b.Total = 2
	a := &Activities{Store: st, Blobs: bl, Agents: &doneHub{t: t}}
	require.NoError(t, a.EndFirstChunk(ctx, b), "no command: nothing to end")
	id := agentCommandID(firstChunk(b.ID, b.AlgorithmID, b.Total, b.Concurrency))
	require.NoError(t, st.InsertAgentCommand(ctx, store.AgentCommand{ID: id, ServerID: "srv", Deployment: "alg", Kind: commands.KindBatch,
		Payload: "{}", State: store.AgentPending, Attempt: 1, TaskToken: []byte{}}))
	require.NoError(t, a.EndFirstChunk(ctx, b))
	c, err := st.GetAgentCommand(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, c.State)
	require.Contains(t, c.Result, "the batch was canceled")
}
