package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/retryafter"
)

// batchesDir is the agent's folder of batch chunks: batches/<hash of the
// command ID>/journal.
const batchesDir = "batches"

// Defaults of a Batch payload's optional settings.
const (
	defaultPartItems = 500
	defaultPartBytes = 8 << 20
	// partEvery is how long results wait at most for their part: the
	// platform records a part at a time, so this paces the batch's
	// progress (counts, rate, ETA).
	partEvery = 250 * time.Millisecond
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
	// Check reports protocol.ErrCommandDone (wrapped) once the platform
	// ended the command (its batch was canceled); nil while it runs.
	Check(ctx context.Context) error
}

// checkEvery is how often a running chunk asks whether it was canceled: a
// small GET; at a few hundred predicts a second, each wait costs as many.
const checkEvery = 200 * time.Millisecond

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
	cuts, err := openPartCuts(filepath.Join(folder, "parts"), len(j.snapshot()))
	if err != nil {
		return out, fmt.Errorf("batch: %w", err)
	}
	defer cuts.close()
	uploaded := 0 // parts this run uploaded (a re-run uploads again those cut before: the same bytes)
	lastCut := time.Now()
	var upMu sync.Mutex
	upload := func(final bool) error {
		upMu.Lock()
		defer upMu.Unlock()
		ends := j.snapshot()
		for from := cuts.last(); from < len(ends); from = cuts.last() {
			to := nextCut(ends, from, partItems, partBytes)
			if to < 0 {
				if !final && time.Since(lastCut) < partEvery {
					break
				}
				to = len(ends)
			}
			if err := cuts.add(to); err != nil {
				return err
			}
			lastCut = time.Now()
		}
		for ; uploaded < len(cuts.ends); uploaded++ {
			from := 0
			if uploaded > 0 {
				from = cuts.ends[uploaded-1]
			}
			b, err := j.readRange(ends, from, cuts.ends[uploaded])
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
		t := time.NewTicker(partEvery / 2)
		defer t.Stop()
		for {
			select {
			case _, open := <-partReady:
				if !open {
					upDone <- nil
					return
				}
			case <-t.C:
			}
			if err := upload(false); err != nil {
				cancel(err)
				upDone <- err
				for range partReady {
				}
				return
			}
		}
	}()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	report := func() {
		s, f := succeeded.Load(), failed.Load()
		progress(fmt.Sprintf("batch: %d done, %d failed, %d left", s, f, int64(len(in.Items))-s-f))
	}
	go func() {
		defer close(progressDone)
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		lastCheck, lastReport := time.Now(), time.Now()
		for {
			select {
			case <-stopProgress:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if time.Since(lastReport) >= 500*time.Millisecond {
				lastReport = time.Now()
				report()
			}
			if time.Since(lastCheck) >= checkEvery {
				lastCheck = time.Now()
				if err := bio.Check(ctx); errors.Is(err, protocol.ErrCommandDone) || errors.Is(err, protocol.ErrForbidden) || errors.Is(err, protocol.ErrUnknownCommand) {
					cancel(fmt.Errorf("batch: the platform ended the command (its batch was canceled): %w", err))
					return
				}
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
	out.Parts = len(cuts.ends)
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
			if err := retryafter.Sleep(ctx, wait); err != nil {
				return commands.BatchResult{}, err
			}
		}
		url, token, client, err := s.target(ctx)
		if errors.Is(err, errNoAgentToken) {
			return commands.BatchResult{}, err
		}
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
			if err := retryafter.Sleep(ctx, backoff); err != nil {
				return commands.BatchResult{}, err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBatchBody+1))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			s.pause(retryafter.Of(resp.Header))
			continue
		}
		if resp.StatusCode == http.StatusUnauthorized {
			// Not the item's fault: the revision refuses the agent's token.
			// Failing every item would be wrong; the chunk fails instead.
			return commands.BatchResult{}, fmt.Errorf("%w: the live revision answered 401", errNoAgentToken)
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
	if err := in.UnpackItems(); err != nil {
		return in, fmt.Errorf("batch: %w", err)
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

// agentTokenFile holds the agent's own token (agent_batch.go): in the
// agent's folder, never mounted into a sandbox, mode 0600.
const agentTokenFile = "agent-token"

// agentToken returns the agent's own token, making it on first use. It is
// kept across agent restarts because the revisions an agent adopts keep the
// hash their config was written with.
func (a *agentRuntime) agentToken() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	path := filepath.Join(a.dir, agentTokenFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 43 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make the agent's token: %w", err)
	}
	tok := "agt_" + base64.RawURLEncoding.EncodeToString(raw[:])
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the agent's token: %w", err)
	}
	return tok, nil
}

// agentTokenSHA256 is the hash the serve handler puts in each revision's
// config (inferapi.Config.AgentTokenSHA256).
func (a *agentRuntime) agentTokenSHA256() (string, error) {
	tok, err := a.agentToken()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:]), nil
}

