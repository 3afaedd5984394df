package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPredictionsLifecycle: create, idempotent create (concurrent), start,
// finish once (a later finish loses), paging newest first, the running count
// and the retention sweep's queries, on SQLite and PostgreSQL.
func TestPredictionsLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, u := fixture(t, dsn)
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("alg1", u.ID, "seg")))
		a, err := s.GetAlgorithmByAPIName(ctx, "seg")
		require.NoError(t, err)
		require.Equal(t, "alg1", a.ID)
		_, err = s.GetAlgorithmByAPIName(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)

		// Two concurrent creates with one key: one row, both see its id.
		var wg sync.WaitGroup
		ids := make([]string, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, _, err := s.CreatePrediction(ctx, Prediction{ID: []string{"p_a", "p_b"}[i], AlgorithmID: "alg1", IdempotencyKey: "k1", InputKind: "json"})
				require.NoError(t, err)
				ids[i] = p.ID
			}()
		}
		wg.Wait()
		require.Equal(t, ids[0], ids[1])
		first := ids[0]

		for i := range 4 {
			_, created, err := s.CreatePrediction(ctx, Prediction{ID: "p_" + string(rune('c'+i)), AlgorithmID: "alg1"})
			require.NoError(t, err)
			require.True(t, created)
		}
		_, _, err = s.CreatePrediction(ctx, Prediction{ID: "p_x", AlgorithmID: "missing"})
		require.ErrorIs(t, err, ErrNotFound)
		n, err := s.CountRunningPredictions(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, 5, n)

		moved, err := s.StartPrediction(ctx, first)
		require.NoError(t, err)
		require.True(t, moved)
		d := 1500 * time.Millisecond
		ok, err := s.FinishPrediction(ctx, first, PredictionResult{Status: PredictionSucceeded, OutputJSON: []byte(`{"a":1}`), PredictTime: &d, Retention: -time.Second})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.FinishPrediction(ctx, first, PredictionResult{Status: PredictionCanceled})
		require.NoError(t, err)
		require.False(t, ok, "the first end wins")
		p, err := s.GetPrediction(ctx, "alg1", first)
		require.NoError(t, err)
		require.Equal(t, PredictionSucceeded, p.Status)
		require.JSONEq(t, `{"a":1}`, string(p.OutputJSON))
		require.Equal(t, d, *p.PredictTime)
		require.NotNil(t, p.StartedAt)
		_, err = s.GetPrediction(ctx, "other", first)
		require.ErrorIs(t, err, ErrNotFound)

		// Paging: newest first, no repeats, everything once.
		var seen []string
		var page PredictionPage
		for {
			ps, err := s.ListPredictions(ctx, "alg1", page, 2)
			require.NoError(t, err)
			if len(ps) == 0 {
				break
			}
			for _, p := range ps {
				seen = append(seen, p.ID)
			}
			last := ps[len(ps)-1]
			page = PredictionPage{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		require.Len(t, seen, 5)
		require.Equal(t, first, seen[4], "the oldest last")

		exp, err := s.ExpiredPredictions(ctx, time.Now(), 10)
		require.NoError(t, err)
		require.Len(t, exp, 1)
		require.NoError(t, s.MarkPredictionExpired(ctx, first))
		exp, err = s.ExpiredPredictions(ctx, time.Now(), 10)
		require.NoError(t, err)
		require.Empty(t, exp)
		p, err = s.GetPrediction(ctx, "alg1", first)
		require.NoError(t, err)
		require.NotNil(t, p.ExpiredAt)
		require.Nil(t, p.OutputJSON)
	})
}
