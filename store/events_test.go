package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, alice := fixture(t, dsn)
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a1", alice.ID, "ocr")))
		require.NoError(t, s.CreateAlgorithm(ctx, newAlgorithm("a2", alice.ID, "seg")))

		for i := range 25 {
			require.NoError(t, s.AddEvent(ctx, "a1", "pip", fmt.Sprintf("line %d", i)))
			require.NoError(t, s.AddEvent(ctx, "a2", "pip", "other"))
		}
		var all []Event
		after := int64(0)
		for {
			page, err := s.ListEvents(ctx, "a1", after, 10)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 10)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].ID
		}
		require.Len(t, all, 25)
		for i, e := range all {
			require.Equal(t, fmt.Sprintf("line %d", i), e.Message)
			require.Equal(t, "a1", e.AlgorithmID)
			require.Equal(t, "pip", e.Kind)
			require.False(t, e.At.IsZero())
			if i > 0 {
				require.Greater(t, e.ID, all[i-1].ID)
			}
		}
		def, err := s.ListEvents(ctx, "a1", 0, 0)
		require.NoError(t, err)
		require.Len(t, def, 25)

		// Long, multi-byte, invalid UTF-8 and NUL: stored cut and cleaned.
		long := strings.Repeat("é", MaxEventMessage) // 2 bytes each
		require.NoError(t, s.AddEvent(ctx, "a1", "test", long))
		require.NoError(t, s.AddEvent(ctx, "a1", "test", "bad \xff byte and \x00 nul"))
		tail, err := s.ListEvents(ctx, "a1", after, 10)
		require.NoError(t, err)
		require.Len(t, tail, 2)
		require.Equal(t, long[:MaxEventMessage], tail[0].Message)
		require.Equal(t, "bad \uFFFD byte and \uFFFD nul", tail[1].Message)

		require.ErrorIs(t, s.AddEvent(ctx, "nope", "pip", "x"), ErrNotFound)
		none, err := s.ListEvents(ctx, "nope", 0, 10)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}
