package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// fakeEndpoint is a test double of the endpoint for the chunk's logic; the
// integration tests call real endpoints. It answers 429 to the first
// `busy` calls, 400 to inputs "bad", and echoes the rest upper-cased.
type fakeEndpoint struct {
	mu    sync.Mutex
	calls map[string]int
	busy  int
}

func (f *fakeEndpoint) Predict(_ context.Context, _ string, body []byte, _ string) (Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[string(body)]++
	if f.busy > 0 {
		f.busy--
		return Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"0"}}}, nil
	}
	if string(body) == "bad" {
		return Response{Status: http.StatusBadRequest, Body: []byte(`{"code":"bad_image"}`)}, nil
	}
	return Response{Status: 200, ContentType: "text/plain", Body: bytes.ToUpper(body)}, nil
}

func (f *fakeEndpoint) Retryable(error) bool { return false }

// newBatch stores a batch of inputs (as blobs) in a real SQLite store.
func newBatch(t *testing.T, inputs []string) (*store.Store, blobs.Store, store.Batch) {
	ctx := context.Background()
	st, bl, u := serviceFixture(t)
	b := store.Batch{ID: NewID(), AlgorithmID: "alg", OwnerID: u.ID, Source: "archive", Concurrency: 3}
	var items []store.BatchItem
	for i, in := range inputs {
		key := inputKey(b.ID, i)
		require.NoError(t, bl.Put(ctx, key, bytes.NewReader([]byte(in)), -1))
		items = append(items, store.BatchItem{Index: i, Name: fmt.Sprintf("%d.txt", i), Input: key})
	}
	require.NoError(t, st.CreateBatch(ctx, b, items))
	_, err := st.SetBatchStatus(ctx, b.ID, store.BatchRunning, "")
	require.NoError(t, err)
	return st, bl, b
}

func runChunk(t *testing.T, a *Activities, in ChunkInput) (ChunkResult, error) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.RunChunk, in)
	var res ChunkResult
	if err == nil {
		require.NoError(t, v.Get(&res))
	}
	return res, err
}

func TestRunChunkRecordsEachItemOnceAndWaitsOut429(t *testing.T) {
	inputs := []string{"a", "b", "bad", "c", "d", "e"}
	st, bl, b := newBatch(t, inputs)
	ep := &fakeEndpoint{calls: map[string]int{}, busy: 4}
	a := &Activities{Store: st, Blobs: bl, Endpoint: ep}
	ctx := context.Background()

	// A first attempt recorded item 0 before its worker died.
	ok, err := st.FinishBatchItem(ctx, b.ID, 0, store.ItemResult{Status: store.ItemSucceeded, OutputKey: outputKey(b.ID, 0)})
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, bl.Put(ctx, outputKey(b.ID, 0), bytes.NewReader([]byte("A")), 1))

	res, err := runChunk(t, a, ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: len(inputs), Concurrency: 3})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Succeeded: 4, Failed: 1, Skipped: 1}, res)
	require.Zero(t, ep.calls["a"], "a recorded item is never sent again")
	for _, in := range []string{"b", "bad", "c", "d", "e"} {
		require.GreaterOrEqual(t, ep.calls[in], 1, in)
	}
	total := 0
	for _, n := range ep.calls {
		total += n
	}
	require.Equal(t, 5+4, total, "each item answered once, plus the four 429s")

	got, err := st.BatchByID(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, 5, got.Done)
	require.Equal(t, 1, got.Failed)
	items, err := st.BatchItems(ctx, b.ID, store.ItemFailed, 0, 0)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.Equal(t, 2, items[0].Index)
	require.Equal(t, 400, items[0].HTTPStatus)
	require.Contains(t, items[0].Error, "bad_image")

	// Outputs are in the blob store; the zip and the error report read them.
	svc := &Service{Store: st, Blobs: bl}
	var zbuf, ebuf bytes.Buffer
	require.NoError(t, svc.WriteOutputZip(ctx, &zbuf, b.ID))
	require.NoError(t, svc.WriteErrors(ctx, &ebuf, b.ID))
	require.Contains(t, ebuf.String(), `"index":2`)
	zr := zipEntries(t, zbuf.Bytes())
	require.Len(t, zr, 5)
	require.Equal(t, "E", zr["5.bin"])

	// Running the chunk again sends nothing.
	before := total
	res, err = runChunk(t, a, ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: len(inputs), Concurrency: 3})
	require.NoError(t, err)
	require.Equal(t, ChunkResult{Skipped: 6}, res)
	total = 0
	for _, n := range ep.calls {
		total += n
	}
	require.Equal(t, before, total)
}

func zipEntries(t *testing.T, b []byte) map[string]string {
	zr, err := zipReader(b)
	require.NoError(t, err)
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		body, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		out[f.Name] = string(body)
	}
	return out
}

// blockingEndpoint never answers until its context ends.
type blockingEndpoint struct{ started chan struct{} }

func (b *blockingEndpoint) Predict(ctx context.Context, _ string, _ []byte, _ string) (Response, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return Response{}, ctx.Err()
}

func (b *blockingEndpoint) Retryable(error) bool { return false }

func TestRunChunkStopsWhenTheBatchIsCanceled(t *testing.T) {
	st, bl, b := newBatch(t, []string{"a", "b", "c"})
	ep := &blockingEndpoint{started: make(chan struct{}, 1)}
	a := &Activities{Store: st, Blobs: bl, Endpoint: ep, Poll: 20 * time.Millisecond}
	go func() {
		<-ep.started
		_, _ = st.SetBatchStatus(context.Background(), b.ID, store.BatchCanceled, "")
	}()
	start := time.Now()
	_, err := runChunk(t, a, ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: 3, Concurrency: 2})
	var ce *temporal.CanceledError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Less(t, time.Since(start), 10*time.Second)
	pending, err := st.PendingBatchItems(context.Background(), b.ID, 0, 3)
	require.NoError(t, err)
	require.Len(t, pending, 3, "abandoned items stay pending; none is recorded")
}
