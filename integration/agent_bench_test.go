package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/loadgen"
	"github.com/algocloud/algocloud/internal/platform"
)

// agentBenchPath is one of the two ways the benchmark deploys: through the
// server's agent (after) or on the worker's path (before the agent: the
// worker runs Test Code and the provider stops and starts the endpoint).
type agentBenchPath struct {
	name     string
	c        *client
	hc       *http.Client
	id, repo string
	endpoint string
	token    string
	tests    []time.Duration
}

// step runs a wizard step and returns its answer and how long it took.
func (b *agentBenchPath) step(t *testing.T, step string, body any) (resp, time.Duration) {
	t.Helper()
	start := time.Now()
	r := b.c.Step(b.id, step, body)
	took := time.Since(start)
	require.Equal(t, http.StatusOK, r.Status, "%s %s: %s", b.name, step, r.Raw)
	return r, took
}

// TestAgentFigures measures issue 10's figures, before (the worker's path:
// a platform without agents) and after (through the server's agent), in one
// run on two platforms side by side, when ALGOCLOUD_BENCH_AGENT=N is set:
//   - Test Code: N rounds, each one test on either platform, the order
//     alternating, so both see the same machine;
//   - a redeploy under load: 4 clients call /predict back to back for
//     ALGOCLOUD_BENCH_AGENT_LOAD (default 60s), the redeploy (new commit,
//     fetch_code, install_requirements, test, complete) in the middle:
//     failed requests, p99 before and during, the complete call, complete
//     to the first answer begun after it.
//
// It asserts only that every step answers; the figures go to
// docs/benchmarks.md with the command.
func TestAgentFigures(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("ALGOCLOUD_BENCH_AGENT"))
	if rounds <= 0 {
		t.Skip("set ALGOCLOUD_BENCH_AGENT=N to measure N Test Code rounds and a redeploy under load on each path")
	}
	load := 60 * time.Second
	if v := os.Getenv("ALGOCLOUD_BENCH_AGENT_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "ALGOCLOUD_BENCH_AGENT_LOAD")
		load = d
	}
	example := filepath.Join(repoRoot(t), "examples", "segmentation")
	pa := startPlatform(t, t.TempDir())
	defer pa.Stop()
	pw := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.Agents = false })
	defer pw.Stop()
	paths := []*agentBenchPath{
		{name: "agent", c: newClient(t, pa, devToken(t, pa)), hc: endpointClient(t, pa), repo: gitRepo(t, example)},
		{name: "worker", c: newClient(t, pw, devToken(t, pw)), hc: endpointClient(t, pw), repo: gitRepo(t, example)},
	}
	for _, b := range paths {
		r := b.c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Bench " + b.name, "api_name": "bench-" + b.name, "input": "image", "output": "image", "threads": 2})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		b.id = r.Str("id")
		throughTest(t, b.c, b.id, b.repo) // one warm-up test each
		r, _ = b.step(t, "complete", nil)
		b.endpoint, b.token = r.Str("endpoint"), r.Str("token")
	}
	st := paths[0].c.Do(http.MethodGet, "/api/v1/deployments/"+paths[0].id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["server"].(map[string]any)["agent"], "the agent path has an agent: %s", st.Raw)
	st = paths[1].c.Do(http.MethodGet, "/api/v1/deployments/"+paths[1].id, nil)
	require.NotEqual(t, true, st.Body["state"].(map[string]any)["server"].(map[string]any)["agent"], "the worker path has none: %s", st.Raw)

	benchTestCode(t, paths, rounds)
	img := samplePNG(t, 32, 24)
	for _, b := range paths { // one path after the other
		benchRedeployUnderLoad(t, b, load, img)
	}
}

