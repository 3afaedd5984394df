package retryafter

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func header(v string) http.Header {
	h := http.Header{}
	if v != "" {
		h.Set("Retry-After", v)
	}
	return h
}

func TestOfSeconds(t *testing.T) {
	for _, c := range []struct {
		value string
		want  time.Duration
	}{
		{"", Default},            // absent
		{"soon", Default},        // neither seconds nor a date
		{"-3", Default},          // negative seconds are not seconds
		{"1.5", Default},         // nor are fractions
		{"7", 7 * time.Second},   // seconds
		{" 7 ", 7 * time.Second}, // space around is not part of the value
		{"0", Min},               // never a busy loop
		{"3600", Max},            // never a stalled chunk
	} {
		require.Equal(t, c.want, Of(header(c.value)), "Retry-After %q", c.value)
	}
}

func TestOfHTTPDate(t *testing.T) {
	// An HTTP date has whole seconds: 10 s ahead reads as 9 to 10 s.
	in10 := time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)
	d := Of(header(in10))
	require.Greater(t, d, 8*time.Second)
	require.LessOrEqual(t, d, 10*time.Second)

	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	require.Equal(t, Min, Of(header(past)))
	far := time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat)
	require.Equal(t, Max, Of(header(far)))
}

func TestSleepWaits(t *testing.T) {
	start := time.Now()
	require.NoError(t, Sleep(context.Background(), 30*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
}

func TestSleepStopsWithTheCause(t *testing.T) {
	why := errors.New("chunk cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { cancel(why) })
	start := time.Now()
	err := Sleep(ctx, time.Minute)
	require.ErrorIs(t, err, why)
	require.Less(t, time.Since(start), 10*time.Second)

	// Already done: returns at once, with the plain cause when none was given.
	done, stop := context.WithCancel(context.Background())
	stop()
	require.ErrorIs(t, Sleep(done, time.Minute), context.Canceled)
}
