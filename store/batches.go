package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Batch statuses. A batch is queued when created, running once its workflow
// started work, and ends succeeded (every item was tried: some may have
// failed, see Failed), failed (the batch itself could not go on) or canceled.
const (
	BatchQueued    = "queued"
	BatchRunning   = "running"
	BatchSucceeded = "succeeded"
	BatchFailed    = "failed"
	BatchCanceled  = "canceled"
)

// Batch item statuses: pending until its result is recorded, once.
const (
	ItemPending   = "pending"
	ItemSucceeded = "succeeded"
	ItemFailed    = "failed"
)

// Batch is one batch job over an endpoint's inputs.
type Batch struct {
	ID          string
	AlgorithmID string
	OwnerID     string
	Source      string // archive | urls | s3
	Status      string
	Total       int
	Done        int // items that succeeded
	Failed      int // items that failed for good
	Concurrency int
	Error       string
	// OutputURI is the S3 prefix outputs are written to (s3://bucket/p/),
	// "" when they stay in the blob store for the output zip.
	OutputURI   string
	CreatedAt   time.Time
	StartedAt   *time.Time
	CompletedAt *time.Time
	UpdatedAt   time.Time
	// S3Sealed is the batch's S3 locations with the user's credentials,
	// sealed by the caller: CreateBatch writes it, reads never fill it
	// (BatchS3Sealed does, for the worker), so no listing carries it.
	S3Sealed []byte
}

// Finished reports whether the batch reached an end state.
func (b Batch) Finished() bool {
	return b.Status == BatchSucceeded || b.Status == BatchFailed || b.Status == BatchCanceled
}

// BatchItem is one input of a batch and, once recorded, its result.
type BatchItem struct {
	Index       int
	Name        string // the archive member's name or the URL
	Input       string // the input's blob key, or the URL
	Status      string
	HTTPStatus  int
	Error       string
	OutputKey   string
	ContentType string
	CompletedAt *time.Time
}

// ItemResult is what FinishBatchItem records.
type ItemResult struct {
	Status      string // ItemSucceeded or ItemFailed
	HTTPStatus  int
	Error       string
	OutputKey   string
	ContentType string
}

type batchRow struct {
	ID          string  `db:"id"`
	AlgorithmID string  `db:"algorithm_id"`
	OwnerID     string  `db:"owner_id"`
	Source      string  `db:"source"`
	Status      string  `db:"status"`
	Total       int     `db:"total"`
	Done        int     `db:"done"`
	Failed      int     `db:"failed"`
	Concurrency int     `db:"concurrency"`
	Error       string  `db:"error_message"`
	OutputURI   string  `db:"output_uri"`
	CreatedAt   dbTime  `db:"created_at"`
	StartedAt   *dbTime `db:"started_at"`
	CompletedAt *dbTime `db:"completed_at"`
	UpdatedAt   dbTime  `db:"updated_at"`
}

func (r batchRow) batch() Batch {
	return Batch{ID: r.ID, AlgorithmID: r.AlgorithmID, OwnerID: r.OwnerID, Source: r.Source, Status: r.Status,
		Total: r.Total, Done: r.Done, Failed: r.Failed, Concurrency: r.Concurrency, Error: r.Error,
		OutputURI: r.OutputURI, CreatedAt: time.Time(r.CreatedAt), StartedAt: r.StartedAt.ptr(), CompletedAt: r.CompletedAt.ptr(), UpdatedAt: time.Time(r.UpdatedAt)}
}

const batchColumns = `id, algorithm_id, owner_id, source, status, total, done, failed, concurrency, error_message,
	output_uri, created_at, started_at, completed_at, updated_at`

// insertItemsPerStatement is the rows of one multi-row INSERT of a batch's
// items. Small on purpose: the SQLite driver binds each parameter by
// scanning the statement's parameters, so a statement's binding costs the
// square of its parameters (500 rows, 2,000 parameters: 101 ms for a
// 2,000-item batch, two thirds of it binding; 25 rows: 21 ms;
// BenchmarkCreateBatch), and the prepared statement is reused.
const insertItemsPerStatement = 25

