package predictions

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// Service is what the API calls: create, read, list, cancel and wait for
// predictions, and download their outputs. It is safe for concurrent use.
type Service struct {
	Store    *store.Store
	Blobs    blobs.Store
	Temporal client.Client
	// Retention keeps inputs and outputs this long after the end; 0 means
	// DefaultRetention.
	Retention time.Duration
	// MaxRunning caps a user's running predictions; 0 means DefaultMaxRunning.
	MaxRunning int
	// PredictTimeout is the endpoints' predict timeout; a call may take it
	// plus a margin.
	PredictTimeout time.Duration
	// Poll is how often Wait reads the store; 0 means 100 ms.
	Poll time.Duration
	Log  *slog.Logger
}

// CreateInput is a validated prediction request.
type CreateInput struct {
	AlgorithmID string
	OwnerID     string
	// Body and ContentType are what the endpoint's /predict will get.
	Body        []byte
	ContentType string
	// Kind says where the input came from: json, data_uri, url or file.
	Kind           string
	Webhook        string
	WebhookEvents  []string
	IdempotencyKey string // the header's value; "" for none
}

// Endpoint returns the live algorithm named apiName and its endpoint token's
// SHA-256 hex ("" when none): the API authenticates callers against them.
func (s *Service) Endpoint(ctx context.Context, apiName string) (store.Algorithm, string, error) {
	alg, err := s.Store.GetAlgorithmByAPIName(ctx, apiName)
	if err != nil {
		return store.Algorithm{}, "", err
	}
	h, err := s.Store.EndpointTokenHash(ctx, alg.ID)
	return alg, h, err
}

// Create stores the input and the prediction and starts its workflow. With
// an IdempotencyKey, a prediction that already has it is returned (created
// false) and nothing new is stored; its workflow is started if a crash
// stopped the first create before it was. ErrTooManyJobs when the owner has
// MaxRunning predictions running.
func (s *Service) Create(ctx context.Context, in CreateInput) (store.Prediction, bool, error) {
	kh := keyHash(in.IdempotencyKey)
	id := newID()
	if kh != "" {
		id = idempotentID(in.AlgorithmID, kh)
		if p, err := s.Store.GetPrediction(ctx, in.AlgorithmID, id); err == nil {
			return p, false, s.ensureStarted(ctx, p)
		}
	}
	maxRunning := s.MaxRunning
	if maxRunning <= 0 {
		maxRunning = DefaultMaxRunning
	}
	n, err := s.Store.CountRunningPredictions(ctx, in.OwnerID)
	if err != nil {
		return store.Prediction{}, false, err
	}
	if n >= maxRunning {
		return store.Prediction{}, false, fmt.Errorf("%w: %d of %d", ErrTooManyJobs, n, maxRunning)
	}
	// A random name per create, so a concurrent create with the same key
	// never overwrites the winner's input; the loser deletes its own.
	inputKey := blobPrefix(in.AlgorithmID, id) + "/input-" + strings.TrimPrefix(newID(), "p_")
	if err := s.Blobs.Put(ctx, inputKey, bytes.NewReader(in.Body), int64(len(in.Body))); err != nil {
		return store.Prediction{}, false, fmt.Errorf("store the prediction input: %w", err)
	}
	p, created, err := s.Store.CreatePrediction(ctx, store.Prediction{
		ID: id, AlgorithmID: in.AlgorithmID, IdempotencyKey: kh, InputKey: inputKey,
		InputContentType: in.ContentType, InputSize: int64(len(in.Body)), InputKind: in.Kind,
		Webhook: in.Webhook, WebhookEvents: strings.Join(in.WebhookEvents, ","),
	})
	if err != nil || !created {
		_ = s.Blobs.Delete(context.WithoutCancel(ctx), inputKey)
		if err != nil {
			return store.Prediction{}, false, err
		}
		return p, false, s.ensureStarted(ctx, p)
	}
	if err := s.ensureStarted(ctx, p); err != nil {
		// Nothing will run it: say so in the row rather than leave it starting.
		_, _ = s.Store.FinishPrediction(context.WithoutCancel(ctx), p.ID, store.PredictionResult{
			Status: store.PredictionFailed, Error: "the prediction's workflow could not start", Retention: s.retention()})
		return store.Prediction{}, false, err
	}
	return p, true, nil
}

// ensureStarted starts p's workflow unless it exists (running or closed).
func (s *Service) ensureStarted(ctx context.Context, p store.Prediction) error {
	if store.PredictionFinal(p.Status) {
		return nil
	}
	var events []string
	if p.WebhookEvents != "" {
		events = strings.Split(p.WebhookEvents, ",")
	}
	pt := s.PredictTimeout
	if pt <= 0 {
		pt = 60 * time.Second
	}
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: WorkflowID(p.ID), TaskQueue: TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, Prediction, Input{
		ID: p.ID, AlgorithmID: p.AlgorithmID, InputKey: p.InputKey, InputContentType: p.InputContentType,
		Webhook: p.Webhook, WebhookEvents: events, PredictTimeout: pt + time.Minute, Retention: s.retention(),
	})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start prediction workflow %s: %w", p.ID, err)
	}
	return nil
}

