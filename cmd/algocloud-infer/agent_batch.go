package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
)

// batchesDir is the agent's folder of batch chunks: batches/<hash of the
// command ID>/journal.
const batchesDir = "batches"

// Defaults of a Batch payload's optional settings.
const (
	defaultPartItems = 500
	defaultPartBytes = 8 << 20
	// maxBatchBody is the largest answer a chunk carries back: a part (one
	// artifact) must hold it whole. A larger output fails its item.
	maxBatchBody = protocol.MaxArtifact - 1<<20
)

// batchIO is how a batch chunk reaches the platform: its input object and
// its result parts (the link's download and UploadArtifact in the agent;
// real files and a real HTTP server in tests).
type batchIO interface {
	Input(ctx context.Context) ([]byte, error)
	Upload(ctx context.Context, name string, data []byte) error
}

// batchTarget is where a chunk sends its predicts: the live revision's base
// URL (https://127.0.0.1:port), a token it accepts and a client that trusts
// its certificate. It is asked again after a call gets no answer (a swap
// or restart may have moved it).
type batchTarget func(ctx context.Context) (url, token string, client *http.Client, err error)

// runBatchChunk runs KindBatch's payload in against target, journaling in
// folder: items the journal holds are not sent again; the others are sent
// Concurrency at a time, each until it has a final answer (429/503 waited
// out for their Retry-After, a call without an answer retried for
// RetryForSeconds; an answered predict is never sent again). Parts are
// uploaded as they fill and the last one at the end; progress gets a line
// of counts about twice a second.
func runBatchChunk(ctx context.Context, folder string, in commands.Batch, bio batchIO, target batchTarget, progress func(...string)) (commands.BatchOutput, error) {
	var out commands.BatchOutput
	if err := commands.CheckBatch(in); err != nil {
		return out, fmt.Errorf("batch: %w", err)
	}
	partItems, partBytes := in.PartItems, in.PartBytes
	if partItems <= 0 {
		partItems = defaultPartItems
	}
	if partBytes <= 0 || partBytes > protocol.MaxArtifact-maxBatchBody {
		partBytes = min(int64(defaultPartBytes), protocol.MaxArtifact-maxBatchBody)
	}
	retryFor := time.Duration(in.RetryForSeconds) * time.Second
	if retryFor <= 0 {
		retryFor = 5 * time.Minute
	}
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return out, fmt.Errorf("batch: %w", err)
	}
	j, done, err := openBatchJournal(filepath.Join(folder, "journal"))
	if err != nil {
		return out, fmt.Errorf("batch: %w", err)
	}
	defer j.close()
	var succeeded, failed atomic.Int64
	journaled := make(map[int]bool, len(done))
	for _, r := range done {
		journaled[r.Index] = true
		if ok(r) {
			succeeded.Add(1)
		} else {
			failed.Add(1)
		}
	}
	var todo []int // positions in in.Items
	for i, it := range in.Items {
		if !journaled[it.Index] {
			todo = append(todo, i)
		}
	}
	if len(done) > 0 {
		progress(fmt.Sprintf("batch: %d items journaled by an earlier run; %d to send", len(done), len(todo)))
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The uploader sends each part once it is complete, behind the senders.
	uploaded := 0
	var upMu sync.Mutex
	upload := func(final bool) error {
		upMu.Lock()
		defer upMu.Unlock()
		ends := j.snapshot()
		parts := batchParts(ends, partItems, partBytes, final)
		for ; uploaded < len(parts); uploaded++ {
			p := parts[uploaded]
			b, err := j.readRange(ends, p[0], p[1])
			if err != nil {
				return err
			}
			if err := bio.Upload(ctx, commands.BatchPartName(uploaded), b); err != nil {
				return fmt.Errorf("batch: upload result part %d: %w", uploaded, err)
			}
		}
		return nil
	}
	partReady := make(chan struct{}, 1)
	upDone := make(chan error, 1)
	go func() {
		for range partReady {
			if err := upload(false); err != nil {
				cancel(err)
				upDone <- err
				for range partReady {
				}
				return
			}
		}
		upDone <- nil
	}()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	report := func() {
		s, f := succeeded.Load(), failed.Load()
		progress(fmt.Sprintf("batch: %d done, %d failed, %d left", s, f, int64(len(in.Items))-s-f))
	}
	go func() {
		defer close(progressDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				report()
			}
		}
	}()

	if len(todo) > 0 {
		input, err := bio.Input(ctx)
		if err != nil {
			close(partReady)
			<-upDone
			close(stopProgress)
			<-progressDone
			return out, fmt.Errorf("batch: download the input: %w", err)
		}
		if int64(len(input)) != in.InputBytes {
			close(partReady)
			<-upDone
			close(stopProgress)
			<-progressDone
			return out, fmt.Errorf("batch: the input is %d bytes, the payload says %d", len(input), in.InputBytes)
		}
		offsets := make([]int64, len(in.Items)+1)
		for i, it := range in.Items {
			offsets[i+1] = offsets[i] + it.Length
		}
		s := &batchSender{target: target, retryFor: retryFor}
		work := make(chan int)
		var wg sync.WaitGroup
		for range min(in.Concurrency, len(todo)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					it := in.Items[i]
					r, err := s.send(ctx, it, input[offsets[i]:offsets[i+1]])
					if err != nil {
						if ctx.Err() == nil {
							cancel(err)
						}
						return
					}
					if _, err := j.append(r); err != nil {
						cancel(err)
						return
					}
					if ok(r) {
						succeeded.Add(1)
					} else {
						failed.Add(1)
					}
					// The uploader looks whether a part filled up; a
					// notice already waiting covers this one too.
					select {
					case partReady <- struct{}{}:
					default:
					}
				}
			}()
		}
	feed:
		for _, i := range todo {
			select {
			case work <- i:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
	}
	close(partReady)
	upErr := <-upDone
	close(stopProgress)
	<-progressDone
	if cause := context.Cause(ctx); cause != nil {
		return out, cause
	}
	if upErr != nil {
		return out, upErr
	}
	if err := upload(true); err != nil {
		return out, err
	}
	report()
	out.Parts = uploaded
	out.Succeeded, out.Failed = int(succeeded.Load()), int(failed.Load())
	out.Items = out.Succeeded + out.Failed
	return out, nil
}

