package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// A chunk run by the deployment's server agent (docs/batches.md, "On the
// server's agent"): the worker packs the chunk's pending items into one
// input object, issues a commands.KindBatch command (ID from the batch and
// the chunk's bounds, so a retried activity finds it again and nothing is
// sent twice), and records the agent's result parts as they come, one
// store transaction and one blob per part. The agent calls its live
// revision on loopback and journals each answer, so the platform spends
// no HTTP call, file or transaction per item, and a platform killed
// mid-chunk stops nothing on the server.

// AgentHub is what a chunk needs of the agents' command channel;
// *agenthub.Hub implements it.
type AgentHub interface {
	PutInput(ctx context.Context, serverID, commandID string, body []byte) error
	Submit(ctx context.Context, in agenthub.Cmd, heartbeatSeconds int) (store.AgentCommand, error)
	Command(ctx context.Context, id string) (store.AgentCommand, error)
	Artifact(ctx context.Context, serverID, commandID, name string) ([]byte, error)
	DeleteCommandFiles(ctx context.Context, serverID, commandID string) error
	// Changed is closed when this process stores an artifact or the
	// result of the command (a wake-up; the poll stays the fallback).
	Changed(commandID string) (changed <-chan struct{}, stop func())
}

var _ AgentHub = (*agenthub.Hub)(nil)

// AgentStore is the part of the store an agent chunk needs beyond Store;
// *store.Store implements it.
type AgentStore interface {
	BatchAgentServer(ctx context.Context, deploymentID string) (string, error)
	AbandonAgentCommand(ctx context.Context, id, result string) (bool, error)
}

var _ AgentStore = (*store.Store)(nil)

// agentPartItems is how many items a result part holds: the chunk's
// progress (counts, rate, ETA) moves a part at a time.
const agentPartItems = 500

// packInputReaders is how many of a chunk's inputs the worker reads at
// once when packing them for the agent, and packInputWindow how many it
// reads before packing them in order.
const (
	packInputReaders = 4
	packInputWindow  = 256
)

// agentCommandID names a chunk's command.
func agentCommandID(in ChunkInput) string {
	return fmt.Sprintf("batch-%s-%d-%d", in.BatchID, in.From, in.To)
}

// partKey is where a chunk's result part is kept: outputs are ranges of it
// (rangeKey), so a part costs one blob, not one per item.
func partKey(in ChunkInput, n int) string {
	return fmt.Sprintf("batches/%s/parts/%d-%d/%d", in.BatchID, in.From, in.To, n)
}

// rangeKey is an output kept as bytes [off, off+n) of the blob key.
func rangeKey(key string, off, n int64) string {
	return fmt.Sprintf("%s#%d+%d", key, off, n)
}

// OpenOutput opens a kept blob key: a whole blob, or a range of one (an
// output recorded from the agent's result part, an input staged in a pack).
func OpenOutput(ctx context.Context, bl blobs.Store, outputKey string) (io.ReadCloser, error) {
	key, off, n, ok, err := splitRange(outputKey)
	if err != nil {
		return nil, err
	}
	if !ok {
		return bl.Get(ctx, outputKey)
	}
	rc, err := bl.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if s, ok := rc.(io.Seeker); ok {
		_, err = s.Seek(off, io.SeekStart)
	} else {
		_, err = io.CopyN(io.Discard, rc, off)
	}
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("output %q: %w", outputKey, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}, nil
}

// errAgentChunkFailed is an agent's chunk that failed as a command (not
// per item: the live revision refused the agent's token, say): the worker
// then runs the chunk's remaining items itself.
var errAgentChunkFailed = errors.New("the agent's chunk failed")

// agentServer returns the server whose agent runs this chunk, or "".
func (a *Activities) agentServer(ctx context.Context, in ChunkInput) string {
	as, ok := a.Store.(AgentStore)
	if a.Agents == nil || !ok {
		return ""
	}
	srv, err := as.BatchAgentServer(ctx, in.DeploymentID)
	if err != nil {
		a.logWarn("no agent server for the chunk; the worker runs it", in, err)
		return ""
	}
	if srv != "" && a.stillGone(ctx, srv) { // agentwait.go
		return ""
	}
	return srv
}

func (a *Activities) logWarn(msg string, in ChunkInput, err error) {
	if a.Log != nil {
		a.Log.Warn(msg, "batch", in.BatchID, "from", in.From, "to", in.To, "error", err)
	}
}

