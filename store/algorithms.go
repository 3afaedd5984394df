package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// StatusLive is the Status of an algorithm whose endpoint should be serving;
// ListLiveAlgorithms selects it so a starting worker can bring endpoints back.
const StatusLive = "live"

// Algorithm is a user's algorithm and where its deployment stands. Step, Status,
// Endpoint and Error mirror the Deployment workflow's state for listing without
// querying Temporal; the workflow is the source of truth.
type Algorithm struct {
	ID               string
	OwnerID          string
	Name             string
	Description      string
	APIName          string // unique among algorithms that are not deleted
	WorkflowID       string
	Spec             json.RawMessage // the deployment spec, returned byte for byte
	Step             string
	Status           string
	Endpoint         string
	Error            string
	HasEndpointToken bool // whether SetEndpointTokenHash has stored a hash
	// Serving and Staged are what the endpoint serves and what waits for
	// Complete (actdef.ServingRevision and StagedRevision as JSON, byte for
	// byte as the workflow projected them); nil when none.
	Serving   json.RawMessage
	Staged    json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time // set by MarkDeleted; only GetAlgorithmByID returns deleted rows
}

// StateUpdate is what UpdateAlgorithmState writes: every field, empty ones too
// (a nil Serving or Staged clears the column). Serving and Staged, when set,
// must be valid JSON.
type StateUpdate struct {
	Step     string
	Status   string
	Endpoint string
	Error    string
	Serving  json.RawMessage
	Staged   json.RawMessage
}

type algorithmRow struct {
	ID               string  `db:"id"`
	OwnerID          string  `db:"owner_id"`
	Name             string  `db:"name"`
	Description      string  `db:"description"`
	APIName          string  `db:"api_name"`
	WorkflowID       string  `db:"workflow_id"`
	Spec             []byte  `db:"spec"`
	Step             string  `db:"step"`
	Status           string  `db:"status"`
	Endpoint         string  `db:"endpoint"`
	Error            string  `db:"error_message"`
	HasEndpointToken bool    `db:"has_endpoint_token"`
	Serving          *string `db:"serving"`
	Staged           *string `db:"staged"`
	CreatedAt        dbTime  `db:"created_at"`
	UpdatedAt        dbTime  `db:"updated_at"`
	DeletedAt        *dbTime `db:"deleted_at"`
}

const algorithmColumns = `id, owner_id, name, description, api_name, workflow_id, spec,
	step, status, endpoint, error_message, (endpoint_token_hash <> '') AS has_endpoint_token,
	serving, staged, created_at, updated_at, deleted_at`

func (r algorithmRow) algorithm() Algorithm {
	return Algorithm{
		ID: r.ID, OwnerID: r.OwnerID, Name: r.Name, Description: r.Description,
		APIName: r.APIName, WorkflowID: r.WorkflowID, Spec: json.RawMessage(r.Spec),
		Step: r.Step, Status: r.Status, Endpoint: r.Endpoint, Error: r.Error,
		HasEndpointToken: r.HasEndpointToken,
		Serving:          rawJSON(r.Serving), Staged: rawJSON(r.Staged),
		CreatedAt: time.Time(r.CreatedAt), UpdatedAt: time.Time(r.UpdatedAt),
		DeletedAt: r.DeletedAt.ptr(),
	}
}

