package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAlgorithmCRUD(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)

		created := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
		a := newAlgorithm("a1", alice.ID, "denoise")
		a.Description = "removes noise"
		a.Spec = json.RawMessage(`{"input": "image",  "output":"image", "threads": 2}`)
		a.Step, a.Status = "configure", "draft"
		a.CreatedAt = created
		require.NoError(t, s.CreateAlgorithm(ctx, a))

		want := a
		want.CreatedAt = created.UTC().Truncate(time.Microsecond)
		want.UpdatedAt = want.CreatedAt
		got, err := s.GetAlgorithm(ctx, alice.ID, "a1")
		require.NoError(t, err)
		require.Equal(t, want, got)
		byID, err := s.GetAlgorithmByID(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, want, byID)

		// A second, newer one; no spec.
		b := newAlgorithm("a2", alice.ID, "segment")
		b.CreatedAt = created.Add(time.Hour)
		require.NoError(t, s.CreateAlgorithm(ctx, b))
		gotB, err := s.GetAlgorithm(ctx, alice.ID, "a2")
		require.NoError(t, err)
		require.Nil(t, gotB.Spec)
		list, err := s.ListAlgorithms(ctx, alice.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"a2", "a1"}, ids(list))

		before := time.Now().UTC().Add(-time.Second)
		st := StateUpdate{Step: "complete", Status: StatusLive, Endpoint: "https://127.0.0.1:9443/denoise"}
		require.NoError(t, s.UpdateAlgorithmState(ctx, "a1", st))
		got, err = s.GetAlgorithm(ctx, alice.ID, "a1")
		require.NoError(t, err)
		require.Equal(t, st, StateUpdate{Step: got.Step, Status: got.Status, Endpoint: got.Endpoint, Error: got.Error})
		require.True(t, got.UpdatedAt.After(before), "updated_at %s", got.UpdatedAt)
		require.NoError(t, s.UpdateAlgorithmState(ctx, "a2", StateUpdate{Step: "test", Status: "failed", Error: "ImportError: cv2"}))
		live, err := s.ListLiveAlgorithms(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"a1"}, ids(live))
		require.ErrorIs(t, s.UpdateAlgorithmState(ctx, "nope", st), ErrNotFound)

		// Endpoint token hash.
		h, err := s.EndpointTokenHash(ctx, "a1")
		require.NoError(t, err)
		require.Empty(t, h)
		sum := sha256.Sum256([]byte("endpoint-secret"))
		hash := hex.EncodeToString(sum[:])
		require.Error(t, s.SetEndpointTokenHash(ctx, "a1", "endpoint-secret"))
		require.Error(t, s.SetEndpointTokenHash(ctx, "a1", strings.ToUpper(hash)))
		require.NoError(t, s.SetEndpointTokenHash(ctx, "a1", hash))
		h, err = s.EndpointTokenHash(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, hash, h)
		got, err = s.GetAlgorithm(ctx, alice.ID, "a1")
		require.NoError(t, err)
		require.True(t, got.HasEndpointToken)
		require.ErrorIs(t, s.SetEndpointTokenHash(ctx, "nope", hash), ErrNotFound)
		_, err = s.EndpointTokenHash(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)

		// Validation and missing rows.
		require.Error(t, s.CreateAlgorithm(ctx, newAlgorithm("", alice.ID, "x")))
		require.Error(t, s.CreateAlgorithm(ctx, newAlgorithm("a3", alice.ID, "")))
		bad := newAlgorithm("a3", alice.ID, "x")
		bad.Spec = json.RawMessage(`{`)
		require.Error(t, s.CreateAlgorithm(ctx, bad))
		require.ErrorIs(t, s.CreateAlgorithm(ctx, newAlgorithm("a3", "no-such-user", "x")), ErrNotFound)
		_, err = s.GetAlgorithm(ctx, alice.ID, "nope")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = s.GetAlgorithmByID(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

func ids(as []Algorithm) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestAPINameConflictAndReuseAfterDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		bob, err := s.CreateUser(ctx, "bob")
		require.NoError(t, err)

		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "ocr")))
		taken, err := s.APINameTaken(ctx, "ocr")
		require.NoError(t, err)
		require.True(t, taken)

		// Taken across owners too: the API name is part of the endpoint address.
		err = s.CreateAlgorithm(ctx, newAlgorithm("b1", bob.ID, "ocr"))
		require.ErrorIs(t, err, ErrConflict)
		require.ErrorContains(t, err, `api name "ocr" is taken`)
		err = s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "other"))
		require.ErrorIs(t, err, ErrConflict)
		require.ErrorContains(t, err, `id "a1" exists`)

		require.NoError(t, s.UpdateAlgorithmState(ctx, "a1", StateUpdate{Status: StatusLive}))
		require.NoError(t, s.MarkDeleted(ctx, "a1"))
		require.NoError(t, s.MarkDeleted(ctx, "a1"), "deleting twice is a no-op")
		require.ErrorIs(t, s.MarkDeleted(ctx, "nope"), ErrNotFound)

		_, err = s.GetAlgorithm(ctx, alice.ID, "a1")
		require.ErrorIs(t, err, ErrNotFound)
		kept, err := s.GetAlgorithmByID(ctx, "a1")
		require.NoError(t, err, "the row stays")
		require.NotNil(t, kept.DeletedAt)
		list, err := s.ListAlgorithms(ctx, alice.ID)
		require.NoError(t, err)
		require.Empty(t, list)
		live, err := s.ListLiveAlgorithms(ctx)
		require.NoError(t, err)
		require.Empty(t, live)
		taken, err = s.APINameTaken(ctx, "ocr")
		require.NoError(t, err)
		require.False(t, taken)

		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("b1", bob.ID, "ocr")))
		got, err := s.GetAlgorithm(ctx, bob.ID, "b1")
		require.NoError(t, err)
		require.Equal(t, "ocr", got.APIName)
	})
}

func TestOwnerIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		bob, err := s.CreateUser(ctx, "bob")
		require.NoError(t, err)
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "ocr")))

		_, err = s.GetAlgorithm(ctx, bob.ID, "a1")
		require.ErrorIs(t, err, ErrNotFound)
		_, errMissing := s.GetAlgorithm(ctx, bob.ID, "a-missing")
		require.Equal(t, strings.Replace(errMissing.Error(), "a-missing", "a1", 1), err.Error(),
			"another owner's algorithm looks exactly like a missing one")
		list, err := s.ListAlgorithms(ctx, bob.ID)
		require.NoError(t, err)
		require.Empty(t, list)
		list, err = s.ListAlgorithms(ctx, alice.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"a1"}, ids(list))
	})
}

func TestConcurrentCreateOfOneAPINameHasOneWinner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = s.CreateAlgorithm(ctx, newAlgorithm(fmt.Sprintf("a%d", i), alice.ID, "same"))
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			require.True(t, errors.Is(err, ErrConflict), "unexpected error: %v", err)
		}
		require.Equal(t, 1, wins)
		list, err := s.ListAlgorithms(ctx, alice.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
	})
}

// The serving and staged revisions the workflow projects come back byte for
// byte in the row and the list, and a nil clears them.
func TestAlgorithmServingAndStaged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "seg")))
		got, err := s.GetAlgorithm(ctx, alice.ID, "a1")
		require.NoError(t, err)
		require.Nil(t, got.Serving, "nothing serves a new algorithm")
		require.Nil(t, got.Staged)

		serving := json.RawMessage(`{"code_revision":1,"commit":"abc","install_revision":1,"requirements":[],"since":"2026-12-06T20:00:00Z","endpoint":"https://e"}`)
		staged := json.RawMessage(`{"code_revision":2,"tested":false,"test_passed":false}`)
		require.NoError(t, s.UpdateAlgorithmState(ctx, "a1", StateUpdate{Step: "code_fetched", Status: StatusLive, Serving: serving, Staged: staged}))
		list, err := s.ListAlgorithms(ctx, alice.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, serving, list[0].Serving)
		require.Equal(t, staged, list[0].Staged)

		require.NoError(t, s.UpdateAlgorithmState(ctx, "a1", StateUpdate{Step: "completed", Status: StatusLive, Serving: serving}))
		got, err = s.GetAlgorithmByID(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, serving, got.Serving)
		require.Nil(t, got.Staged, "completed: nothing staged any more")

		require.Error(t, s.UpdateAlgorithmState(ctx, "a1", StateUpdate{Status: StatusLive, Serving: json.RawMessage(`{"code_revision":`)}))
		got, err = s.GetAlgorithmByID(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, serving, got.Serving, "a refused update changes nothing")
	})
}