// runOnAgent runs the chunk on server's agent and records its results. It
// answers errAgentChunkFailed (wrapped) when the worker should run what is
// left itself.
func (a *Activities) runOnAgent(ctx context.Context, in ChunkInput, server string, items []store.BatchItem) (ChunkResult, error) {
	var res ChunkResult
	id := agentCommandID(in)
	cur, err := a.Agents.Command(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if cur, err = a.issueOnAgent(ctx, in, server, id, items, &res); err != nil {
			return res, err
		}
		if cur.ID == "" { // nothing left to send: every item failed at reading
			return res, nil
		}
	case err != nil:
		return res, fmt.Errorf("look up the chunk's agent command: %w", err)
	}
	// Wait for the parts, recording each as it comes. The hub wakes the
	// loop when it stores a part or the result in this process (dev, or a
	// worker that also serves the API); the tick is the fallback for an
	// API in another process, and paces the cancel and liveness looks.
	// Faster than the worker path's cancel poll: without the wake-up, the
	// last part and the result wait for this tick with the endpoint idle;
	// a look is a store read and a blob stat.
	poll := a.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	next := 0
	watch := a.newAgentWatch(in, server) // agentwait.go: an agent gone for good
	stopWatching := func() {}
	defer func() { stopWatching() }()
	for {
		// Taken before looking: an upload after the look still wakes us.
		var changed <-chan struct{}
		changed, stopWatching = a.Agents.Changed(id)
		// Parts first, then the state: a result is posted after its last
		// part, so a done command's parts are all there.
		for {
			b, err := a.Agents.Artifact(ctx, server, id, commands.BatchPartName(next))
			if errors.Is(err, blobs.ErrNotFound) {
				break
			}
			if err != nil {
				return res, fmt.Errorf("read result part %d of %s: %w", next, id, err)
			}
			if err := a.recordPart(ctx, in, next, b, &res); err != nil {
				return res, err
			}
			next++
		}
		activity.RecordHeartbeat(ctx, res)
		if b, err := a.Store.BatchByID(ctx, in.BatchID); err == nil && b.Finished() {
			// Canceled: end the command, which the agent hears within a
			// second (its input check) and stops.
			if as, ok := a.Store.(AgentStore); ok {
				if _, err := as.AbandonAgentCommand(context.WithoutCancel(ctx), id, `{"ok":false,"error":"the batch was canceled"}`); err != nil {
					a.logWarn("agent chunk not abandoned", in, err)
				}
			}
			return res, temporal.NewCanceledError("batch canceled")
		}
		c, err := a.Agents.Command(ctx, id)
		if err != nil {
			return res, fmt.Errorf("look up the chunk's agent command: %w", err)
		}
		if c.State == store.AgentDone {
			out, err := agenthub.Result(c)
			if err != nil {
				return res, fmt.Errorf("%w: %w", errAgentChunkFailed, err)
			}
			var bo commands.BatchOutput
			if err := json.Unmarshal(out, &bo); err != nil {
				return res, fmt.Errorf("%w: its output: %w", errAgentChunkFailed, err)
			}
			for ; next < bo.Parts; next++ {
				b, err := a.Agents.Artifact(ctx, server, id, commands.BatchPartName(next))
				if err != nil {
					return res, fmt.Errorf("read result part %d of %s: %w", next, id, err)
				}
				if err := a.recordPart(ctx, in, next, b, &res); err != nil {
					return res, err
				}
			}
			// Recorded under the batch's keys: the channel's copies go.
			if err := a.Agents.DeleteCommandFiles(ctx, server, id); err != nil {
				a.logWarn("agent chunk's files not deleted", in, err)
			}
			return res, nil
		}
		if why := watch.gone(ctx, time.Now()); why != "" {
			return res, a.leaveAgent(ctx, in, server, id, next, &res, why)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-t.C:
		case <-changed:
		}
	}
}

// issueOnAgent packs the pending items' inputs (an item whose input cannot
// be read fails here, as on the worker's path), stores them as the
// command's input and issues the command. A zero command means nothing was
// left to send.
func (a *Activities) issueOnAgent(ctx context.Context, in ChunkInput, server, id string, items []store.BatchItem, res *ChunkResult) (store.AgentCommand, error) {
	var packed bytes.Buffer
	payload := commands.Batch{Concurrency: min(max(1, in.Concurrency), MaxConcurrency), PartItems: agentPartItems}
	if s := a.RetryFor; s > 0 {
		payload.RetryForSeconds = max(1, int(s/time.Second))
	}
	var failed []store.IndexedResult
	// The inputs are read a window at a time, packInputReaders at once:
	// reading them is the endpoint's idle time before the agent's first
	// predict (a blob read is a file opened and read, about 2,000 of them
	// for a chunk of small images), and the endpoint's core is free then.
	// A window bounds what is held beside the packed bytes.
	type read struct {
		body     []byte
		ct, fail string
		err      error
	}
	packs := &packCache{blobs: a.Blobs} // staged archives: a few packs for the whole chunk
	window := make([]read, packInputWindow)
	for from := 0; from < len(items); from += packInputWindow {
		batch := items[from:min(from+packInputWindow, len(items))]
		packs.keepOnly(batch)
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(packInputReaders, len(batch)) {
			wg.Go(func() {
				for i := range next {
					r := &window[i]
					r.body, r.ct, r.fail, r.err = a.inputFrom(ctx, in.BatchID, batch[i], packs)
				}
			})
		}
		for i := range batch {
			next <- i
		}
		close(next)
		wg.Wait()
		for i, it := range batch {
			r := window[i]
			window[i] = read{}
			if r.err != nil {
				return store.AgentCommand{}, r.err
			}
			if r.fail != "" {
				failed = append(failed, store.IndexedResult{Index: it.Index, ItemResult: store.ItemResult{Status: store.ItemFailed, Error: r.fail}})
				continue
			}
			if packed.Len()+len(r.body) > protocol.MaxInput {
				return store.AgentCommand{}, fmt.Errorf("%w: the chunk's inputs are over %d bytes", errAgentChunkFailed, protocol.MaxInput)
			}
			packed.Write(r.body)
			payload.Items = append(payload.Items, commands.BatchItem{Index: it.Index, ContentType: r.ct, Length: int64(len(r.body))})
		}
	}
	payload.InputBytes = int64(packed.Len())
	if len(failed) > 0 {
		done, f, err := a.Store.FinishBatchItems(ctx, in.BatchID, failed)
		if err != nil {
			return store.AgentCommand{}, fmt.Errorf("record the items whose input cannot be read: %w", err)
		}
		res.Succeeded += done
		res.Failed += f
	}
	if len(payload.Items) == 0 {
		return store.AgentCommand{}, nil
	}
	if err := payload.PackItems(); err != nil {
		return store.AgentCommand{}, err
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return store.AgentCommand{}, err
	}
	if err := a.Agents.PutInput(ctx, server, id, packed.Bytes()); err != nil {
		return store.AgentCommand{}, err
	}
	return a.Agents.Submit(ctx, agenthub.Cmd{Server: server, ID: id, Kind: commands.KindBatch, Payload: b}, 3)
}