// socketsDir is the agent's folder of its revisions' agent sockets
// (inferapi.Config.AgentSocket): in the agent's folder, which no sandbox
// mounts, mode 0700.
const socketsDir = "sockets"

// revisionSocket is the Unix socket path revision's server serves the
// agent on, its folder made. The name is a hash of the revision so any
// revision ID makes a short, safe name; a path too long for a socket
// address is bound and dialed through its folder's descriptor
// (inferapi.ListenUnix, DialUnix).
func (a *agentRuntime) revisionSocket(revision string) (string, error) {
	sum := sha256.Sum256([]byte(revision))
	path, err := filepath.Abs(filepath.Join(a.dir, socketsDir, hex.EncodeToString(sum[:8])+".sock"))
	if err != nil {
		return "", fmt.Errorf("the agent socket's path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("make the agent sockets' folder: %w", err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("make the agent sockets' folder: %w", err)
	}
	return path, nil
}

// batch is KindBatch: the chunk runs against the live revision on loopback
// with the agent's own token, journaling in batches/<command>/ of the
// agent's folder; the input comes from the platform over the command
// channel and the results go back as artifacts (runBatchChunk).
func (a *agentRuntime) batch(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
	in, err := decodeBatch(cmd)
	if err != nil {
		return nil, err
	}
	release := a.lock("batch " + cmd.ID)
	defer release()
	tok, err := a.agentToken()
	if err != nil {
		return nil, err
	}
	folder := batchFolder(a.dir, cmd.ID)
	// Old chunks' folders are pruned beside the chunk, not before it: a
	// server that ran many chunks has as many folders to read, and the
	// endpoint would idle meanwhile. Waited for before the result, so
	// nothing outlives the command.
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		pruneBatchFolders(filepath.Dir(folder), folder, batchKeep, time.Now())
	}()
	t := &liveTarget{a: a, token: tok}
	out, err := runBatchChunk(ctx, folder, in, linkIO{}, t.resolve, progress)
	<-pruned
	if err != nil {
		return nil, err
	}
	return encodeBatchOutput(out)
}

// batchKeep is how long a chunk's folder (its journal: every answer's
// bytes) stays after its last write. A chunk's command is handed out again
// only while it runs (the agent killed or cut off); once its result is in,
// the platform never asks for it again, so the folder is only a re-run's
// memory: kept long enough for an agent cut off for hours, then removed so
// the server's disk does not fill with outputs the platform already has.
const batchKeep = 6 * time.Hour

// pruneBatchFolders removes the chunk folders under dir, but keep, whose
// newest file is older than age at now. Errors are ignored: a folder left
// is tried again at the next chunk.
func pruneBatchFolders(dir, keep string, age time.Duration, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		folder := filepath.Join(dir, e.Name())
		if !e.IsDir() || folder == keep {
			continue
		}
		newest := time.Time{}
		files, _ := os.ReadDir(folder)
		for _, f := range files {
			if fi, err := f.Info(); err == nil && fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		if now.Sub(newest) > age {
			_ = os.RemoveAll(folder)
		}
	}
}

// linkIO is a chunk's input and parts over the command channel.
type linkIO struct{}

func (linkIO) Input(ctx context.Context) ([]byte, error) { return link.DownloadInput(ctx) }
func (linkIO) Upload(ctx context.Context, name string, b []byte) error {
	return link.UploadArtifact(ctx, name, b)
}
func (linkIO) Check(ctx context.Context) error { return link.CheckCommand(ctx) }

