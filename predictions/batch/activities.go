package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/retryafter"
	"github.com/algocloud/algocloud/store"
)

// Store is what the activities and the Service need of the metadata store;
// *store.Store implements it. Safe for concurrent use.
type Store interface {
	CreateBatch(ctx context.Context, b store.Batch, items []store.BatchItem) error
	GetBatch(ctx context.Context, algorithmID, id string) (store.Batch, error)
	BatchByID(ctx context.Context, id string) (store.Batch, error)
	ListBatches(ctx context.Context, algorithmID string, after store.BatchPage, limit int) ([]store.Batch, error)
	CountActiveBatches(ctx context.Context, ownerID string) (int, error)
	SetBatchStatus(ctx context.Context, id, status, errMsg string) (bool, error)
	BatchItems(ctx context.Context, batchID, status string, from, limit int) ([]store.BatchItem, error)
	PendingBatchItems(ctx context.Context, batchID string, from, to int) ([]store.BatchItem, error)
	FinishBatchItem(ctx context.Context, batchID string, idx int, r store.ItemResult) (bool, error)
	FinishBatchItems(ctx context.Context, batchID string, rs []store.IndexedResult) (done, failed int, err error)
	// GetAlgorithmByID names a batch's endpoint in its webhook payload.
	GetAlgorithmByID(ctx context.Context, id string) (store.Algorithm, error)
	BatchS3Sealed(ctx context.Context, id string) ([]byte, error)
	ClearBatchS3(ctx context.Context, id, note string) error
}

var _ Store = (*store.Store)(nil)

// Response is one answer of an endpoint's /predict.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	Header      http.Header
}

// Endpoint calls a deployment's /predict once. Implementations resolve the
// endpoint's address and credential at call time and are safe for
// concurrent use. An error means no answer came; Retryable says whether
// the predict certainly did not run (connection refused, reset before any
// answer) and may be sent again.
type Endpoint interface {
	Predict(ctx context.Context, deploymentID string, body []byte, contentType string) (Response, error)
	Retryable(err error) bool
}

// Fetcher downloads a URL item under the platform's URL policy.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string) ([]byte, string, error)
}

// Activities are the Batch workflow's activities. Register the struct.
type Activities struct {
	Store    Store
	Blobs    blobs.Store
	Endpoint Endpoint
	// URLs fetches URL items; nil fails them.
	URLs Fetcher
	Log  *slog.Logger
	// RetryFor bounds how long an item is retried while the endpoint is
	// unreachable (a restart); 0 is 5 minutes. 429/503 answers are waited
	// out whatever it is.
	RetryFor time.Duration
	// Poll is how often a chunk checks the store for a cancel and
	// heartbeats; 0 is 200 ms.
	Poll time.Duration
	// APIBaseURL (http://host:port) makes the urls of webhook payloads
	// absolute; empty leaves them relative to the platform API.
	APIBaseURL string
	// S3 reads S3 inputs and writes S3 outputs with the user's
	// credentials, which CredentialsKey opens; nil fails S3 items.
	S3             S3
	CredentialsKey []byte
	// MaxItemBytes bounds an S3 input object; 0 is DefaultLimits'.
	MaxItemBytes int64
	// Agents, when set, runs a chunk on the deployment's server agent when
	// it has one (agentchunk.go); nil: the worker sends every item itself.
	Agents AgentHub
	// AgentSilence is how long a chunk's agent may stay silent before the
	// worker abandons its command and runs what is left itself
	// (agentwait.go); 0 is DefaultAgentSilence.
	AgentSilence time.Duration

	s3Cache s3Cache
	// goneAgents: server ID → when this worker took a chunk back from its
	// silent agent (agentwait.go).
	goneAgents sync.Map
}

// Keys in the blob store.
func inputKey(batchID string, idx int) string  { return fmt.Sprintf("batches/%s/in/%d", batchID, idx) }
func outputKey(batchID string, idx int) string { return fmt.Sprintf("batches/%s/out/%d", batchID, idx) }

// BlobPrefix is where a batch's blobs live (inputs, outputs).
func BlobPrefix(batchID string) string { return "batches/" + batchID }

// MarkBatch records the batch's status; an ended batch keeps its status.
// At an end state it also finishes an S3 output (errors.jsonl and
// manifest.json) and removes the batch's S3 credentials: done here, in the
// activity, so that running workflows see no new command.
func (a *Activities) MarkBatch(ctx context.Context, in MarkInput) error {
	if _, err := a.Store.SetBatchStatus(ctx, in.BatchID, in.Status, in.Error); err != nil {
		return err
	}
	if in.Status != store.BatchRunning && in.Status != store.BatchQueued {
		return a.finishS3(ctx, in.BatchID)
	}
	return nil
}

