package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWebhookSecretsAndAttempts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "seg")))

		_, err := s.WebhookSecret(ctx, "a1")
		require.ErrorIs(t, err, ErrNotFound)
		require.NoError(t, s.SetWebhookSecret(ctx, "a1", []byte{0, 1, 2, 0xff}))
		got, err := s.WebhookSecret(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, []byte{0, 1, 2, 0xff}, got)
		// A rotation replaces it.
		require.NoError(t, s.SetWebhookSecret(ctx, "a1", []byte("second")))
		got, err = s.WebhookSecret(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, []byte("second"), got)
		require.ErrorIs(t, s.SetWebhookSecret(ctx, "nope", []byte("x")), ErrNotFound)

		at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		for i, outcome := range []string{WebhookRetry, WebhookRetry, WebhookDelivered} {
			require.NoError(t, s.AddWebhookAttempt(ctx, WebhookAttempt{
				DeliveryID: "p1-completed", AlgorithmID: "a1", SubjectID: "p1", Event: "completed",
				URL: "https://hooks.example.com/x", Attempt: i + 1, At: at.Add(time.Duration(i) * time.Second),
				Duration: 1500 * time.Millisecond, StatusCode: []int{500, 0, 204}[i], Outcome: outcome,
				Error: []string{"HTTP 500", "connection \x00 refused", ""}[i],
			}))
		}
		require.NoError(t, s.AddWebhookAttempt(ctx, WebhookAttempt{DeliveryID: "p2-start", AlgorithmID: "a1", SubjectID: "p2", Event: "start", Attempt: 1, Outcome: WebhookDelivered}))
		list, err := s.ListWebhookAttempts(ctx, "a1", "p1", 0)
		require.NoError(t, err)
		require.Len(t, list, 3)
		require.Equal(t, 1, list[0].Attempt)
		require.Equal(t, at, list[0].At)
		require.Equal(t, 1500*time.Millisecond, list[0].Duration)
		require.Equal(t, 500, list[0].StatusCode)
		require.Equal(t, "connection \uFFFD refused", list[1].Error)
		require.Equal(t, WebhookDelivered, list[2].Outcome)
		require.Equal(t, "p1-completed", list[2].DeliveryID)
		require.Greater(t, list[2].ID, list[1].ID)
		other, err := s.ListWebhookAttempts(ctx, "a1", "p2", 0)
		require.NoError(t, err)
		require.Len(t, other, 1)
		require.False(t, other[0].At.IsZero())
		require.ErrorIs(t, s.AddWebhookAttempt(ctx, WebhookAttempt{AlgorithmID: "nope", DeliveryID: "x"}), ErrNotFound)
	})
}
