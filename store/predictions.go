package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Prediction statuses. The first two are running; the last three are final
// and never change again (FinishPrediction only moves a running one).
const (
	PredictionStarting   = "starting"
	PredictionProcessing = "processing"
	PredictionSucceeded  = "succeeded"
	PredictionFailed     = "failed"
	PredictionCanceled   = "canceled"
)

// PredictionFinal reports whether status is one a prediction ends in.
func PredictionFinal(status string) bool {
	return status == PredictionSucceeded || status == PredictionFailed || status == PredictionCanceled
}

// Prediction is one async prediction (package predictions owns its meaning;
// the store keeps its row so reads need neither Temporal nor the blobs).
type Prediction struct {
	ID                string
	AlgorithmID       string
	IdempotencyKey    string // SHA-256 hex of the client's key; "" when none
	Status            string
	InputKey          string // blob key of the input
	InputContentType  string
	InputSize         int64
	InputKind         string // json, data_uri, url, file
	OutputKey         string // blob key of the output; "" before success
	OutputContentType string
	OutputSize        int64
	OutputJSON        []byte // the output itself when small JSON
	Error             string
	Traceback         string
	Webhook           string
	WebhookEvents     string // comma-separated filter
	PredictTime       *time.Duration
	CreatedAt         time.Time
	StartedAt         *time.Time
	CompletedAt       *time.Time
	ExpiresAt         *time.Time
	ExpiredAt         *time.Time // set when the sweep deleted the input and output
}

type predictionRow struct {
	ID                string         `db:"id"`
	AlgorithmID       string         `db:"algorithm_id"`
	IdempotencyKey    string         `db:"idempotency_key"`
	Status            string         `db:"status"`
	InputKey          string         `db:"input_key"`
	InputContentType  string         `db:"input_content_type"`
	InputSize         int64          `db:"input_size"`
	InputKind         string         `db:"input_kind"`
	OutputKey         string         `db:"output_key"`
	OutputContentType string         `db:"output_content_type"`
	OutputSize        int64          `db:"output_size"`
	OutputJSON        sql.NullString `db:"output_json"`
	Error             string         `db:"error_message"`
	Traceback         string         `db:"error_traceback"`
	Webhook           string         `db:"webhook"`
	WebhookEvents     string         `db:"webhook_events"`
	PredictMS         sql.NullInt64  `db:"predict_ms"`
	CreatedAt         dbTime         `db:"created_at"`
	StartedAt         *dbTime        `db:"started_at"`
	CompletedAt       *dbTime        `db:"completed_at"`
	ExpiresAt         *dbTime        `db:"expires_at"`
	ExpiredAt         *dbTime        `db:"expired_at"`
}

const predictionColumns = `id, algorithm_id, idempotency_key, status, input_key, input_content_type,
	input_size, input_kind, output_key, output_content_type, output_size, output_json, error_message,
	error_traceback, webhook, webhook_events, predict_ms, created_at, started_at, completed_at,
	expires_at, expired_at`

func (r predictionRow) prediction() Prediction {
	p := Prediction{
		ID: r.ID, AlgorithmID: r.AlgorithmID, IdempotencyKey: r.IdempotencyKey, Status: r.Status,
		InputKey: r.InputKey, InputContentType: r.InputContentType, InputSize: r.InputSize, InputKind: r.InputKind,
		OutputKey: r.OutputKey, OutputContentType: r.OutputContentType, OutputSize: r.OutputSize,
		Error: r.Error, Traceback: r.Traceback, Webhook: r.Webhook, WebhookEvents: r.WebhookEvents,
		CreatedAt: time.Time(r.CreatedAt), StartedAt: r.StartedAt.ptr(), CompletedAt: r.CompletedAt.ptr(),
		ExpiresAt: r.ExpiresAt.ptr(), ExpiredAt: r.ExpiredAt.ptr(),
	}
	if r.OutputJSON.Valid {
		p.OutputJSON = []byte(r.OutputJSON.String)
	}
	if r.PredictMS.Valid {
		d := time.Duration(r.PredictMS.Int64) * time.Millisecond
		p.PredictTime = &d
	}
	return p
}