// recordPart keeps part n: for a batch whose outputs go to the blob store,
// the part as one blob and each output as a range of it; for an S3 output,
// each output written as on the worker's path. Its results are recorded in
// one transaction (items recorded before are skipped by the store).
func (a *Activities) recordPart(ctx context.Context, in ChunkInput, n int, part []byte, res *ChunkResult) error {
	recs, offs, err := decodePart(part)
	if err != nil {
		return fmt.Errorf("result part %d of chunk %d-%d: %w", n, in.From, in.To, err)
	}
	spec, err := a.s3Of(ctx, in.BatchID)
	if err != nil {
		return err
	}
	key := partKey(in, n)
	if spec.Output == nil {
		if err := a.Blobs.Put(ctx, key, bytes.NewReader(part), int64(len(part))); err != nil {
			return fmt.Errorf("store result part %d: %w", n, err)
		}
	}
	rs := make([]store.IndexedResult, 0, len(recs))
	for i, r := range recs {
		var ir store.ItemResult
		switch {
		case r.HTTPStatus >= 200 && r.HTTPStatus < 300 && r.Error == "":
			ir = store.ItemResult{Status: store.ItemSucceeded, HTTPStatus: r.HTTPStatus, ContentType: r.ContentType,
				OutputKey: rangeKey(key, offs[i], int64(len(r.Body)))}
			if spec.Output != nil {
				it := store.BatchItem{Index: r.Index}
				if items, err := a.Store.BatchItems(ctx, in.BatchID, "", r.Index, 1); err == nil && len(items) == 1 {
					it = items[0]
				}
				okey, fail, err := a.storeOutput(ctx, in.BatchID, it, Response{Status: r.HTTPStatus, ContentType: r.ContentType, Body: r.Body})
				if err != nil {
					return err
				}
				ir.OutputKey = okey
				if fail != "" {
					ir = store.ItemResult{Status: store.ItemFailed, HTTPStatus: r.HTTPStatus, Error: fail}
				}
			}
		case r.HTTPStatus == 0 || r.Error != "":
			ir = store.ItemResult{Status: store.ItemFailed, HTTPStatus: r.HTTPStatus, Error: r.Error}
		default:
			ir = store.ItemResult{Status: store.ItemFailed, HTTPStatus: r.HTTPStatus, Error: answerError(Response{Status: r.HTTPStatus, Body: r.Body})}
		}
		rs = append(rs, store.IndexedResult{Index: r.Index, ItemResult: ir})
	}
	done, failed, err := a.Store.FinishBatchItems(context.WithoutCancel(ctx), in.BatchID, rs)
	if err != nil {
		return fmt.Errorf("record result part %d: %w", n, err)
	}
	res.Succeeded += done
	res.Failed += failed
	return nil
}

// decodePart reads a part's records and, for each, its body's offset in
// the part (the body is a record's last field, before its 4-byte CRC).
func decodePart(part []byte) ([]commands.BatchResult, []int64, error) {
	br := bufio.NewReader(bytes.NewReader(part))
	var recs []commands.BatchResult
	var offs []int64
	var pos int64
	for {
		r, n, err := commands.ReadBatchRecord(br)
		if err == io.EOF {
			return recs, offs, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", len(recs), err)
		}
		pos += int64(n)
		recs = append(recs, r)
		offs = append(offs, pos-4-int64(len(r.Body)))
	}
}
