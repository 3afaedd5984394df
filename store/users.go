package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// User is an account that owns algorithms and API tokens.
type User struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Token describes an API token. The plaintext is never stored, so it is not here.
type Token struct {
	ID         string
	UserID     string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time // nil until first used; updated at most once a minute
}

// TokenPrefix starts every plaintext API token, so that leaked tokens are easy to
// recognise (secret scanners, logs) and easy to tell from endpoint tokens.
const TokenPrefix = "ac_"

// lastUsedResolution bounds how often Authenticate writes last_used_at: a token
// used in a tight loop costs one write a minute, not one per request.
const lastUsedResolution = time.Minute

// CreateUser adds a user. A name already taken gives ErrConflict.
func (s *Store) CreateUser(ctx context.Context, name string) (User, error) {
	if name == "" {
		return User{}, errors.New("create user: empty name")
	}
	u := User{ID: uuid.NewString(), Name: name, CreatedAt: s.now()}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)`),
		u.ID, u.Name, dbTime(u.CreatedAt))
	if classify(err) == uniqueViolation {
		return User{}, fmt.Errorf("create user: %w: user name %q is taken", ErrConflict, name)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	}
	return u, nil
}

type userRow struct {
	ID        string `db:"id"`
	Name      string `db:"name"`
	CreatedAt dbTime `db:"created_at"`
}

func (r userRow) user() User {
	return User{ID: r.ID, Name: r.Name, CreatedAt: time.Time(r.CreatedAt)}
}

// UserByName finds a user by name; ErrNotFound when there is none.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT id, name, created_at FROM users WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", name, err)
	}
	return r.user(), nil
}

// hashToken is how a token is kept and looked up. Tokens carry 256 random bits, so
// a fast unsalted hash is right: nothing can be guessed or precomputed, and a slow
// password hash would only make every authenticated request slow.
func hashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// CreateToken issues an API token for the user. The plaintext (TokenPrefix and 32
// random bytes in unpadded base64url) is returned this once; only its SHA-256 is
// stored. An unknown user gives ErrNotFound.
func (s *Store) CreateToken(ctx context.Context, userID, name string) (string, Token, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, fmt.Errorf("create token: read random bytes: %w", err)
	}
	plaintext := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	t := Token{ID: uuid.NewString(), UserID: userID, Name: name, CreatedAt: s.now()}
	_, err := s.db.ExecContext(ctx,
		s.q(`INSERT INTO tokens (id, user_id, name, hash, created_at) VALUES (?, ?, ?, ?, ?)`),
		t.ID, t.UserID, t.Name, hashToken(plaintext), dbTime(t.CreatedAt))
	if classify(err) == foreignKeyViolation {
		return "", Token{}, fmt.Errorf("create token: user %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return "", Token{}, fmt.Errorf("create token for user %s: %w", userID, err)
	}
	return plaintext, t, nil
}

// Authenticate returns the user a plaintext token belongs to, or ErrUnauthorized.
// The work does not depend on how much of a guess is right: the guess is hashed
// first and looked up by its hash. It records the token's use at most once a
// minute.
func (s *Store) Authenticate(ctx context.Context, plaintext string) (User, error) {
	var r struct {
		userRow
		TokenID  string  `db:"token_id"`
		LastUsed *dbTime `db:"last_used_at"`
	}
	err := s.db.GetContext(ctx, &r, s.q(`
		SELECT u.id, u.name, u.created_at, t.id AS token_id, t.last_used_at
		FROM tokens t JOIN users u ON u.id = t.user_id
		WHERE t.hash = ?`), hashToken(plaintext))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrUnauthorized
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	now := s.now()
	if r.LastUsed == nil || now.Sub(time.Time(*r.LastUsed)) >= lastUsedResolution {
		// The condition repeats the check in SQL so that concurrent requests
		// write at most once between them.
		_, err := s.db.ExecContext(ctx, s.q(`UPDATE tokens SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`),
			dbTime(now), r.TokenID, dbTime(now.Add(-lastUsedResolution)))
		if err != nil {
			return User{}, fmt.Errorf("authenticate: record use of token %s: %w", r.TokenID, err)
		}
	}
	return r.user(), nil
}

// RevokeToken deletes one of the user's tokens; it stops authenticating at once.
// A token that is not the user's (or does not exist) gives ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, userID, tokenID string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM tokens WHERE id = ? AND user_id = ?`), tokenID, userID)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", tokenID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token %s: %w", tokenID, err)
	} else if n == 0 {
		return fmt.Errorf("revoke token %s: %w", tokenID, ErrNotFound)
	}
	return nil
}

// ListTokens returns the user's tokens, oldest first.
func (s *Store) ListTokens(ctx context.Context, userID string) ([]Token, error) {
	var rows []struct {
		ID        string  `db:"id"`
		UserID    string  `db:"user_id"`
		Name      string  `db:"name"`
		CreatedAt dbTime  `db:"created_at"`
		LastUsed  *dbTime `db:"last_used_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT id, user_id, name, created_at, last_used_at
		FROM tokens WHERE user_id = ? ORDER BY created_at, id`), userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of user %s: %w", userID, err)
	}
	out := make([]Token, 0, len(rows))
	for _, r := range rows {
		out = append(out, Token{ID: r.ID, UserID: r.UserID, Name: r.Name,
			CreatedAt: time.Time(r.CreatedAt), LastUsedAt: r.LastUsed.ptr()})
	}
	return out, nil
}
