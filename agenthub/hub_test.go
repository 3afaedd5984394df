package agenthub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/store"
)

// TestRunOnServerHappyPath: a workflow's RunOnServer is answered by the
// agent through the real API over TLS; the output reaches the workflow,
// progress lines arrive as activity heartbeats (seen on the pending
// activity) and in the deployment's event log, and the command outlives its
// heartbeat timeout because the agent heartbeats while it works.
func TestRunOnServerHappyPath(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	release := make(chan struct{})
	var n counter
	e.agent("srv-a", cred, t.TempDir(), map[string]link.Handler{
		"echo": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			n.started.Add(1)
			progress("line 1", "line 2")
			progress("echo: line 3") // the kind prefix of the agent's log goes
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			time.Sleep(2 * heartbeatTimeout) // longer than the heartbeat timeout: the link's signs of life keep it
			n.finished.Add(1)
			return json.RawMessage(`{"echo":` + string(cmd.Payload) + `,"attempt":` + fmt.Sprint(cmd.Attempt) + `}`), nil
		}),
	})
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "cmd-1", Kind: "echo", Deployment: e.algID, Payload: json.RawMessage(`{"x":1}`)})

	// The progress is the pending activity's heartbeat details.
	require.Eventually(t, func() bool {
		d, err := e.c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil || len(d.PendingActivities) != 1 || d.PendingActivities[0].HeartbeatDetails == nil {
			return false
		}
		for _, p := range d.PendingActivities[0].HeartbeatDetails.Payloads {
			var lines []string
			if json.Unmarshal(p.Data, &lines) == nil && slices.Contains(lines, "echo: line 3") {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "progress never showed as a heartbeat")
	close(release)

	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"echo":{"x":1},"attempt":1}`, string(out.Output))
	require.EqualValues(t, 1, n.started.Load())
	require.EqualValues(t, 1, n.finished.Load())

	evs, err := e.st.ListEvents(context.Background(), e.algID, 0, 0)
	require.NoError(t, err)
	var msgs []string
	for _, ev := range evs {
		require.Equal(t, "echo", ev.Kind, "a line is logged under its command's kind")
		msgs = append(msgs, ev.Message)
	}
	require.Equal(t, []string{"line 1", "line 2", "line 3"}, msgs)

	// The task token is sealed at rest: the stored bytes are not it.
	c, err := e.st.GetAgentCommand(context.Background(), "cmd-1")
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, c.State)
	require.NotEmpty(t, c.TaskToken)

	// A command the agent answers as failed fails the activity, not retried
	// (another server: srv-a's agent would answer "no handler for fail").
	e.agent("srv-f", e.mint("srv-f"), t.TempDir(), map[string]link.Handler{
		"fail": link.HandlerFunc(func(context.Context, protocol.Command, func(...string)) (json.RawMessage, error) {
			return nil, errors.New("pip: no matching distribution for nopkg")
		}),
	})
	_, err = e.result(e.start(agenthub.Cmd{Server: "srv-f", ID: "cmd-fail", Kind: "fail"}))
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, agenthub.ErrTypeCommandFailed, appErr.Type())
	require.Contains(t, appErr.Error(), "no matching distribution")
	require.Equal(t, 1, e.command("cmd-fail", store.AgentDone).Attempt)
}

// TestAgentKilledMidCommand: the agent dies while a command runs; the
// restarted agent (a new link: a new boot ID) gets the command back on its
// first poll, in the same activity attempt (no wait for the heartbeat
// timeout) under a new lease, runs it and answers once. The first run's
// late answer, had it come, would be refused.
func TestAgentKilledMidCommand(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	state := t.TempDir()
	var n counter
	var attempts []int
	attemptsCh := make(chan int, 4)
	handlers := map[string]link.Handler{
		"install": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			n.started.Add(1)
			attemptsCh <- cmd.Attempt
			if n.started.Load() == 1 {
				<-ctx.Done() // the first run never finishes: its agent is killed
				return nil, ctx.Err()
			}
			progress("installed")
			n.finished.Add(1)
			return json.RawMessage(`{"venv":"ok"}`), nil
		}),
	}
	stop := e.agent("srv-a", cred, state, handlers)
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "install-1", Kind: "install", Deployment: e.algID})
	first := e.command("install-1", store.AgentLeased)
	attempts = append(attempts, <-attemptsCh)
	stop() // killed mid-command

	// A second agent for the same server (the restarted one) gets it back
	// at once: its new boot ID voids what the first one held.
	e.agent("srv-a", cred, state, handlers)
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"venv":"ok"}`, string(out.Output))
	attempts = append(attempts, <-attemptsCh)
	require.Equal(t, []int{1, 1}, attempts, "handed out again within the first attempt, not by a retry after the heartbeat timeout")
	require.EqualValues(t, 2, n.started.Load())
	require.EqualValues(t, 1, n.finished.Load(), "answered once")

	// The first hand-out's lease answers nothing now.
	code, body := e.call(http.MethodPost, protocol.CommandPath("srv-a", "install-1", "result"), cred,
		protocol.Result{CommandID: "install-1", Lease: first.Lease, OK: true, Output: json.RawMessage(`{"venv":"late"}`)})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_command_done", body)
}

