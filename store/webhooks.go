package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Outcomes of a webhook delivery attempt (WebhookAttempt.Outcome).
const (
	// WebhookDelivered is a 2xx answer: the delivery is over.
	WebhookDelivered = "delivered"
	// WebhookRetry is any other answer, or none: the delivery tries again.
	WebhookRetry = "retry"
	// WebhookGone is a 410 answer: the receiver asked for no more attempts.
	WebhookGone = "gone"
	// WebhookRefused is an attempt refused before sending (the URL policy,
	// no secret, an oversize body): no more attempts.
	WebhookRefused = "refused"
	// WebhookFailed is the line a delivery adds when it gives up retrying
	// (after a day by default).
	WebhookFailed = "failed"
)

// MaxWebhookError is the most bytes of an attempt's error message kept.
const MaxWebhookError = 2 << 10

// WebhookAttempt is one try at delivering a webhook event.
type WebhookAttempt struct {
	ID          int64
	DeliveryID  string // the webhook-id header, the same on every attempt
	AlgorithmID string
	SubjectID   string // the prediction or batch the event is about
	Event       string
	URL         string
	Attempt     int
	At          time.Time
	Duration    time.Duration
	StatusCode  int // 0 when no answer came
	Outcome     string
	Error       string
}

// SetWebhookSecret stores (or replaces) the algorithm's sealed webhook
// signing secret. The store never sees the plaintext: the caller seals it.
// An unknown algorithm gives ErrNotFound.
func (s *Store) SetWebhookSecret(ctx context.Context, algorithmID string, sealed []byte) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO webhook_secrets (algorithm_id, sealed, created_at)
		VALUES (?, ?, ?)
		ON CONFLICT (algorithm_id) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at`),
		algorithmID, base64.StdEncoding.EncodeToString(sealed), dbTime(s.now()))
	if classify(err) == foreignKeyViolation {
		return fmt.Errorf("set webhook secret: algorithm %s: %w", algorithmID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set webhook secret of algorithm %s: %w", algorithmID, err)
	}
	return nil
}

// WebhookSecret returns the algorithm's sealed webhook secret; ErrNotFound
// when it has none.
func (s *Store) WebhookSecret(ctx context.Context, algorithmID string) ([]byte, error) {
	var enc string
	err := s.db.GetContext(ctx, &enc, s.q(`SELECT sealed FROM webhook_secrets WHERE algorithm_id = ?`), algorithmID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("webhook secret of algorithm %s: %w", algorithmID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook secret of algorithm %s: %w", algorithmID, err)
	}
	sealed, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("decode webhook secret of algorithm %s: %w", algorithmID, err)
	}
	return sealed, nil
}

// AddWebhookAttempt records one delivery attempt; ID and a zero At are
// filled in. The error message is cleaned and cut to MaxWebhookError bytes.
// An unknown algorithm gives ErrNotFound.
func (s *Store) AddWebhookAttempt(ctx context.Context, a WebhookAttempt) error {
	at := s.now()
	if !a.At.IsZero() {
		at = norm(a.At)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO webhook_attempts
		(delivery_id, algorithm_id, subject_id, event, url, attempt, at, duration_ms, status_code, outcome, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		cleanText(a.DeliveryID, 200), a.AlgorithmID, cleanText(a.SubjectID, 200), cleanText(a.Event, 50),
		cleanText(a.URL, 2048), a.Attempt, dbTime(at), a.Duration.Milliseconds(), a.StatusCode,
		cleanText(a.Outcome, 50), cleanText(a.Error, MaxWebhookError))
	if classify(err) == foreignKeyViolation {
		return fmt.Errorf("add webhook attempt: algorithm %s: %w", a.AlgorithmID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add webhook attempt of delivery %s: %w", a.DeliveryID, err)
	}
	return nil
}

// MaxWebhookAttemptPage is the most attempts ListWebhookAttempts returns.
const MaxWebhookAttemptPage = 1000

// ListWebhookAttempts returns the attempts of every delivery about subjectID
// (a prediction or batch) of the algorithm, oldest first, at most limit
// (MaxWebhookAttemptPage when limit <= 0 or above it).
func (s *Store) ListWebhookAttempts(ctx context.Context, algorithmID, subjectID string, limit int) ([]WebhookAttempt, error) {
	if limit <= 0 || limit > MaxWebhookAttemptPage {
		limit = MaxWebhookAttemptPage
	}
	var rows []struct {
		ID          int64  `db:"id"`
		DeliveryID  string `db:"delivery_id"`
		AlgorithmID string `db:"algorithm_id"`
		SubjectID   string `db:"subject_id"`
		Event       string `db:"event"`
		URL         string `db:"url"`
		Attempt     int    `db:"attempt"`
		At          dbTime `db:"at"`
		DurationMS  int64  `db:"duration_ms"`
		StatusCode  int    `db:"status_code"`
		Outcome     string `db:"outcome"`
		Error       string `db:"error"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, delivery_id, algorithm_id, subject_id, event, url,
		attempt, at, duration_ms, status_code, outcome, error FROM webhook_attempts
		WHERE algorithm_id = ? AND subject_id = ? ORDER BY id LIMIT ?`), algorithmID, subjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts of %s: %w", subjectID, err)
	}
	out := make([]WebhookAttempt, 0, len(rows))
	for _, r := range rows {
		out = append(out, WebhookAttempt{
			ID: r.ID, DeliveryID: r.DeliveryID, AlgorithmID: r.AlgorithmID, SubjectID: r.SubjectID,
			Event: r.Event, URL: r.URL, Attempt: r.Attempt, At: time.Time(r.At),
			Duration: time.Duration(r.DurationMS) * time.Millisecond, StatusCode: r.StatusCode,
			Outcome: r.Outcome, Error: r.Error,
		})
	}
	return out, nil
}
