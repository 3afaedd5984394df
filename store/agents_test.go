package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The agent channel's rows on every backend: one credential per server
// (replacing the old one; a hash is one server's), and a command's life:
// pending, claimed once under a lease, reissued (the lease void), finished
// only under its current lease, never reissued once done.
func TestAgentCredentialsAndCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)

		require.NoError(t, s.SetAgentCredential(ctx, "srv-a", "hash-1"))
		id, err := s.AgentServerByCredential(ctx, "hash-1")
		require.NoError(t, err)
		require.Equal(t, "srv-a", id)
		require.NoError(t, s.SetAgentCredential(ctx, "srv-a", "hash-2"))
		_, err = s.AgentServerByCredential(ctx, "hash-1")
		require.ErrorIs(t, err, ErrUnauthorized)
		require.ErrorIs(t, s.SetAgentCredential(ctx, "srv-b", "hash-2"), ErrConflict)
		require.NoError(t, s.DeleteAgentCredential(ctx, "srv-a"))
		_, err = s.AgentServerByCredential(ctx, "hash-2")
		require.ErrorIs(t, err, ErrUnauthorized)

		c := AgentCommand{ID: "c1", ServerID: "srv-a", Kind: "install", Payload: `{"r":1}`, State: AgentPending, Attempt: 1, TaskToken: []byte{1, 2, 3}}
		require.NoError(t, s.InsertAgentCommand(ctx, c))
		require.ErrorIs(t, s.InsertAgentCommand(ctx, c), ErrConflict)
		_, ok, err := s.ClaimAgentCommand(ctx, "srv-b", "lease-x")
		require.NoError(t, err)
		require.False(t, ok, "another server's command")
		got, ok, err := s.ClaimAgentCommand(ctx, "srv-a", "lease-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, AgentLeased, got.State)
		require.Equal(t, "lease-1", got.Lease)
		require.Equal(t, []byte{1, 2, 3}, got.TaskToken)
		_, ok, err = s.ClaimAgentCommand(ctx, "srv-a", "lease-2")
		require.NoError(t, err)
		require.False(t, ok, "handed out once")

		ok, err = s.ReissueAgentCommand(ctx, "c1", 2, 5, []byte{4})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.FinishAgentCommand(ctx, "c1", "lease-1", `{"ok":true}`)
		require.NoError(t, err)
		require.False(t, ok, "the old lease is void")
		got, ok, err = s.ClaimAgentCommand(ctx, "srv-a", "lease-3")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 2, got.Attempt)
		require.Equal(t, 5, got.Heartbeat)
		ok, err = s.FinishAgentCommand(ctx, "c1", "lease-3", `{"ok":true}`)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.ReissueAgentCommand(ctx, "c1", 3, 5, []byte{5})
		require.NoError(t, err)
		require.False(t, ok, "done stays done")
		got, err = s.GetAgentCommand(ctx, "c1")
		require.NoError(t, err)
		require.Equal(t, AgentDone, got.State)
		require.Equal(t, `{"ok":true}`, got.Result)
		_, err = s.GetAgentCommand(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

// A server's leased commands go back to pending (lease void, attempt and
// task token kept) when its agent starts anew; other servers' commands, and
// pending or done ones, stay as they are.
func TestRequeueAgentLeases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		require.NoError(t, s.SetAgentCredential(ctx, "srv-a", "hash-a"))
		_, _, err := s.NoteAgentBoot(ctx, "srv-a", "boot1")
		require.NoError(t, err)
		for _, c := range []AgentCommand{
			{ID: "a1", ServerID: "srv-a", Kind: "install", State: AgentPending, Attempt: 3, TaskToken: []byte{1}},
			{ID: "a2", ServerID: "srv-a", Kind: "test", State: AgentPending, Attempt: 1, TaskToken: []byte{2}},
			{ID: "b1", ServerID: "srv-b", Kind: "install", State: AgentPending, Attempt: 1, TaskToken: []byte{3}},
		} {
			require.NoError(t, s.InsertAgentCommand(ctx, c))
		}
		for _, srv := range []string{"srv-a", "srv-a", "srv-b"} {
			_, ok, err := s.ClaimAgentCommand(ctx, srv, "lease-"+srv)
			require.NoError(t, err)
			require.True(t, ok)
		}
		ok, err := s.FinishAgentCommand(ctx, "a2", "lease-srv-a", `{"ok":true}`)
		require.NoError(t, err)
		require.True(t, ok)

		changed, n, err := s.NoteAgentBoot(ctx, "srv-a", "boot2")
		require.NoError(t, err)
		require.True(t, changed)
		require.Equal(t, 1, n, "a1 only: a2 is done, b1 another server's")
		a1, err := s.GetAgentCommand(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, AgentPending, a1.State)
		require.Empty(t, a1.Lease)
		require.Equal(t, 3, a1.Attempt)
		require.Equal(t, []byte{1}, a1.TaskToken)
		ok, err = s.FinishAgentCommand(ctx, "a1", "lease-srv-a", `{"ok":true}`)
		require.NoError(t, err)
		require.False(t, ok, "the voided lease cannot finish it")
		a2, err := s.GetAgentCommand(ctx, "a2")
		require.NoError(t, err)
		require.Equal(t, AgentDone, a2.State)
		b1, err := s.GetAgentCommand(ctx, "b1")
		require.NoError(t, err)
		require.Equal(t, AgentLeased, b1.State)
		_, n, err = s.NoteAgentBoot(ctx, "srv-a", "boot3")
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// TestAgentBootAndSilence: a server's agent boot is kept in the store, so a
// second store over the same database (an API restart) sees the boot the
// first recorded: the same boot requeues nothing, a new one requeues the
// leased commands once. A server that has not polled by its silent_after
// has its leased commands listed, and one requeue of a hand-out wins.
func TestAgentBootAndSilence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		require.NoError(t, s.SetAgentCredential(ctx, "srv-a", "hash-a"))
		require.NoError(t, s.SetAgentCredential(ctx, "srv-b", "hash-b"))
		changed, n, err := s.NoteAgentBoot(ctx, "srv-a", "boot1")
		require.NoError(t, err)
		require.True(t, changed, "the first boot recorded")
		require.Zero(t, n)
		require.NoError(t, s.InsertAgentCommand(ctx, AgentCommand{ID: "a1", ServerID: "srv-a", Kind: "test", State: AgentPending, Attempt: 1, TaskToken: []byte{1}}))
		require.NoError(t, s.InsertAgentCommand(ctx, AgentCommand{ID: "b1", ServerID: "srv-b", Kind: "test", State: AgentPending, Attempt: 1, TaskToken: []byte{2}}))
		_, ok, err := s.ClaimAgentCommand(ctx, "srv-a", "lease-1")
		require.NoError(t, err)
		require.True(t, ok)
		_, ok, err = s.ClaimAgentCommand(ctx, "srv-b", "lease-b")
		require.NoError(t, err)
		require.True(t, ok)

		again := s
		if dsn != "sqlite://:memory:" { // a second Open of :memory: is another database
			again = open(t, dsn)
		}
		changed, n, err = again.NoteAgentBoot(ctx, "srv-a", "boot1")
		require.NoError(t, err)
		require.False(t, changed, "the same boot, seen by another store over the same database")
		require.Zero(t, n)
		a1, err := again.GetAgentCommand(ctx, "a1")
		require.NoError(t, err)
		require.Equal(t, AgentLeased, a1.State, "not handed out again")
		changed, n, err = again.NoteAgentBoot(ctx, "srv-a", "boot2")
		require.NoError(t, err)
		require.True(t, changed)
		require.Equal(t, 1, n, "a1 back to pending; b1 is another server's")
		changed, _, err = s.NoteAgentBoot(ctx, "nosuch", "boot1")
		require.NoError(t, err)
		require.False(t, changed, "an unknown server records nothing")

		// Silence: srv-b's agent polled last with a deadline now past.
		now := time.Now()
		require.NoError(t, s.NoteAgentPoll(ctx, "srv-a", now.Add(time.Minute)))
		require.NoError(t, s.NoteAgentPoll(ctx, "srv-b", now.Add(-time.Second)))
		_, ok, err = s.ClaimAgentCommand(ctx, "srv-a", "lease-2")
		require.NoError(t, err)
		require.True(t, ok)
		silent, err := s.SilentAgentLeases(ctx, now)
		require.NoError(t, err)
		require.Len(t, silent, 1)
		require.Equal(t, "b1", silent[0].ID)
		require.Equal(t, "lease-b", silent[0].Lease)
		ok, err = s.RequeueAgentLease(ctx, "b1", "lease-other")
		require.NoError(t, err)
		require.False(t, ok, "another hand-out's lease")
		ok, err = s.RequeueAgentLease(ctx, "b1", "lease-b")
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = s.RequeueAgentLease(ctx, "b1", "lease-b")
		require.NoError(t, err)
		require.False(t, ok, "one requeue per hand-out")
		silent, err = s.SilentAgentLeases(ctx, now)
		require.NoError(t, err)
		require.Empty(t, silent)

		// A waiting batch chunk reads the silence itself.
		at, ok, err := s.AgentSilentAfter(ctx, "srv-a")
		require.NoError(t, err)
		require.True(t, ok)
		require.WithinDuration(t, now.Add(time.Minute), at, time.Millisecond)
		require.NoError(t, s.SetAgentCredential(ctx, "srv-c", "hash-c"))
		at, ok, err = s.AgentSilentAfter(ctx, "srv-c")
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, at.IsZero(), "never polled: no deadline yet")
		require.NoError(t, s.DeleteAgentCredential(ctx, "srv-b"))
		for _, srv := range []string{"srv-b", "nosuch"} {
			_, ok, err = s.AgentSilentAfter(ctx, srv)
			require.NoError(t, err)
			require.False(t, ok, "%s has no agent", srv)
		}
	})
}