func ok(r commands.BatchResult) bool { return r.HTTPStatus >= 200 && r.HTTPStatus < 300 }

// batchSender sends one chunk's predicts. Every sender pauses after a
// 429/503 until its Retry-After has passed: the revision's queue is full.
type batchSender struct {
	target   batchTarget
	retryFor time.Duration

	mu    sync.Mutex
	until time.Time
}

// send sends one item until it has a final answer. An error means none
// could be had (ctx ended, the target cannot be resolved): the item stays
// unjournaled.
func (s *batchSender) send(ctx context.Context, it commands.BatchItem, body []byte) (commands.BatchResult, error) {
	deadline := time.Now().Add(s.retryFor)
	backoff := 100 * time.Millisecond
	for {
		s.mu.Lock()
		wait := time.Until(s.until)
		s.mu.Unlock()
		if wait > 0 {
			if err := sleepCtx(ctx, wait); err != nil {
				return commands.BatchResult{}, err
			}
		}
		url, token, client, err := s.target(ctx)
		var resp *http.Response
		var answered atomic.Bool
		if err == nil {
			trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { answered.Store(true) }}
			var req *http.Request
			req, err = http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, strings.TrimRight(url, "/")+"/predict", bytes.NewReader(body))
			if err != nil {
				return commands.BatchResult{}, fmt.Errorf("batch: build predict: %w", err)
			}
			req.Header.Set("Content-Type", it.ContentType)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err = client.Do(req)
		}
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return commands.BatchResult{}, context.Cause(ctx)
		}
		if err != nil {
			if answered.Load() {
				// The revision answered and the answer broke off: it saw the
				// request, so this is final like any answer.
				return commands.BatchResult{Index: it.Index, Error: "reading the answer: " + err.Error()}, nil
			}
			if time.Now().After(deadline) {
				return commands.BatchResult{Index: it.Index, Error: "the live revision did not answer: " + err.Error()}, nil
			}
			if err := sleepCtx(ctx, backoff); err != nil {
				return commands.BatchResult{}, err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBatchBody+1))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			s.pause(retryAfterOf(resp.Header))
			continue
		}
		r := commands.BatchResult{Index: it.Index, HTTPStatus: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
		switch {
		case rerr != nil:
			r = commands.BatchResult{Index: it.Index, HTTPStatus: resp.StatusCode, Error: "reading the answer: " + rerr.Error()}
		case len(b) > maxBatchBody:
			r = commands.BatchResult{Index: it.Index, HTTPStatus: resp.StatusCode,
				Error: fmt.Sprintf("the answer is over the %d bytes a batch chunk carries back per item", maxBatchBody)}
		}
		return r, nil
	}
}

func (s *batchSender) pause(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := time.Now().Add(d); t.After(s.until) {
		s.until = t
	}
}

// retryAfterOf reads Retry-After in seconds (1 s when absent or not
// seconds), between 50 ms and a minute.
func retryAfterOf(h http.Header) time.Duration {
	d := time.Second
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	}
	return min(max(d, 50*time.Millisecond), time.Minute)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// batchFolder is a command's journal folder under the agent's folder: named
// by the command ID's hash, so any ID is one safe path segment.
func batchFolder(agentDir, commandID string) string {
	sum := sha256.Sum256([]byte(commandID))
	return filepath.Join(agentDir, batchesDir, hex.EncodeToString(sum[:16]))
}

// decodeBatch reads and checks a KindBatch payload.
func decodeBatch(cmd protocol.Command) (commands.Batch, error) {
	var in commands.Batch
	if err := decodePayload(cmd, &in); err != nil {
		return in, err
	}
	if err := commands.CheckBatch(in); err != nil {
		return in, fmt.Errorf("batch: %w", err)
	}
	return in, nil
}

// encodeBatchOutput is the command's output.
func encodeBatchOutput(out commands.BatchOutput) (json.RawMessage, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return b, nil
}

var errNoLiveRevision = errors.New("no revision serves on this server now")