func (s *Service) retention() time.Duration {
	if s.Retention > 0 {
		return s.Retention
	}
	return DefaultRetention
}

// Get returns the endpoint's prediction id; ErrNotFound for any other.
func (s *Service) Get(ctx context.Context, algorithmID, id string) (store.Prediction, error) {
	p, err := s.Store.GetPrediction(ctx, algorithmID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Prediction{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return p, err
}

// Wait returns the prediction once it is final or after d, whichever is
// first (it reads the store, so it works whichever process runs the workflow).
func (s *Service) Wait(ctx context.Context, algorithmID, id string, d time.Duration) (store.Prediction, error) {
	poll := s.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	deadline := time.Now().Add(d)
	for {
		p, err := s.Get(ctx, algorithmID, id)
		if err != nil || store.PredictionFinal(p.Status) || !time.Now().Before(deadline) {
			return p, err
		}
		select {
		case <-ctx.Done():
			return p, nil
		case <-time.After(min(poll, time.Until(deadline))):
		}
	}
}

// cursor is List's opaque page token.
type cursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"i"`
}

// ErrBadCursor is a cursor List did not make.
var ErrBadCursor = errors.New("the cursor is not one a list answer gave")

// List returns a page of the endpoint's predictions, newest first, and the
// cursor of the next page ("" at the end).
func (s *Service) List(ctx context.Context, algorithmID, cur string, limit int) ([]store.Prediction, string, error) {
	var page store.PredictionPage
	if cur != "" {
		b, err := base64.RawURLEncoding.DecodeString(cur)
		var c cursor
		if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" {
			return nil, "", ErrBadCursor
		}
		page = store.PredictionPage{CreatedAt: c.T, ID: c.ID}
	}
	ps, err := s.Store.ListPredictions(ctx, algorithmID, page, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(ps) > limit {
		ps = ps[:limit]
		last := ps[len(ps)-1]
		b, _ := json.Marshal(cursor{T: last.CreatedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return ps, next, nil
}

// Cancel ends a running prediction as canceled (recorded at once, so a
// result arriving later is discarded) and cancels its workflow, which
// abandons a predict in flight. A final prediction is returned unchanged.
func (s *Service) Cancel(ctx context.Context, algorithmID, id string) (store.Prediction, error) {
	p, err := s.Get(ctx, algorithmID, id)
	if err != nil || store.PredictionFinal(p.Status) {
		return p, err
	}
	if _, err := s.Store.FinishPrediction(ctx, id, store.PredictionResult{Status: store.PredictionCanceled, Retention: s.retention()}); err != nil {
		return store.Prediction{}, err
	}
	err = s.Temporal.CancelWorkflow(ctx, WorkflowID(id), "")
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return store.Prediction{}, fmt.Errorf("cancel prediction workflow %s: %w", id, err)
	}
	return s.Get(ctx, algorithmID, id)
}

// Logs returns what p's predict printed ("" when nothing, before its end
// and after expiry).
func (s *Service) Logs(ctx context.Context, p store.Prediction) (string, error) {
	return readLogs(ctx, s.Blobs, p)
}

// Output opens a succeeded prediction's output. ErrNoOutput when it has
// none, ErrExpired when retention deleted it.
func (s *Service) Output(ctx context.Context, p store.Prediction) (io.ReadCloser, error) {
	switch {
	case p.ExpiredAt != nil:
		return nil, ErrExpired
	case p.Status != store.PredictionSucceeded || p.OutputKey == "":
		return nil, ErrNoOutput
	}
	rc, err := s.Blobs.Get(ctx, p.OutputKey)
	if errors.Is(err, blobs.ErrNotFound) {
		return nil, ErrExpired
	}
	return rc, err
}

// Sweep deletes the inputs and outputs of predictions whose retention ended
// before now and marks them expired; it returns how many it swept.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for {
		ps, err := s.Store.ExpiredPredictions(ctx, now, 100)
		if err != nil || len(ps) == 0 {
			return n, err
		}
		for _, p := range ps {
			if err := s.Blobs.Delete(ctx, blobPrefix(p.AlgorithmID, p.ID)); err != nil {
				return n, fmt.Errorf("delete prediction %s's blobs: %w", p.ID, err)
			}
			if err := s.Store.MarkPredictionExpired(ctx, p.ID); err != nil {
				return n, err
			}
			n++
		}
	}
}

// RunSweeper calls Sweep every period until ctx ends, logging failures.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log().Error("prediction retention sweep", "error", err)
		} else if n > 0 {
			s.log().Info("prediction retention sweep", "expired", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}
