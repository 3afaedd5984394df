package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		require.NotEmpty(t, alice.ID)
		require.Equal(t, time.UTC, alice.CreatedAt.Location())

		_, err := s.CreateUser(ctx, "alice")
		require.ErrorIs(t, err, ErrConflict)
		require.ErrorContains(t, err, `"alice" is taken`)

		got, err := s.UserByName(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, alice, got)

		_, err = s.UserByName(ctx, "nobody")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

func TestTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		clock := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return clock }

		plain, tok, err := s.CreateToken(ctx, alice.ID, "laptop")
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(plain, TokenPrefix))
		require.Len(t, plain, len(TokenPrefix)+43) // 32 bytes, unpadded base64url
		require.Equal(t, Token{ID: tok.ID, UserID: alice.ID, Name: "laptop", CreatedAt: clock}, tok)

		// Only the hash is stored: no column of the table holds the plaintext.
		var rows []map[string]any
		r, err := s.db.QueryxContext(ctx, `SELECT * FROM tokens`)
		require.NoError(t, err)
		for r.Next() {
			row := map[string]any{}
			require.NoError(t, r.MapScan(row))
			rows = append(rows, row)
		}
		require.NoError(t, r.Err())
		require.Len(t, rows, 1)
		sum := sha256.Sum256([]byte(plain))
		require.Equal(t, hex.EncodeToString(sum[:]), fmt.Sprint(asText(rows[0]["hash"])))
		for col, v := range rows[0] {
			require.NotContains(t, fmt.Sprint(asText(v)), strings.TrimPrefix(plain, TokenPrefix), "column %s", col)
		}

		got, err := s.Authenticate(ctx, plain)
		require.NoError(t, err)
		require.Equal(t, alice, got)
		for _, bad := range []string{"", "ac_", plain + "x", plain[:len(plain)-1], hex.EncodeToString(sum[:])} {
			_, err = s.Authenticate(ctx, bad)
			require.ErrorIs(t, err, ErrUnauthorized, "token %q", bad)
		}

		// last_used_at moves at most once a minute.
		lastUsed := func() time.Time {
			ts, err := s.ListTokens(ctx, alice.ID)
			require.NoError(t, err)
			require.Len(t, ts, 1)
			require.NotNil(t, ts[0].LastUsedAt)
			return *ts[0].LastUsedAt
		}
		require.Equal(t, clock, lastUsed())
		first := clock
		clock = clock.Add(59 * time.Second)
		_, err = s.Authenticate(ctx, plain)
		require.NoError(t, err)
		require.Equal(t, first, lastUsed())
		clock = clock.Add(2 * time.Second)
		_, err = s.Authenticate(ctx, plain)
		require.NoError(t, err)
		require.Equal(t, clock, lastUsed())

		plain2, tok2, err := s.CreateToken(ctx, alice.ID, "ci")
		require.NoError(t, err)
		require.NotEqual(t, plain, plain2)
		ts, err := s.ListTokens(ctx, alice.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"laptop", "ci"}, []string{ts[0].Name, ts[1].Name})
		require.Nil(t, ts[1].LastUsedAt)

		// Revoking: only by the owner, then the token stops working.
		bob, err := s.CreateUser(ctx, "bob")
		require.NoError(t, err)
		require.ErrorIs(t, s.RevokeToken(ctx, bob.ID, tok.ID), ErrNotFound)
		require.NoError(t, s.RevokeToken(ctx, alice.ID, tok.ID))
		require.ErrorIs(t, s.RevokeToken(ctx, alice.ID, tok.ID), ErrNotFound)
		_, err = s.Authenticate(ctx, plain)
		require.ErrorIs(t, err, ErrUnauthorized)
		_, err = s.Authenticate(ctx, plain2)
		require.NoError(t, err)
		ts, err = s.ListTokens(ctx, alice.ID)
		require.NoError(t, err)
		require.Len(t, ts, 1)
		require.Equal(t, tok2.ID, ts[0].ID)

		_, _, err = s.CreateToken(ctx, "no-such-user", "x")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

// asText shows a column value as text whichever type the driver scanned it into.
func asText(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}