// insertItemsQuery inserts n items: (batch_id, idx, name, input) each.
func insertItemsQuery(n int) string {
	return `INSERT INTO batch_items (batch_id, idx, name, input) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ")
}

// CreateBatch stores a queued batch and its items in one transaction; Total
// is set from items. An unknown algorithm or owner gives ErrNotFound, a taken
// ID ErrConflict.
func (s *Store) CreateBatch(ctx context.Context, b Batch, items []BatchItem) error {
	now := s.now()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create batch %s: begin: %w", b.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var s3Sealed any    // NULL, not an empty value, when there is none
	if len(b.S3Sealed) > 0 {
		s3Sealed = b.S3Sealed
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO batches (id, algorithm_id, owner_id, source, status, total, concurrency, output_uri, s3_sealed, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), b.ID, b.AlgorithmID, b.OwnerID, b.Source, BatchQueued, len(items), b.Concurrency,
		b.OutputURI, s3Sealed, dbTime(now), dbTime(now))
	switch classify(err) {
	case foreignKeyViolation:
		return fmt.Errorf("create batch %s: %w", b.ID, ErrNotFound)
	case primaryKeyViolation, uniqueViolation:
		return fmt.Errorf("create batch %s: %w", b.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create batch %s: %w", b.ID, err)
	}
	// One statement of insertItemsPerStatement rows, prepared once and run
	// for each full group; the rest in one statement of their own.
	var full *sqlx.Stmt
	for start := 0; start < len(items); start += insertItemsPerStatement {
		group := items[start:min(start+insertItemsPerStatement, len(items))]
		args := make([]any, 0, 4*len(group))
		for _, it := range group {
			args = append(args, b.ID, it.Index, cleanText(it.Name, 1024), it.Input)
		}
		if len(group) < insertItemsPerStatement {
			if _, err := tx.ExecContext(ctx, s.q(insertItemsQuery(len(group))), args...); err != nil {
				return fmt.Errorf("create batch %s: insert items: %w", b.ID, err)
			}
			continue
		}
		if full == nil {
			if full, err = tx.PreparexContext(ctx, s.q(insertItemsQuery(insertItemsPerStatement))); err != nil {
				return fmt.Errorf("create batch %s: prepare the items' insert: %w", b.ID, err)
			}
			defer full.Close()
		}
		if _, err := full.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("create batch %s: insert items: %w", b.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create batch %s: commit: %w", b.ID, err)
	}
	return nil
}

// GetBatch returns the batch id of algorithmID; any other gives ErrNotFound.
func (s *Store) GetBatch(ctx context.Context, algorithmID, id string) (Batch, error) {
	var r batchRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+batchColumns+` FROM batches WHERE id = ? AND algorithm_id = ?`), id, algorithmID)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
	}
	return r.batch(), nil
}

// BatchByID returns a batch whatever its algorithm (the worker's view).
func (s *Store) BatchByID(ctx context.Context, id string) (Batch, error) {
	var r batchRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+batchColumns+` FROM batches WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
	}
	return r.batch(), nil
}

// BatchPage is where a page of ListBatches starts: after the batch created
// at CreatedAt with ID (newest first). An empty ID starts at the first batch
// created strictly before CreatedAt; the zero value starts at the newest.
type BatchPage struct {
	CreatedAt time.Time
	ID        string
}

// ListBatches returns algorithmID's batches newest first (created_at, then
// id, both descending: a total order, so pages neither skip nor repeat
// batches created in the same instant), at most limit (1..100), after
// `after` unless it is the zero value.
func (s *Store) ListBatches(ctx context.Context, algorithmID string, after BatchPage, limit int) ([]Batch, error) {
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	var rows []batchRow
	var err error
	if after.CreatedAt.IsZero() {
		err = s.db.SelectContext(ctx, &rows, s.q(`SELECT `+batchColumns+` FROM batches
			WHERE algorithm_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`), algorithmID, limit)
	} else {
		t := dbTime(norm(after.CreatedAt))
		err = s.db.SelectContext(ctx, &rows, s.q(`SELECT `+batchColumns+` FROM batches
			WHERE algorithm_id = ? AND (created_at < ? OR (created_at = ? AND id < ?))
			ORDER BY created_at DESC, id DESC LIMIT ?`), algorithmID, t, t, after.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list batches of %s: %w", algorithmID, err)
	}
	out := make([]Batch, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.batch())
	}
	return out, nil
}