// CreatePrediction stores a new prediction in status starting. When another
// prediction of the same algorithm has the same IdempotencyKey, nothing is
// stored and that one is returned with created false: two concurrent creates
// with one key get one prediction. An unknown algorithm gives ErrNotFound.
func (s *Store) CreatePrediction(ctx context.Context, p Prediction) (Prediction, bool, error) {
	if p.ID == "" || p.AlgorithmID == "" {
		return Prediction{}, false, errors.New("create prediction: empty ID or algorithm")
	}
	p.Status = PredictionStarting
	p.CreatedAt = s.now()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO predictions
		(id, algorithm_id, idempotency_key, status, input_key, input_content_type, input_size, input_kind,
		 webhook, webhook_events, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		p.ID, p.AlgorithmID, p.IdempotencyKey, p.Status, p.InputKey, p.InputContentType, p.InputSize, p.InputKind,
		p.Webhook, p.WebhookEvents, dbTime(p.CreatedAt))
	switch classify(err) {
	case uniqueViolation, primaryKeyViolation:
		if p.IdempotencyKey == "" {
			return Prediction{}, false, fmt.Errorf("create prediction: %w: id %q exists", ErrConflict, p.ID)
		}
		var r predictionRow
		if err := s.db.GetContext(ctx, &r, s.q(`SELECT `+predictionColumns+` FROM predictions
			WHERE algorithm_id = ? AND idempotency_key = ?`), p.AlgorithmID, p.IdempotencyKey); err != nil {
			return Prediction{}, false, fmt.Errorf("create prediction: read the one with the same idempotency key: %w", err)
		}
		return r.prediction(), false, nil
	case foreignKeyViolation:
		return Prediction{}, false, fmt.Errorf("create prediction: algorithm %s: %w", p.AlgorithmID, ErrNotFound)
	}
	if err != nil {
		return Prediction{}, false, fmt.Errorf("create prediction %s: %w", p.ID, err)
	}
	return p, true, nil
}

// GetPrediction returns algorithmID's prediction id; one of another algorithm
// gives ErrNotFound.
func (s *Store) GetPrediction(ctx context.Context, algorithmID, id string) (Prediction, error) {
	var r predictionRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+predictionColumns+` FROM predictions WHERE id = ? AND algorithm_id = ?`), id, algorithmID)
	if errors.Is(err, sql.ErrNoRows) {
		return Prediction{}, fmt.Errorf("prediction %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Prediction{}, fmt.Errorf("get prediction %s: %w", id, err)
	}
	return r.prediction(), nil
}

