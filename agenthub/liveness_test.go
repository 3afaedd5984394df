package agenthub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/store"
)

// TestBootKeptAcrossHubRestart: an agent's boot ID is kept in the store,
// so a hub started anew over the same store (an API restart) hands nothing
// out again to an agent that did not restart: its first poll after the
// restart gets nothing, the command stays under its lease, and the answer
// under that lease completes the workflow. The same agent process then
// restarted (a new boot) gets it back at once.
func TestBootKeptAcrossHubRestart(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	boot1, boot2 := protocol.NewBoot(), protocol.NewBoot()
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "install-1", Kind: "install", Deployment: e.algID})
	code, first := e.poll("srv-a", cred, boot1, "10s")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "install-1", first.ID)

	restarted, err := agenthub.New(agenthub.Config{Store: e.st, Temporal: e.c, Key: e.key, Logger: quiet(), SilenceEvery: -1})
	require.NoError(t, err)
	defer restarted.Close()
	ctx := context.Background()
	got, err := restarted.NextCommand(ctx, "srv-a", boot1, 0)
	require.NoError(t, err)
	require.Nil(t, got, "the restarted hub hands nothing out again to the same agent process")
	c := e.command("install-1", store.AgentLeased)
	require.Equal(t, first.Lease, c.Lease, "still under its first lease")
	require.Equal(t, 1, c.Attempt)

	// Another command, then that agent restarts: the restarted hub hands
	// the leased one to the new process at once (nothing else does).
	run2 := e.start(agenthub.Cmd{Server: "srv-a", ID: "test-1", Kind: "test", Deployment: e.algID})
	e.command("test-1", store.AgentPending)
	got, err = restarted.NextCommand(ctx, "srv-a", boot1, 0)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Equal(t, "test-1", got.ID)
	again, err := restarted.NextCommand(ctx, "srv-a", boot2, 0)
	require.NoError(t, err)
	require.NotNil(t, again)
	require.Contains(t, []string{"install-1", "test-1"}, again.ID, "a new boot gets its previous process's commands")
	got2, err := restarted.NextCommand(ctx, "srv-a", boot2, 0)
	require.NoError(t, err)
	require.NotNil(t, got2)
	require.ElementsMatch(t, []string{"install-1", "test-1"}, []string{again.ID, got2.ID})
	leases := map[string]string{again.ID: again.Lease, got2.ID: got2.Lease}
	for id, lease := range leases {
		_, err := restarted.CommandResult(ctx, "srv-a", protocol.Result{CommandID: id, Lease: lease, OK: true, Output: json.RawMessage(`{"id":"` + id + `"}`)})
		require.NoError(t, err)
	}
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"install-1"}`, string(out.Output))
	out, err = e.result(run2)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"test-1"}`, string(out.Output))
}

// TestSilentAgentFailsItsAttempt: an agent that took a command and then
// stops polling (here: its poll loop gone while its progress still keeps
// the activity's heartbeat, so only the hub's silence check can notice) is
// noticed within twice its poll period: the hand-out's lease is voided,
// the activity attempt fails with ErrTypeAgentSilent (retried: attempt 2
// re-records the command), and the deployment's log says so. When the
// same agent process polls again, it gets the command under a new lease
// and its answer completes the workflow; the voided lease is refused.
func TestSilentAgentFailsItsAttempt(t *testing.T) {
	e := newEnvWith(t, func(c *agenthub.Config) {
		c.SilenceEvery, c.SilenceGrace = 100*time.Millisecond, time.Millisecond
	})
	cred := e.mint("srv-a")
	boot := protocol.NewBoot()
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "test-1", Kind: "test", Deployment: e.algID})
	// 3 s: as an agent's link asks while it runs commands (RunningWait).
	code, first := e.poll("srv-a", cred, boot, "3s")
	require.Equal(t, http.StatusOK, code)
	polledAt := time.Now()
	require.Equal(t, 1, first.Attempt)

	// Signs of life for Temporal, none for the hub's silence check.
	var stale atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			code, _ := e.call(http.MethodPost, protocol.CommandPath("srv-a", "test-1", "progress"), cred,
				protocol.Progress{CommandID: "test-1", Lease: first.Lease})
			if code == http.StatusConflict {
				stale.Store(true)
			}
		}
	}()

	var c store.AgentCommand
	require.Eventually(t, func() bool {
		var err error
		c, err = e.st.GetAgentCommand(context.Background(), "test-1")
		return err == nil && c.Attempt == 2
	}, 20*time.Second, 50*time.Millisecond, "the silent agent's attempt failed and was retried")
	noticed := time.Since(polledAt)
	// Its poll (3 s asked) was answered at once with the command; then two
	// periods of 3 s, and the check's tick.
	require.Greater(t, noticed, 2*3*time.Second-time.Second, "not before two periods")
	require.Less(t, noticed, 2*3*time.Second+2*time.Second)
	require.Equal(t, store.AgentPending, c.State)
	require.Eventually(t, stale.Load, 5*time.Second, 50*time.Millisecond, "the voided lease is refused")
	d, err := e.c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Len(t, d.PendingActivities, 1)
	require.NotNil(t, d.PendingActivities[0].LastFailure)
	require.Equal(t, agenthub.ErrTypeAgentSilent, d.PendingActivities[0].LastFailure.GetApplicationFailureInfo().GetType())
	evs, err := e.st.ListEvents(context.Background(), e.algID, 0, 0)
	require.NoError(t, err)
	var said int
	for _, ev := range evs {
		if strings.Contains(ev.Message, "stopped polling") {
			said++
			require.Equal(t, "test", ev.Kind)
		}
	}
	require.Equal(t, 1, said, "said once")

	code, back := e.poll("srv-a", cred, boot, "10s")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "test-1", back.ID)
	require.Equal(t, 2, back.Attempt)
	require.NotEqual(t, first.Lease, back.Lease)
	code, _ = e.call(http.MethodPost, protocol.CommandPath("srv-a", "test-1", "result"), cred,
		protocol.Result{CommandID: "test-1", Lease: back.Lease, OK: true, Output: json.RawMessage(`{"ok":true}`)})
	require.Equal(t, http.StatusOK, code)
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, string(out.Output))
	t.Logf("FIGURES silent agent noticed %v after its last poll ended (poll period 3 s)", noticed.Round(time.Millisecond))
}
