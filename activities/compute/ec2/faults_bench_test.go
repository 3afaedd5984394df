package ec2

// The EC2-under-faults benchmark (docs/benchmarks.md, "EC2 provider under
// faults"; scripts/bench-ec2.sh runs it). It is a test gated by an
// environment variable so that it can re-execute the test binary as worker
// processes (TestFaultsChild) and kill them:
//
//	ALGOCLOUD_BENCH_EC2=1 go test ./activities/compute/ec2 -run '^TestBenchEC2Faults$' -count=1 -v -timeout 30m
//
// ALGOCLOUD_BENCH_EC2_N sets the deployments per side of part 1 (default 6),
// ALGOCLOUD_BENCH_EC2_KILLS the killed runs of part 2 (default 20),
// ALGOCLOUD_BENCH_EC2_SEED the seed of faults and kill points (default 1).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}

// benchFaults is the faulty side's plan: of all requests, 20% throttled,
// 5% answered 500 and 5% dropped before reaching moto (rules are tried in
// order, so each later rule's probability is conditional on the earlier
// ones not firing). ClientTokens makes RunInstances idempotent as on EC2.
func benchFaults(seed uint64) faultproxy.Plan {
	return faultproxy.Plan{Seed: seed, ClientTokens: true, Rules: []faultproxy.Rule{
		{Fault: faultproxy.Throttle, Probability: 0.20},
		{Fault: faultproxy.ServerError, Probability: 0.05 / 0.80},
		{Fault: faultproxy.Drop, Probability: 0.05 / 0.75},
	}}
}

// deployRun is one Provision + Start (health) + Release.
type deployRun struct {
	wall     time.Duration
	attempts int // activity attempts of the three steps
	quota    int // activity attempts that failed on the SDK's retry quota
}

// deploy runs one deployment's Provision, Start and Release under the
// activity retry policy.
func deploy(ctx context.Context, p *Provider, id string) (deployRun, error) {
	var r deployRun
	began := time.Now()
	step := func(f func(context.Context) error) error {
		n, err := provisionPolicy.do(ctx, func(ctx context.Context) error {
			err := f(ctx)
			if err != nil && strings.Contains(err.Error(), "retry quota exceeded") {
				r.quota++
			}
			return err
		})
		r.attempts += n
		return err
	}
	var srv compute.Server
	if err := step(func(ctx context.Context) (err error) { srv, err = p.Provision(ctx, specFor(id)); return err }); err != nil {
		return r, fmt.Errorf("provision: %w", err)
	}
	if err := step(func(ctx context.Context) error {
		_, err := p.Start(ctx, compute.ServiceSpec{Server: srv, Name: LiveService})
		return err
	}); err != nil {
		return r, fmt.Errorf("start: %w", err)
	}
	if err := step(func(ctx context.Context) error { return p.Release(ctx, srv) }); err != nil {
		return r, fmt.Errorf("release: %w", err)
	}
	r.wall = time.Since(began)
	return r, nil
}