// GetPredictionByID returns any prediction (the worker's view, for
// webhook payloads); user-facing code uses GetPrediction.
func (s *Store) GetPredictionByID(ctx context.Context, id string) (Prediction, error) {
	var r predictionRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+predictionColumns+` FROM predictions WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Prediction{}, fmt.Errorf("prediction %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Prediction{}, fmt.Errorf("get prediction %s: %w", id, err)
	}
	return r.prediction(), nil
}

// PredictionPage is where a page of ListPredictions starts: after the
// prediction created at CreatedAt with ID (newest first). The zero value
// starts at the newest.
type PredictionPage struct {
	CreatedAt time.Time
	ID        string
}

// ListPredictions returns up to limit (1..1000) of algorithmID's predictions,
// newest first, older than after unless after is the zero value.
func (s *Store) ListPredictions(ctx context.Context, algorithmID string, after PredictionPage, limit int) ([]Prediction, error) {
	limit = max(1, min(limit, 1000))
	var rows []predictionRow
	var err error
	if after.ID == "" {
		err = s.db.SelectContext(ctx, &rows, s.q(`SELECT `+predictionColumns+` FROM predictions
			WHERE algorithm_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`), algorithmID, limit)
	} else {
		err = s.db.SelectContext(ctx, &rows, s.q(`SELECT `+predictionColumns+` FROM predictions
			WHERE algorithm_id = ? AND (created_at < ? OR (created_at = ? AND id < ?))
			ORDER BY created_at DESC, id DESC LIMIT ?`),
			algorithmID, dbTime(norm(after.CreatedAt)), dbTime(norm(after.CreatedAt)), after.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list predictions of %s: %w", algorithmID, err)
	}
	out := make([]Prediction, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.prediction())
	}
	return out, nil
}

// StartPrediction moves a starting prediction to processing (the first
// predict call is about to be made); any other status is left alone. It
// reports whether it moved it.
func (s *Store) StartPrediction(ctx context.Context, id string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE predictions SET status = ?, started_at = ?
		WHERE id = ? AND status = ?`), PredictionProcessing, dbTime(s.now()), id, PredictionStarting)
	if err != nil {
		return false, fmt.Errorf("start prediction %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PredictionResult is what FinishPrediction records.
type PredictionResult struct {
	Status            string // succeeded, failed or canceled
	OutputKey         string
	OutputContentType string
	OutputSize        int64
	OutputJSON        []byte
	Error             string
	Traceback         string
	PredictTime       *time.Duration
	// Retention is how long the input and output are kept after now.
	Retention time.Duration
}

// FinishPrediction records a running prediction's end. A prediction already
// final (a cancel that came first, or a repeated activity) is left as it is
// and false is returned: the first end wins, so a result that arrives after
// a cancel is discarded.
func (s *Store) FinishPrediction(ctx context.Context, id string, r PredictionResult) (bool, error) {
	if !PredictionFinal(r.Status) {
		return false, fmt.Errorf("finish prediction %s: %q is not a final status", id, r.Status)
	}
	now := s.now()
	var outJSON any
	if r.OutputJSON != nil {
		outJSON = string(r.OutputJSON)
	}
	var ms any
	if r.PredictTime != nil {
		ms = r.PredictTime.Milliseconds()
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE predictions SET status = ?, output_key = ?, output_content_type = ?,
		output_size = ?, output_json = ?, error_message = ?, error_traceback = ?, predict_ms = ?, completed_at = ?,
		expires_at = ?, started_at = COALESCE(started_at, ?)
		WHERE id = ? AND status IN (?, ?)`),
		r.Status, r.OutputKey, r.OutputContentType, r.OutputSize, outJSON, cleanText(r.Error, 8<<10), cleanText(r.Traceback, 64<<10),
		ms, dbTime(now), dbTime(now.Add(r.Retention)), dbTime(now), id, PredictionStarting, PredictionProcessing)
	if err != nil {
		return false, fmt.Errorf("finish prediction %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// CountRunningPredictions counts the predictions in starting or processing
// of every algorithm ownerID owns (the per-user cap).
func (s *Store) CountRunningPredictions(ctx context.Context, ownerID string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM predictions p JOIN algorithms a ON a.id = p.algorithm_id
		WHERE a.owner_id = ? AND p.status IN (?, ?)`), ownerID, PredictionStarting, PredictionProcessing)
	if err != nil {
		return 0, fmt.Errorf("count running predictions of %s: %w", ownerID, err)
	}
	return n, nil
}

// ExpiredPredictions returns up to limit predictions whose retention ended
// before now and whose blobs the sweep has not deleted yet.
func (s *Store) ExpiredPredictions(ctx context.Context, now time.Time, limit int) ([]Prediction, error) {
	var rows []predictionRow
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+predictionColumns+` FROM predictions
		WHERE expired_at IS NULL AND expires_at IS NOT NULL AND expires_at < ? ORDER BY expires_at LIMIT ?`),
		dbTime(norm(now)), max(1, limit))
	if err != nil {
		return nil, fmt.Errorf("list expired predictions: %w", err)
	}
	out := make([]Prediction, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.prediction())
	}
	return out, nil
}

// MarkPredictionExpired records that the prediction's input and output are
// deleted: GET says expired from then on.
func (s *Store) MarkPredictionExpired(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE predictions SET expired_at = ?, output_json = NULL WHERE id = ?`), dbTime(s.now()), id)
	if err != nil {
		return fmt.Errorf("mark prediction %s expired: %w", id, err)
	}
	return nil
}

// GetAlgorithmByAPIName returns the live (not deleted) algorithm with this
// API name, whoever owns it: the endpoints' routes authenticate the caller
// against it. ErrNotFound when there is none.
func (s *Store) GetAlgorithmByAPIName(ctx context.Context, apiName string) (Algorithm, error) {
	return s.getAlgorithm(ctx, `SELECT `+algorithmColumns+` FROM algorithms WHERE api_name = ? AND deleted_at IS NULL`, apiName)
}