// benchTestCode runs Test Code rounds times on each path, the order
// alternating, so both see the same machine, and logs the FIGURES line:
// each path's median and p90, the ratio of medians (paths[0] over
// paths[1]) and the median of the per-round ratios.
func benchTestCode(t *testing.T, paths []*agentBenchPath, rounds int) {
	t.Helper()
	for i := range rounds {
		order := paths
		if i%2 == 1 {
			order = []*agentBenchPath{paths[1], paths[0]}
		}
		for _, b := range order {
			_, took := b.step(t, "test", nil)
			b.tests = append(b.tests, took)
		}
	}
	ma, mw := median(paths[0].tests), median(paths[1].tests)
	var paired []float64
	for i := range rounds {
		paired = append(paired, float64(paths[0].tests[i])/float64(paths[1].tests[i]))
	}
	slices.Sort(paired)
	t.Logf("FIGURES Test Code (%d rounds): %s median %v (p90 %v), %s median %v (p90 %v); ratio of medians %.2f, median of per-round ratios %.2f",
		rounds, paths[0].name, ma, pct(paths[0].tests, 90), paths[1].name, mw, pct(paths[1].tests, 90), float64(ma)/float64(mw), paired[len(paired)/2])
}

// benchRedeployUnderLoad has 4 clients call b's /predict back to back for
// load, a redeploy (new commit, fetch_code, install_requirements, test,
// complete) in the middle, and logs the FIGURES line: failed requests, p99
// before the redeploy and during the complete call (and 1 s after), the
// complete call, complete to the first answer begun after it.
func benchRedeployUnderLoad(t *testing.T, b *agentBenchPath, load time.Duration, img []byte) {
	t.Helper()
	l := loadgen.Start(context.Background(), loadgen.Options{Clients: 4, Backoff: 100 * time.Millisecond, DropCancelled: true},
		func(ctx context.Context, _ int) (string, error) {
			return loadgen.PredictPNG(ctx, b.hc, b.endpoint+"/predict", b.token, img)
		})
	begun := time.Now()
	time.Sleep(load / 2)
	commit(t, b.repo, map[string]string{"README.md": "revision 2 of " + b.name + "\n"})
	redeploy := time.Now()
	b.step(t, "fetch_code", map[string]any{"git_url": b.repo, "ref": "main"})
	b.step(t, "install_requirements", nil)
	b.step(t, "test", nil)
	completeAt := time.Now()
	_, complete := b.step(t, "complete", nil)
	completed := completeAt.Add(complete)
	// The rest of the load, and at least 3 s after complete.
	time.Sleep(max(load-time.Since(begun), 3*time.Second))
	l.Stop()
	var before, during []time.Duration
	var failed []string
	first := time.Duration(-1)
	for _, s := range l.Samples() {
		if s.Err != "" {
			failed = append(failed, s.Err)
		}
		switch {
		case s.Start.Before(redeploy):
			before = append(before, s.Took)
		case s.Start.Before(completed.Add(time.Second)) && !s.Start.Before(completeAt):
			during = append(during, s.Took)
		}
		if s.Err == "" && !s.Start.Before(completed) {
			if d := s.Start.Add(s.Took).Sub(completed); first < 0 || d < first {
				first = d
			}
		}
	}
	t.Logf("FIGURES redeploy under load (%s, %v, 4 clients): %d answered, %d failed %s; p99 before %v (%d), p99 during the complete call and 1 s after %v (%d); complete call %v; complete to the first answer begun after it %v",
		b.name, load, int(l.OK()), len(failed), firstFew(failed), pct(before, 99), len(before), pct(during, 99), len(during),
		complete.Round(time.Millisecond), first.Round(time.Millisecond))
}

// median is the middle of d (sorted copy).
func median(d []time.Duration) time.Duration { return pct(d, 50) }

// pct is the p-th percentile of d (nearest rank on a sorted copy).
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(time.Millisecond)
}

// firstFew shows up to three distinct failures.
func firstFew(errs []string) string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		if len(out) < 3 && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("(%s)", strings.Join(out, "; "))
}
