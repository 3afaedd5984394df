package batch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// livenessStore is a test double of the agent's liveness rows for the
// watch's logic; TestBatchAgentGoneMidChunk (integration) runs it against
// the real store, hub and a stopped agent.
type livenessStore struct {
	silentAfter time.Time
	has         bool
	serves      string
	err         error
}

func (s *livenessStore) AgentSilentAfter(context.Context, string) (time.Time, bool, error) {
	return s.silentAfter, s.has, s.err
}

func (s *livenessStore) BatchAgentServer(context.Context, string) (string, error) {
	return s.serves, s.err
}

// TestAgentWatchCountsSilenceFromItsOwnLook: the bound counts from the
// first look that found the agent past its deadline (a deadline left old
// by the platform's own downtime counts nothing), a poll in between starts
// it again, looks are a second apart, and an unreadable store blames no
// agent; a deleted or replaced server ends the wait at once.
func TestAgentWatchCountsSilenceFromItsOwnLook(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &livenessStore{silentAfter: t0.Add(-time.Hour), has: true, serves: "srv"}
	w := &agentWatch{st: st, deployment: "dep", server: "srv", bound: 10 * time.Second}

	require.Empty(t, w.gone(ctx, t0), "an hour-old deadline: silence starts now")
	require.Empty(t, w.gone(ctx, t0.Add(9*time.Second)))
	require.Empty(t, w.gone(ctx, t0.Add(9500*time.Millisecond)), "no look within a second of the last")

	st.silentAfter = t0.Add(20 * time.Second) // it polled
	require.Empty(t, w.gone(ctx, t0.Add(11*time.Second)))
	st.silentAfter = t0.Add(12 * time.Second)
	require.Empty(t, w.gone(ctx, t0.Add(13*time.Second)), "silent again: counted from here")
	require.Empty(t, w.gone(ctx, t0.Add(22*time.Second)))
	require.Contains(t, w.gone(ctx, t0.Add(23*time.Second)), "silent for 10s")

	st.err = errors.New("database down")
	w = &agentWatch{st: st, deployment: "dep", server: "srv", bound: time.Second}
	require.Empty(t, w.gone(ctx, t0))
	require.Empty(t, w.gone(ctx, t0.Add(time.Minute)), "the platform's trouble, not the agent's")

	st = &livenessStore{silentAfter: t0.Add(time.Minute), has: false, serves: "srv"}
	w = &agentWatch{st: st, deployment: "dep", server: "srv", bound: time.Hour}
	require.Contains(t, w.gone(ctx, t0), "server srv is gone")
	st.has, st.serves = true, ""
	w.next = time.Time{}
	require.Contains(t, w.gone(ctx, t0), "was stopped")
	st.serves = "srv2"
	w.next = time.Time{}
	require.Contains(t, w.gone(ctx, t0), "moved from server srv to server srv2")

	var none *agentWatch
	require.Empty(t, none.gone(ctx, t0), "no watch: the chunk waits")
}

// TestStillGoneUntilTheAgentPollsAgain: once this worker took a chunk back
// from a silent agent, the next chunks skip that agent until it polls
// again (its silent_after in the future); an agent never given up on is
// not skipped, however old its deadline (a platform restart).
func TestStillGoneUntilTheAgentPollsAgain(t *testing.T) {
	ctx := context.Background()
	ls := &livenessStore{silentAfter: time.Now().Add(-time.Hour), has: true, serves: "srv"}
	a := &Activities{Store: struct {
		Store
		*livenessStore
	}{nil, ls}}
	require.False(t, a.stillGone(ctx, "srv"), "never given up on")
	a.goneAgents.Store("srv", time.Now())
	require.True(t, a.stillGone(ctx, "srv"))
	ls.silentAfter = time.Now().Add(time.Minute) // it polled
	require.False(t, a.stillGone(ctx, "srv"))
	ls.silentAfter = time.Now().Add(-time.Second)
	require.False(t, a.stillGone(ctx, "srv"), "forgotten once it polled: the next give-up needs a wait of its own")
}