// CreateAlgorithm stores a new algorithm. The caller picks ID (the workflow ID is
// usually derived from it); OwnerID and APIName are required and Spec, when set,
// must be valid JSON. Zero CreatedAt/UpdatedAt become now, and HasEndpointToken
// and DeletedAt are ignored. An API name taken by another algorithm that is not
// deleted, or an ID already used, gives ErrConflict; an unknown owner ErrNotFound.
func (s *Store) CreateAlgorithm(ctx context.Context, a Algorithm) error {
	switch {
	case a.ID == "":
		return errors.New("create algorithm: empty ID")
	case a.OwnerID == "":
		return fmt.Errorf("create algorithm %s: empty owner", a.ID)
	case a.APIName == "":
		return fmt.Errorf("create algorithm %s: empty API name", a.ID)
	case len(a.Spec) > 0 && !json.Valid(a.Spec):
		return fmt.Errorf("create algorithm %s: spec is not valid JSON", a.ID)
	}
	created := s.now()
	if !a.CreatedAt.IsZero() {
		created = norm(a.CreatedAt)
	}
	updated := created
	if !a.UpdatedAt.IsZero() {
		updated = norm(a.UpdatedAt)
	}
	var spec any // NULL when unset; a string (not []byte) keeps the TEXT column text
	if a.Spec != nil {
		spec = string(a.Spec)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO algorithms
		(id, owner_id, name, description, api_name, workflow_id, spec,
		 step, status, endpoint, error_message, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.OwnerID, a.Name, a.Description, a.APIName, a.WorkflowID, spec,
		a.Step, a.Status, a.Endpoint, a.Error, dbTime(created), dbTime(updated))
	switch classify(err) {
	case uniqueViolation:
		return fmt.Errorf("create algorithm %s: %w: api name %q is taken", a.ID, ErrConflict, a.APIName)
	case primaryKeyViolation:
		return fmt.Errorf("create algorithm: %w: id %q exists", ErrConflict, a.ID)
	case foreignKeyViolation:
		return fmt.Errorf("create algorithm %s: owner %s: %w", a.ID, a.OwnerID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("create algorithm %s: %w", a.ID, err)
	}
	return nil
}

// GetAlgorithm returns the owner's algorithm. Another owner's algorithm, and a
// deleted one, give ErrNotFound: callers cannot learn that it exists.
func (s *Store) GetAlgorithm(ctx context.Context, ownerID, id string) (Algorithm, error) {
	return s.getAlgorithm(ctx, `SELECT `+algorithmColumns+` FROM algorithms
		WHERE id = ? AND owner_id = ? AND deleted_at IS NULL`, id, ownerID)
}

// GetAlgorithmByID returns any algorithm, deleted ones included (see DeletedAt),
// whoever owns it. It is for the worker; user-facing code uses GetAlgorithm.
func (s *Store) GetAlgorithmByID(ctx context.Context, id string) (Algorithm, error) {
	return s.getAlgorithm(ctx, `SELECT `+algorithmColumns+` FROM algorithms WHERE id = ?`, id)
}

func (s *Store) getAlgorithm(ctx context.Context, query, id string, args ...any) (Algorithm, error) {
	var r algorithmRow
	err := s.db.GetContext(ctx, &r, s.q(query), append([]any{id}, args...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Algorithm{}, fmt.Errorf("algorithm %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Algorithm{}, fmt.Errorf("get algorithm %s: %w", id, err)
	}
	return r.algorithm(), nil
}

// ListAlgorithms returns the owner's algorithms that are not deleted, newest first.
func (s *Store) ListAlgorithms(ctx context.Context, ownerID string) ([]Algorithm, error) {
	out, err := s.listAlgorithms(ctx, `SELECT `+algorithmColumns+` FROM algorithms
		WHERE owner_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list algorithms of %s: %w", ownerID, err)
	}
	return out, nil
}

// ListLiveAlgorithms returns every owner's algorithms whose Status is StatusLive
// and that are not deleted, oldest first: the endpoints a starting worker restores.
func (s *Store) ListLiveAlgorithms(ctx context.Context) ([]Algorithm, error) {
	out, err := s.listAlgorithms(ctx, `SELECT `+algorithmColumns+` FROM algorithms
		WHERE status = ? AND deleted_at IS NULL ORDER BY created_at, id`, StatusLive)
	if err != nil {
		return nil, fmt.Errorf("list live algorithms: %w", err)
	}
	return out, nil
}

func (s *Store) listAlgorithms(ctx context.Context, query string, args ...any) ([]Algorithm, error) {
	var rows []algorithmRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, err
	}
	out := make([]Algorithm, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.algorithm())
	}
	return out, nil
}

// UpdateAlgorithmState records where the algorithm's deployment stands. It applies
// to deleted algorithms too, so a teardown can still report progress.
func (s *Store) UpdateAlgorithmState(ctx context.Context, id string, st StateUpdate) error {
	for name, v := range map[string]json.RawMessage{"serving": st.Serving, "staged": st.Staged} {
		if v != nil && !json.Valid(v) {
			return fmt.Errorf("update state of algorithm %s: %s is not valid JSON", id, name)
		}
	}
	return s.updateOne(ctx, "update state of", id, `UPDATE algorithms
		SET step = ?, status = ?, endpoint = ?, error_message = ?, serving = ?, staged = ?, updated_at = ?
		WHERE id = ?`,
		st.Step, st.Status, st.Endpoint, st.Error, textOrNull(st.Serving), textOrNull(st.Staged), dbTime(s.now()), id)
}

// textOrNull is JSON as a TEXT value (a string, not []byte, so the column
// stays text), or NULL for nil.
func textOrNull(v json.RawMessage) any {
	if v == nil {
		return nil
	}
	return string(v)
}

// rawJSON is a nullable TEXT column's JSON; nil for NULL.
func rawJSON(v *string) json.RawMessage {
	if v == nil {
		return nil
	}
	return json.RawMessage(*v)
}

// SetEndpointTokenHash stores the SHA-256 (64 lowercase hex digits) of the
// algorithm's endpoint token; an empty hash removes it. Anything else is refused,
// so a plaintext token cannot be stored by mistake.
func (s *Store) SetEndpointTokenHash(ctx context.Context, id, sha256hex string) error {
	if sha256hex != "" {
		if b, err := hex.DecodeString(sha256hex); err != nil || len(b) != 32 || hex.EncodeToString(b) != sha256hex {
			return fmt.Errorf("set endpoint token hash of %s: not 64 lowercase hex digits", id)
		}
	}
	return s.updateOne(ctx, "set endpoint token hash of", id,
		`UPDATE algorithms SET endpoint_token_hash = ?, updated_at = ? WHERE id = ?`,
		sha256hex, dbTime(s.now()), id)
}

// EndpointTokenHash returns the stored endpoint token hash, "" when none is set.
// An unknown algorithm gives ErrNotFound.
func (s *Store) EndpointTokenHash(ctx context.Context, id string) (string, error) {
	var h string
	err := s.db.GetContext(ctx, &h, s.q(`SELECT endpoint_token_hash FROM algorithms WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("algorithm %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get endpoint token hash of %s: %w", id, err)
	}
	return h, nil
}

// MarkDeleted marks the algorithm deleted: it leaves lists and GetAlgorithm, and
// its API name is free for a new algorithm. The row, and its events, stay. Marking
// a deleted algorithm again does nothing; an unknown one gives ErrNotFound.
func (s *Store) MarkDeleted(ctx context.Context, id string) error {
	now := dbTime(s.now())
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE algorithms SET deleted_at = ?, updated_at = ?
		WHERE id = ? AND deleted_at IS NULL`), now, now, id)
	if err != nil {
		return fmt.Errorf("mark algorithm %s deleted: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mark algorithm %s deleted: %w", id, err)
	} else if n > 0 {
		return nil
	}
	if _, err := s.GetAlgorithmByID(ctx, id); err != nil {
		return fmt.Errorf("mark algorithm deleted: %w", err)
	}
	return nil // deleted before
}

// APINameTaken reports whether an algorithm that is not deleted uses apiName.
func (s *Store) APINameTaken(ctx context.Context, apiName string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM algorithms
		WHERE api_name = ? AND deleted_at IS NULL`), apiName)
	if err != nil {
		return false, fmt.Errorf("check api name %q: %w", apiName, err)
	}
	return n > 0, nil
}

// updateOne runs an UPDATE that must match the one algorithm id.
func (s *Store) updateOne(ctx context.Context, what, id, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("%s algorithm %s: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s algorithm %s: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s algorithm %s: %w", what, id, ErrNotFound)
	}
	return nil
}