// errBatchCanceled stops a chunk whose batch was canceled in the store.
var errBatchCanceled = errors.New("batch canceled")

// RunChunk sends items [From, To) that have no recorded result through the
// endpoint, Concurrency at a time, and records each result once. A 429 or
// 503 answer pauses every sender of the chunk for its Retry-After and sends
// the item again; so does an unreachable endpoint, for up to RetryFor. Any
// other answer is final: 2xx succeeds, the rest fails the item with the
// answer as its error. A canceled batch stops it at once, abandoning the
// items in flight (they stay pending).
//
// Only the predict itself holds one of the Concurrency slots: inputs are
// read ahead and outputs stored and recorded behind it, results in groups
// (those that arrived while the last transaction ran, up to 64), so the
// endpoint is kept as busy as a client loop at the same concurrency would
// keep it. A crash loses the results not yet recorded (at most the requests
// in flight, the outputs being stored and one group): those items are sent
// again.
func (a *Activities) RunChunk(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	var res ChunkResult
	items, err := a.Store.PendingBatchItems(ctx, in.BatchID, in.From, in.To)
	if err != nil {
		return res, err
	}
	res.Skipped = (in.To - in.From) - len(items)
	srv := a.agentServer(ctx, in)
	if srv == "" && a.Agents != nil && len(items) > 0 {
		// A command issued for this chunk already (Service.Create's first
		// chunk, by an API that thought the agent alive) is watched where it
		// went, never run beside: runOnAgent takes it back if its agent is gone.
		if c, err := a.Agents.Command(ctx, agentCommandID(in)); err == nil {
			srv = c.ServerID
		}
	}
	if srv != "" && len(items) > 0 {
		r, err := a.runOnAgent(ctx, in, srv, items)
		r.Skipped = res.Skipped
		if !errors.Is(err, errAgentChunkFailed) {
			return r, err
		}
		// Not the items' fault (the live revision refuses the agent's
		// token, the inputs are too large to pack): the worker sends
		// what is left, as for a deployment without an agent.
		a.logWarn("the agent's chunk failed; the worker runs what is left", in, err)
		if items, err = a.Store.PendingBatchItems(ctx, in.BatchID, in.From, in.To); err != nil {
			return res, err
		}
	}
	poll := a.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var succeeded, failed atomic.Int64
	st := &chunkStats{start: time.Now()}
	defer a.logStats(in, st)
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			activity.RecordHeartbeat(ctx, ChunkResult{Succeeded: int(succeeded.Load()), Failed: int(failed.Load())})
			if b, err := a.Store.BatchByID(ctx, in.BatchID); err == nil && b.Finished() {
				cancel(errBatchCanceled)
				return
			}
		}
	}()

	var errOnce sync.Once
	var firstErr error
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel(err) })
	}
	results := make(chan store.IndexedResult, 64)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		a.record(ctx, in.BatchID, results, st, &succeeded, &failed, fail, func() { cancel(errBatchCanceled) })
	}()

	g := &gate{}
	conc := max(1, in.Concurrency)
	send := make(chan struct{}, conc)
	ahead := make(chan struct{}, 2*conc) // items read and not yet sent
	var wg sync.WaitGroup
	for _, it := range items {
		select {
		case ahead <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(it store.BatchItem) {
			defer wg.Done()
			r, err := a.item(ctx, g, st, send, ahead, in, it)
			if err != nil {
				if ctx.Err() == nil {
					fail(err)
				}
				return
			}
			select {
			case results <- store.IndexedResult{Index: it.Index, ItemResult: r}:
			case <-ctx.Done():
			}
		}(it)
	}
	wg.Wait()
	close(results)
	<-recorded
	close(stopWatch)
	<-watchDone
	res.Succeeded, res.Failed = int(succeeded.Load()), int(failed.Load())
	if errors.Is(context.Cause(ctx), errBatchCanceled) {
		return res, temporal.NewCanceledError("batch canceled")
	}
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// chunkStats are a chunk's timing counters, summed over its items (so
// with Concurrency senders the sums exceed the chunk's time): what
// docs/benchmarks.md's batch figures were profiled with, logged at debug
// level when the chunk ends.
type chunkStats struct {
	start                      time.Time
	read, predict, put, record atomic.Int64 // nanoseconds
	groups                     atomic.Int64 // store transactions
}

func (a *Activities) logStats(in ChunkInput, st *chunkStats) {
	if a.Log == nil {
		return
	}
	ms := func(v *atomic.Int64) float64 { return float64(v.Load()) / 1e6 }
	a.Log.Debug("batch chunk done", "batch", in.BatchID, "from", in.From, "to", in.To,
		"ms", float64(time.Since(st.start))/1e6, "read_ms", ms(&st.read), "predict_ms", ms(&st.predict),
		"put_ms", ms(&st.put), "record_ms", ms(&st.record), "transactions", st.groups.Load())
}

// maxGroup bounds the results recorded in one transaction.
const maxGroup = 64

// record writes results in groups until results is closed. A group the
// store does not take whole (recorded before, or the batch ended) makes it
// check the batch, and call canceled when it ended.
func (a *Activities) record(ctx context.Context, batchID string, results <-chan store.IndexedResult, st *chunkStats,
	succeeded, failed *atomic.Int64, fail func(error), canceled func()) {
	var group []store.IndexedResult
	flush := func() {
		if len(group) == 0 {
			return
		}
		// Without ctx's cancellation: results in hand are recorded even
		// while the chunk stops (unless the batch itself ended).
		t0 := time.Now()
		done, failedN, err := a.Store.FinishBatchItems(context.WithoutCancel(ctx), batchID, group)
		st.record.Add(int64(time.Since(t0)))
		st.groups.Add(1)
		if err != nil {
			fail(err)
			group = group[:0]
			return
		}
		succeeded.Add(int64(done))
		failed.Add(int64(failedN))
		if done+failedN < len(group) {
			if b, err := a.Store.BatchByID(context.WithoutCancel(ctx), batchID); err == nil && b.Finished() {
				canceled()
			}
		}
		group = group[:0]
	}
	// Record as soon as a result comes, taking whatever else is waiting
	// with it: results group by themselves while a transaction runs, and
	// none waits for a timer (what is unrecorded when a worker dies is
	// what gets sent again).
	for r := range results {
		group = append(group, r)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-results:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		flush()
	}
}

// item does one item and returns its result; an error means it could not
// be decided (the context ended, the store failed) and stays pending.
func (a *Activities) item(ctx context.Context, g *gate, st *chunkStats, send, ahead chan struct{}, in ChunkInput, it store.BatchItem) (store.ItemResult, error) {
	t0 := time.Now()
	body, ct, fail, err := a.input(ctx, in.BatchID, it)
	st.read.Add(int64(time.Since(t0)))
	if err != nil || fail != "" {
		<-ahead
		return store.ItemResult{Status: store.ItemFailed, Error: fail}, err
	}
	select {
	case send <- struct{}{}:
		<-ahead
	case <-ctx.Done():
		<-ahead
		return store.ItemResult{}, context.Cause(ctx)
	}
	t0 = time.Now()
	resp, err := a.predict(ctx, g, in, body, ct)
	st.predict.Add(int64(time.Since(t0)))
	<-send
	if err != nil {
		return store.ItemResult{}, err
	}
	if resp.Status >= 200 && resp.Status < 300 {
		t0 = time.Now()
		key, fail, err := a.storeOutput(ctx, in.BatchID, it, resp)
		st.put.Add(int64(time.Since(t0)))
		if err != nil {
			return store.ItemResult{}, err
		}
		if fail != "" {
			return store.ItemResult{Status: store.ItemFailed, HTTPStatus: resp.Status, Error: fail}, nil
		}
		return store.ItemResult{Status: store.ItemSucceeded, HTTPStatus: resp.Status, OutputKey: key, ContentType: resp.ContentType}, nil
	}
	if resp.Status == 0 {
		return store.ItemResult{Status: store.ItemFailed, Error: string(resp.Body)}, nil
	}
	return store.ItemResult{Status: store.ItemFailed, HTTPStatus: resp.Status, Error: answerError(resp)}, nil
}

// predict sends one item until it has a final answer: 429/503 are waited
// out (every sender of the chunk pauses), an unreachable endpoint is retried
// for RetryFor. A Response with Status 0 is a final failure without an
// answer, its Body the reason.
func (a *Activities) predict(ctx context.Context, g *gate, in ChunkInput, body []byte, ct string) (Response, error) {
	retryFor := a.RetryFor
	if retryFor <= 0 {
		retryFor = 5 * time.Minute
	}
	deadline := time.Now().Add(retryFor)
	backoff := 200 * time.Millisecond
	for {
		if err := g.wait(ctx); err != nil {
			return Response{}, err
		}
		resp, err := a.Endpoint.Predict(ctx, in.DeploymentID, body, ct)
		if ctx.Err() != nil {
			return Response{}, context.Cause(ctx)
		}
		if err != nil {
			if !a.Endpoint.Retryable(err) || time.Now().After(deadline) {
				return Response{Body: []byte("call the endpoint: " + err.Error())}, nil
			}
			if err := retryafter.Sleep(ctx, backoff); err != nil {
				return Response{}, err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable {
			g.pause(retryafter.Of(resp.Header))
			continue
		}
		return resp, nil
	}
}

// input reads an item's bytes: its blob, or its URL. fail is set when the
// item fails for good (a URL that cannot be fetched, a blob gone).
func (a *Activities) input(ctx context.Context, batchID string, it store.BatchItem) (body []byte, ct, fail string, err error) {
	return a.inputFrom(ctx, batchID, it, nil)
}

// inputFrom is input with the chunk's packs read through packs (nil: each
// range read from its pack's blob on its own).
func (a *Activities) inputFrom(ctx context.Context, batchID string, it store.BatchItem, packs *packCache) (body []byte, ct, fail string, err error) {
	if strings.HasPrefix(it.Input, s3ItemPrefix) {
		return a.s3Input(ctx, batchID, it)
	}
	if strings.HasPrefix(it.Input, "http://") || strings.HasPrefix(it.Input, "https://") {
		if a.URLs == nil {
			return nil, "", "this worker fetches no URLs", nil
		}
		b, ct, err := a.URLs.Fetch(ctx, it.Input)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", "", ctx.Err()
			}
			return nil, "", "fetch the URL: " + err.Error(), nil
		}
		return b, ct, "", nil
	}
	const gone = "the item's input is gone from the blob store"
	key, off, n, isRange, err := splitRange(it.Input)
	if err != nil {
		return nil, "", "the item's input: " + err.Error(), nil
	}
	if isRange && packs != nil {
		b, err := packs.rangeOf(ctx, key, off, n)
		switch {
		case errors.Is(err, blobs.ErrNotFound):
			return nil, "", gone, nil
		case errors.Is(err, errOutsidePack):
			return nil, "", "the item's input: " + err.Error(), nil
		case err != nil:
			return nil, "", "", fmt.Errorf("get input of item %d: %w", it.Index, err)
		}
		return b, contentType(it.Name, b), "", nil
	}
	rc, err := OpenOutput(ctx, a.Blobs, it.Input) // a blob, or a range of a pack
	if errors.Is(err, blobs.ErrNotFound) {
		return nil, "", gone, nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("get input of item %d: %w", it.Index, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", "", fmt.Errorf("read input of item %d: %w", it.Index, err)
	}
	if isRange && int64(len(b)) != n {
		return nil, "", fmt.Sprintf("the item's input: its pack %s ends before byte %d", key, off+n), nil
	}
	return b, contentType(it.Name, b), "", nil
}

// contentType is what /predict is told an archive member is: sniffed, since
// the endpoint decides by its own input type anyway (images by their bytes).
func contentType(name string, b []byte) string {
	switch {
	case strings.HasSuffix(strings.ToLower(name), ".json"):
		return "application/json"
	case strings.HasSuffix(strings.ToLower(name), ".npy"):
		return "application/octet-stream"
	}
	ct := http.DetectContentType(b)
	if strings.HasPrefix(ct, "image/") {
		return ct
	}
	return "application/octet-stream"
}

// answerError is an item's error from a final non-2xx answer: the
// endpoint's JSON error body (it names the code and carries a traceback)
// or its status line.
func answerError(r Response) string {
	msg := strings.TrimSpace(string(r.Body))
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	if msg == "" {
		msg = http.StatusText(r.Status)
	}
	return fmt.Sprintf("the endpoint answered %d: %s", r.Status, msg)
}

// gate holds every sender of a chunk back after a 429/503 until the
// endpoint's Retry-After has passed: the endpoint's queue is full, and
// sending more would only be refused again.
type gate struct {
	mu    sync.Mutex
	until time.Time
}

func (g *gate) pause(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := time.Now().Add(d); t.After(g.until) {
		g.until = t
	}
}

func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	d := time.Until(g.until)
	g.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	return retryafter.Sleep(ctx, d)
}