func TestBenchEC2Faults(t *testing.T) {
	if os.Getenv("ALGOCLOUD_BENCH_EC2") == "" {
		t.Skip("set ALGOCLOUD_BENCH_EC2=1 to run the EC2 fault benchmark (scripts/bench-ec2.sh)")
	}
	n := envInt(t, "ALGOCLOUD_BENCH_EC2_N", 6)
	kills := envInt(t, "ALGOCLOUD_BENCH_EC2_KILLS", 20)
	seed := uint64(envInt(t, "ALGOCLOUD_BENCH_EC2_SEED", 1))
	e := newEnv(t)
	out := os.Stdout
	fmt.Fprintf(out, "\nEC2 provider under faults: moto %s, %d deployments per side, seed %d, %s\n",
		e.moto.Endpoint, n, seed, time.Now().UTC().Format(time.RFC3339))

	// Part 1: the same deployments with and without faults, interleaved so
	// that a noisy neighbour slows both sides alike. One Provider per side
	// for the whole series, as one long-lived worker: the SDK's retry token
	// bucket is shared by all its calls.
	clean := faultproxy.Start(t, e.moto.Endpoint, faultproxy.Plan{ClientTokens: true})
	faulty := faultproxy.Start(t, e.moto.Endpoint, benchFaults(seed))
	sides := []struct {
		name  string
		proxy *faultproxy.Proxy
		p     *Provider
		runs  []deployRun
	}{
		{name: "clean", proxy: clean},
		{name: "faulty", proxy: faulty},
	}
	for i := range sides {
		ep := sides[i].proxy.URL
		sides[i].p = e.provider(t, func(o *Options) { o.Endpoint = ep })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	for i := range n {
		for s := range sides {
			id := uniq(fmt.Sprintf("bench-%s-%d", sides[s].name, i))
			r, err := deploy(ctx, sides[s].p, id)
			require.NoError(t, err, "%s deployment %d", sides[s].name, i)
			require.Empty(t, e.instancesOf(t, testRegion, id))
			sides[s].runs = append(sides[s].runs, r)
		}
	}
	cc, fc := clean.Counts(), faulty.Counts()
	var actions []string
	for a := range fc {
		actions = append(actions, a)
	}
	for a := range cc {
		if _, ok := fc[a]; !ok {
			actions = append(actions, a)
		}
	}
	sort.Strings(actions)
	fmt.Fprintf(out, "\n%-32s %8s %8s %8s %8s %8s %8s  %s\n", "API action (requests per deployment)", "clean", "faulty", "ratio", "throttle", "500", "dropped", "forwarded")
	per := func(v int) float64 { return float64(v) / float64(n) }
	for _, a := range actions {
		c, f := cc[a], fc[a]
		fmt.Fprintf(out, "%-32s %8.1f %8.1f %8s %8d %8d %8d  %d\n", a, per(c.Requests), per(f.Requests), ratio(per(f.Requests), per(c.Requests)),
			f.Faults[faultproxy.Throttle], f.Faults[faultproxy.ServerError], f.Faults[faultproxy.Drop], f.Forwarded)
	}
	ct, ft := clean.Total(), faulty.Total()
	fmt.Fprintf(out, "%-32s %8.1f %8.1f %8s %8d %8d %8d  %d\n", "all", per(ct.Requests), per(ft.Requests), ratio(per(ft.Requests), per(ct.Requests)),
		ft.Faults[faultproxy.Throttle], ft.Faults[faultproxy.ServerError], ft.Faults[faultproxy.Drop], ft.Forwarded)
	fmt.Fprintf(out, "injected: %.1f%% of the faulty side's %d requests\n", 100*float64(ft.Injected())/float64(ft.Requests), ft.Requests)

	summary := func(runs []deployRun) (mean, worst time.Duration, attempts, quota int) {
		for _, r := range runs {
			mean += r.wall
			worst = max(worst, r.wall)
			attempts += r.attempts
			quota += r.quota
		}
		return mean / time.Duration(len(runs)), worst, attempts, quota
	}
	cm, cw, ca, cq := summary(sides[0].runs)
	fm, fw, fa, fq := summary(sides[1].runs)
	fmt.Fprintf(out, "\n%-46s %10s %10s %8s\n", "per deployment (Provision+Start+Release)", "clean", "faulty", "ratio")
	fmt.Fprintf(out, "%-46s %10s %10s %8s\n", "wall time, mean", cm.Round(time.Millisecond), fm.Round(time.Millisecond), ratio(fm.Seconds(), cm.Seconds()))
	fmt.Fprintf(out, "%-46s %10s %10s %8s\n", "wall time, worst", cw.Round(time.Millisecond), fw.Round(time.Millisecond), ratio(fw.Seconds(), cw.Seconds()))
	fmt.Fprintf(out, "%-46s %10.2f %10.2f %8s\n", "activity attempts (3 steps; 3.00 = no retry)", float64(ca)/float64(n), float64(fa)/float64(n), ratio(float64(fa), float64(ca)))
	fmt.Fprintf(out, "%-46s %10d %10d\n", "activity attempts failed on SDK retry quota", cq, fq)

	// Part 2: workers killed at random points, restarted, some deployments
	// deleted (their Release killed and restarted too), then count.
	benchKills(t, e, kills, seed)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// benchKills runs kills deployments: a worker process provisions and starts
// each through a faulty proxy and is SIGKILLed when the proxy has forwarded
// a random number of its requests (between moto's answer and the worker
// hearing it); a fresh worker then does the step again. Every fourth
// deployment is then deleted the same way (Release killed at a random point,
// then redone). Finally moto must hold exactly one instance and one security
// group per live deployment and nothing of the deleted ones.
func benchKills(t *testing.T, e *env, kills int, seed uint64) {
	out := os.Stdout
	rng := rand.New(rand.NewPCG(seed, 42))
	killedAt := map[string]int{} // action killed in -> count
	var killRuns, finishedFirst int
	health := e.health.URL + "/healthz"
	type dep struct {
		id   string
		live bool
	}
	var deps []dep
	began := time.Now()

	// killRun runs one worker through a fresh proxy and kills it at the
	// k-th forwarded request; it reports whether the kill happened.
	killRun := func(i int, mode, id string, srv *compute.Server, k int) bool {
		killRuns++
		var mu sync.Mutex
		var w *worker
		forwarded := 0
		var once sync.Once
		plan := benchFaults(seed*1000 + uint64(i))
		plan.OnForwarded = func(action string, _ int) {
			mu.Lock()
			forwarded++
			hit := forwarded == k
			mu.Unlock()
			if !hit {
				return
			}
			once.Do(func() {
				var victim *worker
				for victim == nil {
					mu.Lock()
					victim = w
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
				victim.kill()
				mu.Lock()
				killedAt[mode+" "+action]++
				mu.Unlock()
			})
		}
		proxy := faultproxy.Start(t, e.moto.Endpoint, plan)
		nw := startWorker(t, mode, proxy.URL, health, id, srv)
		mu.Lock()
		w = nw
		mu.Unlock()
		select {
		case <-nw.done:
		case <-time.After(3 * time.Minute):
			t.Fatalf("worker %s %s hung:\n%s", mode, id, nw.output())
		}
		if nw.wasKilled() {
			return true
		}
		_, err := nw.wait(t, time.Second)
		require.NoError(t, err)
		finishedFirst++
		return false
	}
	// finish runs a worker to the end through a faulty proxy.
	finish := func(i int, mode, id string, srv *compute.Server) string {
		proxy := faultproxy.Start(t, e.moto.Endpoint, benchFaults(seed*1000+uint64(i)+500))
		res, err := startWorker(t, mode, proxy.URL, health, id, srv).wait(t, 3*time.Minute)
		require.NoError(t, err)
		return res
	}

	for i := range kills {
		id := uniq(fmt.Sprintf("bench-kill-%d", i))
		// Provision + Start forward about 10 requests; some kills land
		// after the worker is done.
		killRun(i, "up", id, nil, 1+rng.IntN(12))
		var srv compute.Server
		require.NoError(t, json.Unmarshal([]byte(finish(i, "up", id, nil)), &srv))
		d := dep{id: id, live: true}
		if i%4 == 3 {
			killRun(i, "down", id, &srv, 1+rng.IntN(6))
			finish(i, "down", id, &srv)
			d.live = false
		}
		deps = append(deps, d)
	}

	live, instances, groups, orphans := 0, 0, 0, 0
	for _, d := range deps {
		n := len(e.instancesOf(t, testRegion, d.id))
		g := 0
		if e.group(t, testRegion, d.id) != nil {
			g = 1
		}
		instances += n
		groups += g
		want := 0
		if d.live {
			live++
			want = 1
		}
		if n != want || g != want {
			orphans++
			t.Errorf("deployment %s (live %v): %d instances, %d groups", d.id, d.live, n, g)
		}
	}
	var at []string
	for k, v := range killedAt {
		at = append(at, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(at)
	fmt.Fprintf(out, "\nworker kills: %d deployments in %s; %d kills landed (%d workers finished before their kill point)\n",
		len(deps), time.Since(began).Round(time.Second), killRuns-finishedFirst, finishedFirst)
	fmt.Fprintf(out, "killed between moto's answer and the worker, by step and action: %s\n", strings.Join(at, ", "))
	fmt.Fprintf(out, "live deployments %d, instances %d, security groups %d, deployments with orphans or missing servers %d\n",
		live, instances, groups, orphans)
	if instances != live || groups != live || orphans != 0 {
		t.Error(errors.New("instances must equal live deployments, with no orphans"))
	}
}