// TestAgentCutOffFromAPI: the network between agent and platform goes while
// a command runs, for longer than the heartbeat timeout: the step waits (the
// activity retries and the command waits, pending, for its agent) and
// resumes when the API is back; the handler runs once either way.
//   - finished while cut off: the agent keeps its result but cannot post it;
//     back, its stale answer is refused, the command comes back under a new
//     lease and the agent answers from the kept result.
//   - still running when back: the command handed out again moves the
//     running execution to the new lease; its answer is taken.
func TestAgentCutOffFromAPI(t *testing.T) {
	for _, finishWhileCut := range []bool{true, false} {
		t.Run(fmt.Sprintf("finished-while-cut-off=%v", finishWhileCut), func(t *testing.T) {
			e := newEnv(t)
			cred := e.mint("srv-a")
			var n counter
			release := make(chan struct{})
			e.agent("srv-a", cred, t.TempDir(), map[string]link.Handler{
				"test": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
					n.started.Add(1)
					<-release
					n.finished.Add(1)
					return json.RawMessage(`{"passed":true}`), nil
				}),
			})
			run := e.start(agenthub.Cmd{Server: "srv-a", ID: "test-1", Kind: "test", Deployment: e.algID})
			first := e.command("test-1", store.AgentLeased)
			e.api.stop()
			if finishWhileCut {
				close(release)
			}
			c := e.command("test-1", store.AgentPending)
			require.Greater(t, c.Attempt, first.Attempt, "the activity was retried")
			time.Sleep(heartbeatTimeout)
			d, err := e.c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
			require.NoError(t, err)
			require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.WorkflowExecutionInfo.Status, "the step waits for its agent")

			e.api.start(t)
			if !finishWhileCut {
				again := e.command("test-1", store.AgentLeased)
				require.NotEqual(t, first.Lease, again.Lease)
				close(release)
			}
			out, err := e.result(run)
			require.NoError(t, err)
			require.JSONEq(t, `{"passed":true}`, string(out.Output))
			require.EqualValues(t, 1, n.started.Load(), "run once")
			require.EqualValues(t, 1, n.finished.Load())
		})
	}
}