// liveTarget resolves the live revision: https on loopback at the
// endpoint's port, pinned to the certificate its config names (the name on
// it is the endpoint's, not 127.0.0.1). The revision is looked up again
// every two seconds so a swap or a renewed certificate is picked up; the
// client (and its kept-alive connections) is kept while the revision, its
// port and its certificate stay the same, so a long chunk does not open new
// TLS connections, nor leave the old ones idle on the endpoint, every two
// seconds.
type liveTarget struct {
	a     *agentRuntime
	token string

	mu     sync.Mutex
	url    string
	client *http.Client
	at     time.Time
	// key says what client was made for (revision, address, certificate).
	key string
}

func (t *liveTarget) resolve(context.Context) (string, string, *http.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client != nil && time.Since(t.at) < 2*time.Second {
		return t.url, t.token, t.client, nil
	}
	st := t.a.sup.Status()
	if st.Serving == nil {
		// Waited for like a refused connection: a swap or restart.
		return "", "", nil, errNoLiveRevision
	}
	b, err := os.ReadFile(filepath.Join(t.a.dir, "revisions", st.Serving.ID, "config.json"))
	if err != nil {
		return "", "", nil, fmt.Errorf("read the live revision's config: %w", err)
	}
	var cfg inferapi.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", "", nil, fmt.Errorf("read the live revision's config: %w", err)
	}
	if cfg.AgentTokenSHA256 == "" {
		return "", "", nil, fmt.Errorf("%w: revision %s was started without the agent's token (by an older agent); a redeploy gives it one", errNoAgentToken, st.Serving.ID)
	}
	if cfg.AgentSocket != "" {
		if fi, err := os.Stat(cfg.AgentSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			url, client := t.socketClient(st.Serving.ID, cfg.AgentSocket)
			t.url, t.client, t.at = url, client, time.Now()
			return t.url, t.token, t.client, nil
		}
		// Not opened (the server could not, or an older binary ignores the
		// field): the TLS port, below.
	}
	_, port, err := net.SplitHostPort(st.Listen)
	if err != nil {
		return "", "", nil, fmt.Errorf("the endpoint's address %q: %w", st.Listen, err)
	}
	url, client, err := t.clientFor(st.Serving.ID, port, cfg.CertFile)
	if err != nil {
		return "", "", nil, err
	}
	t.url, t.client, t.at = url, client, time.Now()
	return t.url, t.token, t.client, nil
}

// clientFor returns the URL and client for revision id on port with
// certFile: the one made last when all three (and the certificate's bytes)
// are the same, else a new one, the old one's idle connections closed.
func (t *liveTarget) clientFor(id, port, certFile string) (string, *http.Client, error) {
	var cert []byte
	if certFile != "" {
		b, err := os.ReadFile(certFile)
		if err != nil {
			return "", nil, fmt.Errorf("read the live revision's certificate: %w", err)
		}
		cert = b
	}
	sum := sha256.Sum256(cert)
	key := id + "\x00" + port + "\x00" + certFile + "\x00" + hex.EncodeToString(sum[:])
	if t.client != nil && key == t.key {
		return t.url, t.client, nil
	}
	client, scheme, err := testClient(certFile)
	if err != nil {
		return "", nil, err
	}
	if tr, ok := client.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 64
		tr.IdleConnTimeout = time.Minute
	}
	if t.client != nil {
		t.client.CloseIdleConnections()
	}
	t.key = key
	return scheme + "://" + net.JoinHostPort("127.0.0.1", port), client, nil
}

// socketClient returns the URL and client for revision id's agent socket
// at path: plain HTTP over the Unix socket (the server's handler checks the
// agent's token there as on its port). The one made last is kept while
// the revision and path stay; a failed dial makes the next call look the
// live revision up again at once rather than after two seconds, since a
// revision's socket closes when it drains (a swap) and the new one has its
// own.
func (t *liveTarget) socketClient(id, path string) (string, *http.Client) {
	key := id + "\x00unix\x00" + path
	if t.client != nil && key == t.key {
		return t.url, t.client
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := inferapi.DialUnix(ctx, path)
			if err != nil {
				t.mu.Lock()
				if t.key == key {
					t.at = time.Time{}
				}
				t.mu.Unlock()
			}
			return c, err
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	if t.client != nil {
		t.client.CloseIdleConnections()
	}
	t.key = key
	// The host names nothing (the dialer ignores it); "revision" reads well
	// in the server's logs.
	return "http://revision", &http.Client{Transport: tr}
}

// errNoAgentToken: the live revision does not accept the agent's token; the
// chunk fails at once (the platform runs it itself).
var errNoAgentToken = errors.New("the live revision does not accept the agent's token")