// CountActiveBatches counts ownerID's batches that are queued or running.
func (s *Store) CountActiveBatches(ctx context.Context, ownerID string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM batches WHERE owner_id = ? AND status IN (?, ?)`),
		ownerID, BatchQueued, BatchRunning)
	if err != nil {
		return 0, fmt.Errorf("count active batches of %s: %w", ownerID, err)
	}
	return n, nil
}

// SetBatchStatus moves a batch to status (with errMsg for failed). An ended
// batch never changes again: the call is then a no-op that reports false.
// Running sets started_at once; an end state sets completed_at.
func (s *Store) SetBatchStatus(ctx context.Context, id, status, errMsg string) (bool, error) {
	now := dbTime(s.now())
	var res sql.Result
	var err error
	switch status {
	case BatchRunning:
		res, err = s.db.ExecContext(ctx, s.q(`UPDATE batches SET status = ?, started_at = COALESCE(started_at, ?), updated_at = ?
			WHERE id = ? AND status IN (?, ?)`), status, now, now, id, BatchQueued, BatchRunning)
	default:
		res, err = s.db.ExecContext(ctx, s.q(`UPDATE batches SET status = ?, error_message = ?, completed_at = ?, updated_at = ?
			WHERE id = ? AND status IN (?, ?)`), status, cleanText(errMsg, MaxEventMessage), now, now, id, BatchQueued, BatchRunning)
	}
	if err != nil {
		return false, fmt.Errorf("set batch %s %s: %w", id, status, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("set batch %s %s: %w", id, status, err)
	}
	return n == 1, nil
}

const itemColumns = `idx, name, input, status, http_status, error, output_key, content_type, completed_at`

type itemRow struct {
	Index       int     `db:"idx"`
	Name        string  `db:"name"`
	Input       string  `db:"input"`
	Status      string  `db:"status"`
	HTTPStatus  int     `db:"http_status"`
	Error       string  `db:"error"`
	OutputKey   string  `db:"output_key"`
	ContentType string  `db:"content_type"`
	CompletedAt *dbTime `db:"completed_at"`
}

func (r itemRow) item() BatchItem {
	return BatchItem{Index: r.Index, Name: r.Name, Input: r.Input, Status: r.Status, HTTPStatus: r.HTTPStatus,
		Error: r.Error, OutputKey: r.OutputKey, ContentType: r.ContentType, CompletedAt: r.CompletedAt.ptr()}
}

// BatchItems returns up to limit items of the batch with index >= from, in
// index order; status "" means any status.
func (s *Store) BatchItems(ctx context.Context, batchID, status string, from, limit int) ([]BatchItem, error) {
	if limit <= 0 {
		limit = 1000
	}
	query := `SELECT ` + itemColumns + ` FROM batch_items WHERE batch_id = ? AND idx >= ?`
	args := []any{batchID, from}
	if status != "" {
		query += ` AND status = ?`
		args = append(args, status)
	}
	query += ` ORDER BY idx LIMIT ?`
	args = append(args, limit)
	var rows []itemRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, fmt.Errorf("list items of batch %s: %w", batchID, err)
	}
	out := make([]BatchItem, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.item())
	}
	return out, nil
}

// PendingBatchItems returns the batch's items in [from, to) not yet recorded.
// It reads only what a pending item has (index, name, input), scanned
// without reflection: it is the first thing a chunk does, before its first
// predict (BenchmarkPendingBatchItems).
func (s *Store) PendingBatchItems(ctx context.Context, batchID string, from, to int) ([]BatchItem, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT idx, name, input FROM batch_items
		WHERE batch_id = ? AND idx >= ? AND idx < ? AND status = ? ORDER BY idx`), batchID, from, to, ItemPending)
	if err != nil {
		return nil, fmt.Errorf("list pending items of batch %s: %w", batchID, err)
	}
	defer rows.Close()
	out := make([]BatchItem, 0, max(0, min(to-from, 1<<16)))
	for rows.Next() {
		it := BatchItem{Status: ItemPending}
		if err := rows.Scan(&it.Index, &it.Name, &it.Input); err != nil {
			return nil, fmt.Errorf("list pending items of batch %s: %w", batchID, err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending items of batch %s: %w", batchID, err)
	}
	return out, nil
}

// FinishBatchItem records an item's result and counts it in the batch, once:
// an item already recorded (a retried chunk that raced a crash) is left as
// it was, and so is every item of a batch that ended (canceled: nothing is
// recorded after the cancel); the call then reports false.
func (s *Store) FinishBatchItem(ctx context.Context, batchID string, idx int, r ItemResult) (bool, error) {
	if r.Status != ItemSucceeded && r.Status != ItemFailed {
		return false, fmt.Errorf("finish item %d of batch %s: status %q is not an end state", idx, batchID, r.Status)
	}
	now := dbTime(s.now())
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("finish item %d of batch %s: begin: %w", idx, batchID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, s.q(`UPDATE batch_items SET status = ?, http_status = ?, error = ?, output_key = ?, content_type = ?, completed_at = ?
		WHERE batch_id = ? AND idx = ? AND status = ?
		AND EXISTS (SELECT 1 FROM batches WHERE id = ? AND status IN (?, ?))`),
		r.Status, r.HTTPStatus, cleanText(r.Error, MaxEventMessage), r.OutputKey, cleanText(r.ContentType, 255), now, batchID, idx, ItemPending,
		batchID, BatchQueued, BatchRunning)
	if err != nil {
		return false, fmt.Errorf("finish item %d of batch %s: %w", idx, batchID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	counter := "done"
	if r.Status == ItemFailed {
		counter = "failed"
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE batches SET `+counter+` = `+counter+` + 1, updated_at = ? WHERE id = ?`), now, batchID); err != nil {
		return false, fmt.Errorf("count item %d of batch %s: %w", idx, batchID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("finish item %d of batch %s: commit: %w", idx, batchID, err)
	}
	return true, nil
}

// IndexedResult is one item's result for FinishBatchItems.
type IndexedResult struct {
	Index int
	ItemResult
}

// FinishBatchItems records several items' results in one transaction, each
// once, as FinishBatchItem does (a recorded item and the items of an ended
// batch are left as they were), and counts them in the batch. It returns
// how many succeeded and failed items it recorded. On PostgreSQL a cancel
// committed while it runs may let this group in; SQLite serialises them.
func (s *Store) FinishBatchItems(ctx context.Context, batchID string, rs []IndexedResult) (done, failed int, err error) {
	if len(rs) == 0 {
		return 0, 0, nil
	}
	// The statements are prepared once (hotStmt): a batch records its
	// results as they come, a transaction for every few items.
	live := s.q(`SELECT COUNT(*) FROM batches WHERE id = ? AND status IN (?, ?)`)
	update := s.q(`UPDATE batch_items SET status = ?, http_status = ?, error = ?, output_key = ?, content_type = ?, completed_at = ?
		WHERE batch_id = ? AND idx = ? AND status = ?`)
	count := s.q(`UPDATE batches SET done = done + ?, failed = failed + ?, updated_at = ? WHERE id = ?`)
	var stmts [3]*sqlx.Stmt
	for i, q := range []string{live, update, count} {
		if stmts[i], err = s.hotStmt(ctx, q); err != nil {
			return 0, 0, fmt.Errorf("finish items of batch %s: %w", batchID, err)
		}
	}
	now := dbTime(s.now())
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("finish items of batch %s: begin: %w", batchID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var n int
	if stmts[0] != nil {
		err = tx.StmtxContext(ctx, stmts[0]).GetContext(ctx, &n, batchID, BatchQueued, BatchRunning)
	} else {
		err = tx.GetContext(ctx, &n, live, batchID, BatchQueued, BatchRunning)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("finish items of batch %s: %w", batchID, err)
	}
	if n == 0 {
		return 0, 0, nil
	}
	// The transaction's handle on the prepared update, taken once for all
	// the rows rather than per row.
	var upd *sqlx.Stmt
	if stmts[1] != nil {
		upd = tx.StmtxContext(ctx, stmts[1])
		defer upd.Close()
	}
	for _, r := range rs {
		if r.Status != ItemSucceeded && r.Status != ItemFailed {
			return 0, 0, fmt.Errorf("finish item %d of batch %s: status %q is not an end state", r.Index, batchID, r.Status)
		}
		res, err := txExec(ctx, tx, upd, update, r.Status, r.HTTPStatus, cleanText(r.Error, MaxEventMessage), r.OutputKey,
			cleanText(r.ContentType, 255), now, batchID, r.Index, ItemPending)
		if err != nil {
			return 0, 0, fmt.Errorf("finish item %d of batch %s: %w", r.Index, batchID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, 0, fmt.Errorf("finish item %d of batch %s: %w", r.Index, batchID, err)
		} else if n == 1 && r.Status == ItemSucceeded {
			done++
		} else if n == 1 {
			failed++
		}
	}
	if _, err := hotExec(ctx, tx, stmts[2], count, done, failed, now, batchID); err != nil {
		return 0, 0, fmt.Errorf("count items of batch %s: %w", batchID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("finish items of batch %s: commit: %w", batchID, err)
	}
	return done, failed, nil
}

// BatchS3Sealed returns the batch's sealed S3 locations and credentials
// (what CreateBatch stored as S3Sealed), nil when it has none or they were
// cleared; an unknown batch gives ErrNotFound.
func (s *Store) BatchS3Sealed(ctx context.Context, id string) ([]byte, error) {
	var box []byte
	err := s.db.GetContext(ctx, &box, s.q(`SELECT s3_sealed FROM batches WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("batch %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get S3 credentials of batch %s: %w", id, err)
	}
	return box, nil
}

// ClearBatchS3 removes the batch's sealed S3 credentials (its end, or a
// batch that could not start); note, when not empty, is added to the
// batch's error (an output manifest that could not be written).
func (s *Store) ClearBatchS3(ctx context.Context, id, note string) error {
	query, args := `UPDATE batches SET s3_sealed = NULL WHERE id = ?`, []any{id}
	if note != "" {
		note = cleanText(note, MaxEventMessage)
		query = `UPDATE batches SET s3_sealed = NULL,
			error_message = CASE WHEN error_message = '' THEN ? ELSE error_message || '; ' || ? END WHERE id = ?`
		args = []any{note, note, id}
	}
	_, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("clear S3 credentials of batch %s: %w", id, err)
	}
	return nil
}

// ClearEndedBatchesS3 removes the sealed S3 credentials of every batch that
// ended before endedBefore and still has them (the sweep behind the
// workflow's own removal: a worker lost at the wrong moment, a batch whose
// workflow never ran). It returns how many it cleared.
func (s *Store) ClearEndedBatchesS3(ctx context.Context, endedBefore time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE batches SET s3_sealed = NULL
		WHERE s3_sealed IS NOT NULL AND status IN (?, ?, ?) AND completed_at < ?`),
		BatchSucceeded, BatchFailed, BatchCanceled, dbTime(norm(endedBefore)))
	if err != nil {
		return 0, fmt.Errorf("clear S3 credentials of ended batches: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("clear S3 credentials of ended batches: %w", err)
	}
	return int(n), nil
}

// BatchAgentServer returns the server whose agent serves deploymentID now,
// for running a batch chunk there (predictions/batch): the server of the
// deployment's newest finished serve command, or "" when it has none or a
// stop came after it (no agent serves it; the worker runs the chunk).
// The agent_commands table is read here rather than beside it because
// batches are its only reader of this kind.
func (s *Store) BatchAgentServer(ctx context.Context, deploymentID string) (string, error) {
	var row struct {
		ServerID string `db:"server_id"`
		Kind     string `db:"kind"`
	}
	err := s.db.GetContext(ctx, &row, s.q(`SELECT server_id, kind FROM agent_commands
		WHERE deployment = ? AND kind IN ('serve', 'stop') AND state = ?
		ORDER BY updated_at DESC, created_at DESC LIMIT 1`), deploymentID, AgentDone)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("agent server of deployment %s: %w", deploymentID, err)
	}
	if row.Kind != "serve" {
		return "", nil
	}
	return row.ServerID, nil
}

// AbandonAgentCommand ends command id with result whatever its state (the
// batch its chunk belongs to was canceled): its lease is void from then on,
// so the agent's next upload or input read is refused and it stops. It
// reports whether the command was not done before.
func (s *Store) AbandonAgentCommand(ctx context.Context, id, result string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_commands SET state = ?, result = ?, lease = '', updated_at = ?
		WHERE id = ? AND state <> ?`), AgentDone, result, dbTime(s.now()), id, AgentDone)
	if err != nil {
		return false, fmt.Errorf("abandon agent command %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("abandon agent command %s: %w", id, err)
	}
	return n > 0, nil
}