// TestChannelRefusals: another server's credential (403), a user's API
// token or a wrong credential (401), a forged command ID (404), a replayed
// result under an old lease (409 agent_stale_lease), a different result
// for a completed command (409 agent_command_done) and the same one again
// (200, duplicate), a missing protocol version (400), a body naming another
// command than the path (400).
func TestChannelRefusals(t *testing.T) {
	e := newEnv(t)
	credA, credB := e.mint("srv-a"), e.mint("srv-b")
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "a-1", Kind: "noop"})
	e.command("a-1", store.AgentPending)

	// B cannot fetch A's commands, nor can a credential-less or user caller.
	code, body := e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s", credB, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "agent_forbidden", body)
	code, body = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s", "ac_not-an-agent", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "unauthorized", body)
	code, _ = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s", "ag_forged", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=forever", credA, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "invalid_query", body)
	// A server credential is no API token.
	code, body = e.call(http.MethodGet, "/api/v1/me", credA, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "unauthorized", body)
	// B polls its own: nothing for it.
	code, _ = e.call(http.MethodGet, protocol.NextPath("srv-b")+"?wait=0s", credB, nil)
	require.Equal(t, http.StatusNoContent, code)

	// A fetches its command (as its agent would) and gets a lease.
	cmd := fetch(t, e, "srv-a", credA)
	require.Equal(t, "a-1", cmd.ID)
	require.NotEmpty(t, cmd.Lease)

	// B answers A's command under its own path: 403 (the command is A's).
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-b", "a-1", "result"), credB,
		protocol.Result{CommandID: "a-1", Lease: cmd.Lease, OK: true})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "agent_forbidden", body)
	code, _ = e.call(http.MethodPost, protocol.CommandPath("srv-b", "a-1", "progress"), credB,
		protocol.Progress{CommandID: "a-1", Lease: cmd.Lease, Lines: []string{"x"}})
	require.Equal(t, http.StatusForbidden, code)
	// A forged command ID: 404; a forged lease: 409.
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "forged", "result"), credA,
		protocol.Result{CommandID: "forged", Lease: cmd.Lease, OK: true})
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "agent_command_not_found", body)
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "result"), credA,
		protocol.Result{CommandID: "a-1", Lease: "0123456789abcdef0123456789abcdef", OK: true})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_stale_lease", body)
	// The body must name the path's command.
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "result"), credA,
		protocol.Result{CommandID: "other", Lease: cmd.Lease, OK: true})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "invalid_field", body)
	// No protocol version header: 400.
	req, err := http.NewRequest(http.MethodGet, "https://"+e.api.addr+protocol.NextPath("srv-a"), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+credA)
	resp, err := e.httpClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The real answer completes the workflow.
	code, _ = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "result"), credA,
		protocol.Result{CommandID: "a-1", Lease: cmd.Lease, OK: true, Output: json.RawMessage(`{"n":1}`)})
	require.Equal(t, http.StatusOK, code)
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"n":1}`, string(out.Output))
	// The same answer again (its acknowledgement lost): 200, a duplicate.
	code, _ = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "result"), credA,
		protocol.Result{CommandID: "a-1", Lease: cmd.Lease, OK: true, Output: json.RawMessage(`{"n": 1}`)})
	require.Equal(t, http.StatusOK, code)
	// Another answer, replayed under the old lease: refused.
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "result"), credA,
		protocol.Result{CommandID: "a-1", Lease: cmd.Lease, OK: true, Output: json.RawMessage(`{"n":2}`)})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_command_done", body)
	// Progress for a done command: stale.
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "a-1", "progress"), credA,
		protocol.Progress{CommandID: "a-1", Lease: cmd.Lease})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_stale_lease", body)

	// A new credential for A replaces the old one at once.
	newA := e.mint("srv-a")
	code, _ = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s", credA, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s", newA, nil)
	require.Equal(t, http.StatusNoContent, code)

	// A closing hub (the API shutting down) ends long polls at once.
	e.hub.Close()
	began := time.Now()
	code, _ = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=20s", newA, nil)
	require.Equal(t, http.StatusNoContent, code)
	require.Less(t, time.Since(began), 5*time.Second)
}

// fetch long-polls once for server's next command.
func fetch(t *testing.T, e *env, server, cred string) protocol.Command {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+e.api.addr+protocol.NextPath(server)+"?wait=5s", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	resp, err := e.httpClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var cmd protocol.Command
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cmd))
	return cmd
}

// TestWorkerRestartWhileCommandPending: the worker stops while a command is
// pending; the agent's answer completes the activity through the API (no
// worker needed for that), and the restarted worker finishes the workflow.
func TestWorkerRestartWhileCommandPending(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	var n counter
	release := make(chan struct{})
	e.agent("srv-a", cred, t.TempDir(), map[string]link.Handler{
		"swap": link.HandlerFunc(func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
			n.started.Add(1)
			<-release
			n.finished.Add(1)
			return json.RawMessage(`{"serving":2}`), nil
		}),
	})
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "swap-1", Kind: "swap"})
	e.command("swap-1", store.AgentLeased)
	e.worker.Stop()
	close(release)
	e.command("swap-1", store.AgentDone)
	time.Sleep(time.Second)
	e.startWorker()
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"serving":2}`, string(out.Output))
	require.EqualValues(t, 1, n.started.Load())
	require.EqualValues(t, 1, n.finished.Load())
}

// TestCommandRoundTrip measures what the channel adds to a step: a
// workflow's RunOnServer of a command whose handler does nothing, from the
// workflow's start to its result, ten times in a row (API and worker in one
// process, so the agent's poll is woken at once). The figure is logged for
// docs; the bound only catches a channel that waits on its poll interval.
func TestCommandRoundTrip(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	e.agent("srv-a", cred, t.TempDir(), map[string]link.Handler{
		"noop": link.HandlerFunc(func(context.Context, protocol.Command, func(...string)) (json.RawMessage, error) {
			return json.RawMessage(`{}`), nil
		}),
	})
	var took []time.Duration
	for i := range 10 {
		began := time.Now()
		_, err := e.result(e.start(agenthub.Cmd{Server: "srv-a", ID: fmt.Sprintf("noop-%d", i), Kind: "noop"}))
		require.NoError(t, err)
		took = append(took, time.Since(began))
		c, err := e.st.GetAgentCommand(context.Background(), fmt.Sprintf("noop-%d", i))
		require.NoError(t, err)
		t.Logf("run %d: %s to record, %s recorded to done, %s done to result", i, c.CreatedAt.Sub(began), c.UpdatedAt.Sub(c.CreatedAt), time.Since(c.UpdatedAt))
	}
	slices.Sort(took)
	t.Logf("workflow start to result through the agent, 10 runs: min %s, median %s, max %s", took[0], took[5], took[9])
	require.Less(t, took[5], time.Second, "the median round trip waits on something")
}

