package integration

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The helpers the server agent's tests share (local and EC2 stand-in): the
// wizard's steps in a loop, the end of a mid-swap fault test, and the set-up
// of a Test Code that a fault strikes while its server loads the algorithm.

// slowInit4sMain is slowInitMain with a 4 s __init__: long enough for a
// test to catch a revision or a test server booting and strike then.
var slowInit4sMain = strings.Replace(slowInitMain, "time.sleep(3)", "time.sleep(4)", 1)

// wizardSteps are the wizard's steps after provision, in order.
var wizardSteps = []string{"fetch_code", "install_requirements", "test", "complete"}

// stepsThrough runs the wizard's steps from fetch_code (repo's main branch)
// through last, each wanted 200, and logs how long each took; it returns
// last's answer (Complete's holds the endpoint and its token).
func stepsThrough(t *testing.T, c *client, id, repo, last string) resp {
	t.Helper()
	require.Contains(t, wizardSteps, last, "a wizard step after provision")
	var r resp
	for _, step := range wizardSteps[:slices.Index(wizardSteps, last)+1] {
		var body any
		if step == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		began := time.Now()
		r = c.Step(id, step, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
		t.Logf("%s answered in %s", step, time.Since(began).Round(time.Millisecond))
	}
	return r
}

// stageSlowRevision commits revision 2 to repo (slowInit4sMain: it inverts
// the image, its __init__ takes 4 s) and runs fetch_code, install and test
// for it while load runs: the live revision keeps serving, and the new one
// must not answer before Complete swaps it in.
func stageSlowRevision(t *testing.T, c *client, id, repo string, load *swapLoad) {
	t.Helper()
	commit(t, repo, map[string]string{"aai_main.py": slowInit4sMain})
	stepsThrough(t, c, id, repo, "test")
	require.Zero(t, load.answeredNew.Load(), "the new revision serves only after Complete")
}

// swapped is what requireSwapped checks a mid-swap fault test's world by.
type swapped struct {
	c         *client
	id        string
	agents    func() []int // the server's agent processes
	killed    int          // the agent killed while the new revision booted
	revisions func() int   // how many revisions serve
	// figures names the fault in the FIGURES line.
	figures string
	// killedAt and took are when the fault struck and when Complete
	// answered, counted from Complete's start.
	killedAt, took time.Duration
}

// requireSwapped ends a mid-swap fault test once Complete answered: it lets
// the clients run 3 s more (on the new revision), stops them, and checks the
// deployment is live on code revision 2, one agent runs (not the killed
// one), one revision serves (the old one drained) and answers with a new
// body, no client went back to the old revision once it had the new one,
// and no request failed. The FIGURES line is logged before that last check,
// so a run with failures still reports its counts.
func requireSwapped(t *testing.T, load *swapLoad, s swapped) {
	t.Helper()
	time.Sleep(3 * time.Second)
	load.wait()

	st := s.c.Do(http.MethodGet, "/api/v1/deployments/"+s.id, nil)
	require.Equal(t, 2.0, st.Body["state"].(map[string]any)["live"].(map[string]any)["code_revision"], string(st.Raw))
	now := s.agents()
	require.Len(t, now, 1, "exactly one agent for the server")
	require.NotEqual(t, s.killed, now[0], "a new agent")
	require.Eventually(t, func() bool { return s.revisions() == 1 }, time.Minute, 200*time.Millisecond,
		"one serving revision (the old one drained)")
	ok, newBody := predict(t, load.hc, load.endpoint, load.token, load.img)
	require.Equal(t, http.StatusOK, ok.StatusCode, string(newBody))
	require.NotEqual(t, load.oldBody, newBody, "the new revision serves")
	require.Zero(t, load.backToOld.Load(), "no client saw the old revision after the new one")
	require.NotZero(t, load.answeredNew.Load())
	t.Logf("FIGURES %s: %d answered by the old revision, %d by the new, %d failed; complete answered at %v (%v after the kill)",
		s.figures, load.answeredOld.Load(), load.answeredNew.Load(), load.failed.Load(),
		s.took.Round(time.Millisecond), (s.took - s.killedAt).Round(time.Millisecond))
	require.Zero(t, load.failed.Load(), "no failed request through the swap with the agent killed")
}

// slowTestCode is a local platform with one provisioned deployment whose
// code (slowInit4sMain) is fetched and installed: its Test Code boots a
// test server that loads the algorithm for 4 s, a window for a fault.
type slowTestCode struct {
	started time.Time // just before the platform started
	data    string    // the platform's data folder
	c       *client
	id      string
	agent   int // the server's agent
}

// newSlowTestCode starts the platform (stopped at the test's end) and
// walks a new deployment named apiName through Install.
func newSlowTestCode(t *testing.T, apiName string) *slowTestCode {
	t.Helper()
	s := &slowTestCode{data: t.TempDir(), started: time.Now()}
	p := startPlatform(t, s.data)
	t.Cleanup(p.Stop)
	s.c = newClient(t, p, devToken(t, p))
	s.id = createProvisioned(t, s.c, apiName)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{"aai_main.py": slowInit4sMain})
	stepsThrough(t, s.c, s.id, repo, "install_requirements")
	agents := agentPIDs(t, s.id)
	require.Len(t, agents, 1)
	s.agent = agents[0]
	return s
}

// testServers lists the test servers of the server's agents: the
// algocloud-infer processes under the agent's tests folder.
func (s *slowTestCode) testServers(t *testing.T) []int {
	var out []int
	for _, pid := range procsWithArg(t, filepath.Join(s.data, "servers", s.id, "agent", "tests")) {
		if strings.Contains(cmdline(pid), "algocloud-infer") {
			out = append(out, pid)
		}
	}
	return out
}

// requireTestPassed checks Test Code answered r, 200, and the state holds
// a passing test, and that no test server is left (within 10 s).
func (s *slowTestCode) requireTestPassed(t *testing.T, r resp) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	st := s.c.Do(http.MethodGet, "/api/v1/deployments/"+s.id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["test"].(map[string]any)["ok"], "the test passed: %s", st.Raw)
	require.Eventually(t, func() bool { return len(s.testServers(t)) == 0 }, 10*time.Second, 100*time.Millisecond, "no test server is left")
}