// poll makes one long poll of server's next command as an agent process with
// boot would; the command is nil on 204.
func (e *env) poll(server, credential, boot, wait string) (int, *protocol.Command) {
	req, err := http.NewRequest(http.MethodGet, "https://"+e.api.addr+protocol.NextPath(server)+"?wait="+wait+"&boot="+boot, nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	resp, err := e.httpClient().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var c protocol.Command
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&c))
	return resp.StatusCode, &c
}

// TestNewBootHandsOutAgain: the channel's side of a restarted agent, poll
// by poll. A command leased to boot 1 is not handed out again to boot 1's
// later polls; the first poll of boot 2 gets it at once, same activity
// attempt, new lease; an answer under boot 1's lease is refused as stale,
// boot 2's completes the workflow. A malformed boot is a 400 naming it.
func TestNewBootHandsOutAgain(t *testing.T) {
	e := newEnv(t)
	cred := e.mint("srv-a")
	boot1, boot2 := protocol.NewBoot(), protocol.NewBoot()
	run := e.start(agenthub.Cmd{Server: "srv-a", ID: "serve-1", Kind: "serve", Deployment: e.algID})

	code, first := e.poll("srv-a", cred, boot1, "10s")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "serve-1", first.ID)
	require.Equal(t, 1, first.Attempt)
	code, _ = e.poll("srv-a", cred, boot1, "0s")
	require.Equal(t, http.StatusNoContent, code, "the same agent process is not handed its own command again")

	start := time.Now()
	code, again := e.poll("srv-a", cred, boot2, "10s")
	require.Equal(t, http.StatusOK, code)
	require.Less(t, time.Since(start), heartbeatTimeout, "handed out on the poll, not after the heartbeat timeout")
	require.Equal(t, "serve-1", again.ID)
	require.Equal(t, 1, again.Attempt, "the same activity attempt: no retry was needed")
	require.NotEqual(t, first.Lease, again.Lease)

	code, body := e.call(http.MethodPost, protocol.CommandPath("srv-a", "serve-1", "progress"), cred,
		protocol.Progress{CommandID: "serve-1", Lease: first.Lease, Lines: []string{"from the dead process"}})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_stale_lease", body)
	code, body = e.call(http.MethodPost, protocol.CommandPath("srv-a", "serve-1", "result"), cred,
		protocol.Result{CommandID: "serve-1", Lease: first.Lease, OK: true, Output: json.RawMessage(`{"from":"boot1"}`)})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "agent_stale_lease", body)
	code, _ = e.call(http.MethodPost, protocol.CommandPath("srv-a", "serve-1", "result"), cred,
		protocol.Result{CommandID: "serve-1", Lease: again.Lease, OK: true, Output: json.RawMessage(`{"from":"boot2"}`)})
	require.Equal(t, http.StatusOK, code)
	out, err := e.result(run)
	require.NoError(t, err)
	require.JSONEq(t, `{"from":"boot2"}`, string(out.Output))

	for _, bad := range []string{"short", "NOT-HEX-0123456789", strings.Repeat("a", 65)} {
		code, body = e.call(http.MethodGet, protocol.NextPath("srv-a")+"?wait=0s&boot="+bad, cred, nil)
		require.Equal(t, http.StatusBadRequest, code, bad)
		require.Equal(t, "invalid_query", body, bad)
	}
}

// TestRegisterCredential: a credential derived elsewhere (the EC2
// provider's, from its launch) authenticates its server once registered;
// registering it again keeps it valid (a retried launch), another one
// replaces it, and what is not a credential's form is refused.
func TestRegisterCredential(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := protocol.CredentialPrefix + strings.Repeat("A", 43)
	require.NoError(t, e.hub.RegisterCredential(ctx, "srv-reg", first))
	require.NoError(t, e.hub.RegisterCredential(ctx, "srv-reg", first))
	server, err := e.hub.AuthenticateAgent(ctx, first)
	require.NoError(t, err)
	require.Equal(t, "srv-reg", server)
	second := protocol.CredentialPrefix + strings.Repeat("B", 43)
	require.NoError(t, e.hub.RegisterCredential(ctx, "srv-reg", second))
	_, err = e.hub.AuthenticateAgent(ctx, first)
	require.ErrorIs(t, err, store.ErrUnauthorized, "replaced")
	server, err = e.hub.AuthenticateAgent(ctx, second)
	require.NoError(t, err)
	require.Equal(t, "srv-reg", server)
	for _, bad := range []string{"", "ag_short", strings.Repeat("A", 46), protocol.CredentialPrefix + strings.Repeat("A", 42) + "!"} {
		require.Error(t, e.hub.RegisterCredential(ctx, "srv-reg", bad), bad)
	}
	require.Error(t, e.hub.RegisterCredential(ctx, "../x", second), "server id checked")
}
