package integration

// The EC2 wizard benchmark (issue 4; not run in CI):
//
//	ALGOCLOUD_BENCH_EC2_WIZARD=1 go test ./integration -run '^TestBenchEC2Wizard' -count=1 -v -timeout 30m
//
// (scripts/bench-ec2-wizard.sh). TestBenchEC2WizardFaults walks the whole
// wizard (configure -> complete, with the instance's stand-in) on EC2/moto in
// this process, alternately without and with injected EC2 faults, and
// reports wall time, EC2 requests and activity attempts per side and their
// ratio. TestBenchEC2WizardKills walks wizards against the real `algocloud
// dev`, SIGKILLed at random points and restarted, and then counts instances
// per deployment on moto. Nothing here asserts a time.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
)

func benchEnvInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	require.Positive(t, n, name)
	return n
}

func skipUnlessWizardBench(t *testing.T) {
	if os.Getenv("ALGOCLOUD_BENCH_EC2_WIZARD") == "" {
		t.Skip("set ALGOCLOUD_BENCH_EC2_WIZARD=1 to run the EC2 wizard benchmark (scripts/bench-ec2-wizard.sh)")
	}
}

// wizardSample is one run of the faults benchmark.
type wizardSample struct {
	wizard, teardown time.Duration
	requests, faults int
	byFault          map[faultproxy.Fault]int
	byAction         map[string]faultproxy.Counts
	attempts         map[string]int
}

// TestBenchEC2WizardFaults: ALGOCLOUD_BENCH_EC2_WIZARD_N (default 10) runs per
// side, interleaved clean/faulty on one platform; the faulty side's proxy
// throttles 20% of the EC2 requests, answers 5% with 500 and drops 5%
// (randomFaults, seed ALGOCLOUD_BENCH_EC2_WIZARD_SEED + run).
func TestBenchEC2WizardFaults(t *testing.T) {
	skipUnlessWizardBench(t)
	n := benchEnvInt(t, "ALGOCLOUD_BENCH_EC2_WIZARD_N", 10)
	seed := benchEnvInt(t, "ALGOCLOUD_BENCH_EC2_WIZARD_SEED", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, faultproxy.Plan{ClientTokens: true})
	p := rig.startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))

	samples := map[bool][]wizardSample{}
	for i := range 2 * n {
		faulty := i%2 == 1
		plan := faultproxy.Plan{ClientTokens: true}
		if faulty {
			plan.Seed, plan.Rules = uint64(seed+i), randomFaults()
		}
		require.NoError(t, rig.proxy.SetPlan(plan))
		rig.proxy.ResetCounts()
		start := time.Now()
		id := rig.ec2Wizard(t, ctx, c, repo, fmt.Sprintf("w%d", i))
		wizard := time.Since(start)
		require.Len(t, deploymentInstances(t, ctx, rig.w, id), 1)
		start = time.Now()
		r := c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		teardown := time.Since(start)
		require.Empty(t, deploymentInstances(t, ctx, rig.w, id))
		require.False(t, rig.groupExists(t, ctx, id))
		tot := rig.proxy.Total()
		s := wizardSample{wizard: wizard, teardown: teardown, requests: tot.Requests, faults: tot.Injected(),
			byFault: tot.Faults, byAction: rig.proxy.Counts(), attempts: activityAttempts(t, p.Client, id)}
		samples[faulty] = append(samples[faulty], s)
		t.Logf("run %d faulty=%v: wizard %.1fs, delete %.1fs, EC2 requests %d, faults %v, attempts %v",
			i, faulty, wizard.Seconds(), teardown.Seconds(), s.requests, s.byFault, s.attempts)
	}

	clean, faulty := samples[false], samples[true]
	mean := func(ss []wizardSample, f func(wizardSample) float64) float64 {
		sum := 0.0
		for _, s := range ss {
			sum += f(s)
		}
		return sum / float64(len(ss))
	}
	worst := func(ss []wizardSample, f func(wizardSample) float64) float64 {
		m := 0.0
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	sumAttempts := func(s wizardSample) float64 {
		n := 0
		for _, v := range s.attempts {
			n += v
		}
		return float64(n)
	}
	row := func(name string, f func(wizardSample) float64, agg func([]wizardSample, func(wizardSample) float64) float64, unit string) {
		a, b := agg(clean, f), agg(faulty, f)
		ratio := "n/a"
		if a > 0 {
			ratio = fmt.Sprintf("%.2f×", b/a)
		}
		fmt.Printf("| %s | %.2f%s | %.2f%s | %s |\n", name, a, unit, b, unit, ratio)
	}
	fmt.Printf("\nEC2 wizard on moto, %d runs per side, seed %d, load %s\n", n, seed, loadavg())
	fmt.Println("| per deployment | clean | faulty | faulty/clean |")
	fmt.Println("| --- | --- | --- | --- |")
	row("wizard wall time (configure→complete), mean", func(s wizardSample) float64 { return s.wizard.Seconds() }, mean, " s")
	row("wizard wall time, worst", func(s wizardSample) float64 { return s.wizard.Seconds() }, worst, " s")
	row("delete wall time, mean", func(s wizardSample) float64 { return s.teardown.Seconds() }, mean, " s")
	row("EC2 requests (attempts seen by the proxy)", func(s wizardSample) float64 { return float64(s.requests) }, mean, "")
	row("faults injected", func(s wizardSample) float64 { return float64(s.faults) }, mean, "")
	row("activity attempts, all activities", sumAttempts, mean, "")
	acts := map[string]bool{}
	for _, s := range append(slices.Clone(clean), faulty...) {
		for a := range s.attempts {
			acts[a] = true
		}
	}
	names := make([]string, 0, len(acts))
	for a := range acts {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		row("attempts of "+a, func(s wizardSample) float64 { return float64(s.attempts[a]) }, mean, "")
	}
	actions := map[string]bool{}
	for _, s := range append(slices.Clone(clean), faulty...) {
		for a := range s.byAction {
			actions[a] = true
		}
	}
	var perAction []string
	for _, a := range slices.Sorted(maps.Keys(actions)) {
		req := func(s wizardSample) float64 { return float64(s.byAction[a].Requests) }
		perAction = append(perAction, fmt.Sprintf("%s %.1f → %.1f", a, mean(clean, req), mean(faulty, req)))
	}
	fmt.Printf("EC2 requests per deployment by action, clean → faulty: %s\n", strings.Join(perAction, ", "))
	var inj []string
	for _, f := range []faultproxy.Fault{faultproxy.Throttle, faultproxy.ServerError, faultproxy.Drop} {
		inj = append(inj, fmt.Sprintf("%s %.1f", f, mean(faulty, func(s wizardSample) float64 { return float64(s.byFault[f]) })))
	}
	fmt.Printf("faults per faulty run: %s\n", strings.Join(inj, ", "))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// killer SIGKILLs the dev process at a random point after each (re)start,
// one of three drawn at each arming: when the proxy has forwarded the k-th
// EC2 request from then on (k in 1..10), or the next RunInstances (both from
// the proxy's hook: after moto answered, before the worker hears it), or
// after a random delay of 2-20 s.
type killer struct {
	d    *ec2Dev
	mu   sync.Mutex
	rng  *rand.Rand
	left int    // EC2 requests until the kill; 0: not armed on requests
	on   string // kill at the next forwarded request of this action
	gen  int    // arming generation (a timer of an older one does nothing)
	stop bool
	log  []string
	// steps holds the step each lane's run is in (run index -> step).
	steps sync.Map
}

// inFlight describes the steps running when a kill fires.
func (k *killer) inFlight() string {
	var s []string
	k.steps.Range(func(_, v any) bool { s = append(s, v.(string)); return true })
	sort.Strings(s)
	return "[" + strings.Join(s, " ") + "]"
}

func (k *killer) arm() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stop {
		return
	}
	k.gen++
	k.left, k.on = 0, ""
	switch k.rng.IntN(3) {
	case 0:
		k.left = 1 + k.rng.IntN(10)
		return
	case 1:
		k.on = "RunInstances"
		return
	}
	gen, delay := k.gen, 2*time.Second+time.Duration(k.rng.Int64N(int64(18*time.Second)))
	time.AfterFunc(delay, func() {
		k.mu.Lock()
		fire := !k.stop && k.gen == gen
		if fire {
			k.gen++
			k.log = append(k.log, fmt.Sprintf("after %.1fs %s", delay.Seconds(), k.inFlight()))
		}
		k.mu.Unlock()
		if fire {
			k.d.kill()
		}
	})
}

// onForwarded is the proxy's hook.
func (k *killer) onForwarded(action string, _ int) {
	k.mu.Lock()
	fire := false
	if !k.stop && k.left > 0 {
		k.left--
		fire = k.left == 0
	}
	if !k.stop && k.on != "" && k.on == action {
		fire = true
	}
	if fire {
		k.left, k.on = 0, ""
		k.gen++
		k.log = append(k.log, "at "+action+" "+k.inFlight())
	}
	k.mu.Unlock()
	if fire {
		k.d.kill() // before the answer goes back
	}
}

// supervise restarts the process whenever it died, and arms the next kill.
func (k *killer) supervise(done <-chan struct{}, errs chan<- error) {
	for {
		p := k.d.proc()
		select {
		case <-p.Done():
		case <-done:
			return
		}
		select {
		case <-done:
			return
		default:
		}
		if err := k.d.start(); err != nil {
			errs <- err
			return
		}
		k.arm()
	}
}

// killLane walks wizards through kills as a user would: a step whose request
// died with the process is looked at once the platform is back; it is posted
// again only when it did not finish by itself.
type killLane struct {
	t   *testing.T
	d   *ec2Dev
	k   *killer
	ctx context.Context
	run int
}

// at records the step the lane's run is in, for the kill log.
func (l *killLane) at(step string) { l.k.steps.Store(l.run, fmt.Sprintf("%d:%s", l.run, step)) }

// get reads the deployment, waiting for the API to be back.
func (l *killLane) get(id string) resp {
	for {
		status, raw, err := tryDo(l.d.proc().api, l.d.token, http.MethodGet, "/api/v1/deployments/"+id)
		if err == nil && status < 500 {
			return decoded(status, raw)
		}
		require.NoError(l.t, l.ctx.Err(), "the platform never came back")
		time.Sleep(300 * time.Millisecond)
	}
}

// idle waits until the deployment runs no step and returns it.
func (l *killLane) idle(id string) resp {
	for {
		r := l.get(id)
		if r.Status == http.StatusNotFound || r.Str("state", "busy") == "" {
			return r
		}
		require.NoError(l.t, l.ctx.Err(), "deployment %s stays busy: %s", id, r.Raw)
		time.Sleep(500 * time.Millisecond)
	}
}

// step posts step until the deployment reaches want.
func (l *killLane) step(id, step string, body any, want string) {
	l.at(step)
	for try := 1; ; try++ {
		status, raw, err := tryStep(l.d.proc().api, l.d.token, id, step, body)
		if err == nil && status == http.StatusOK {
			return
		}
		require.Less(l.t, try, 12, "%s of %s: %d %s %v", step, id, status, raw, err)
		if st := l.idle(id); st.Str("state", "step") == want {
			return
		}
	}
}

// TestBenchEC2WizardKills: ALGOCLOUD_BENCH_EC2_WIZARD_RUNS wizard runs
// (default 20) in ALGOCLOUD_BENCH_EC2_WIZARD_LANES parallel lanes (default
// 5) against one `algocloud dev`, SIGKILLed at random points (killer) and
// restarted; every fourth run is deleted at the end. Then every deployment
// must hold exactly one instance (zero when deleted), and the instances
// algocloud manages on moto must be exactly those of live deployments.
func TestBenchEC2WizardKills(t *testing.T) {
	skipUnlessWizardBench(t)
	runs := benchEnvInt(t, "ALGOCLOUD_BENCH_EC2_WIZARD_RUNS", 20)
	lanes := benchEnvInt(t, "ALGOCLOUD_BENCH_EC2_WIZARD_LANES", 5)
	seed := benchEnvInt(t, "ALGOCLOUD_BENCH_EC2_WIZARD_SEED", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, faultproxy.Plan{ClientTokens: true})
	d := newEC2Dev(t, rig)
	k := &killer{d: d, rng: rand.New(rand.NewPCG(uint64(seed), 99))}
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true, OnForwarded: k.onForwarded}))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	done, supErr := make(chan struct{}), make(chan error, 1)
	go k.supervise(done, supErr)
	k.arm()

	start := time.Now()
	ids := make([]string, runs)
	deleted := make([]bool, runs)
	t.Run("lanes", func(t *testing.T) {
		for lane := range lanes {
			t.Run(strconv.Itoa(lane), func(t *testing.T) {
				t.Parallel()
				l := &killLane{t: t, d: d, k: k, ctx: ctx}
				for i := lane; i < runs; i += lanes {
					api := fmt.Sprintf("k%d", i)
					l.run = i
					l.at("configure")
					var r resp
					for {
						status, raw, err := tryPost(d.proc().api, d.token, "/api/v1/deployments", ec2Spec(api))
						if err == nil && status == http.StatusCreated {
							r = decoded(status, raw)
							break
						}
						// Died under configure: did it get created?
						require.NoError(t, ctx.Err())
						if id := findByAPIName(l, api); id != "" {
							r = resp{Status: http.StatusCreated, Body: map[string]any{"id": id}}
							break
						}
						time.Sleep(300 * time.Millisecond)
					}
					id := r.Str("id")
					ids[i] = id
					boot := rig.bootAsync(t, ctx, id, api)
					l.step(id, "provision", nil, "provisioned")
					l.step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"}, "code_fetched")
					l.step(id, "install_requirements", nil, "requirements_installed")
					l.step(id, "test", nil, "tested")
					l.step(id, "complete", nil, "completed")
					require.NoError(t, <-boot)
					if i%4 == 3 {
						l.at("delete")
						for try := 1; ; try++ {
							require.Less(t, try, 12, "delete of %s", id)
							status, _, err := tryDo(d.proc().api, d.token, http.MethodDelete, "/api/v1/deployments/"+id)
							if err == nil && status == http.StatusOK {
								break
							}
							st := l.idle(id)
							if st.Status == http.StatusNotFound || st.Str("status") == "deleted" {
								break
							}
						}
						deleted[i] = true
					}
					k.steps.Delete(i)
					t.Logf("run %d (%s) done at %.0fs, kills so far %d", i, id, time.Since(start).Seconds(), d.kills.Load())
				}
			})
		}
	})
	k.mu.Lock()
	k.stop = true
	k.mu.Unlock()
	close(done)
	select {
	case err := <-supErr:
		t.Fatalf("restart failed: %v", err)
	default:
	}
	wall := time.Since(start)
	if t.Failed() {
		return
	}

	// Count on moto, directly.
	live, perDeployment, orphans := 0, map[int]int{}, 0
	owned := map[string]bool{}
	for i, id := range ids {
		n := len(deploymentInstances(t, ctx, rig.w, id))
		perDeployment[n]++
		want := 1
		if deleted[i] {
			want = 0
		} else {
			live++
		}
		require.Equal(t, want, n, "deployment %s (run %d, deleted %v)", id, i, deleted[i])
		require.Equal(t, !deleted[i], rig.groupExists(t, ctx, id), "security group of %s", id)
		owned[id] = true
	}
	out, err := rig.w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + ec2.TagManagedBy), Values: []string{"algocloud"}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}})
	require.NoError(t, err)
	managed := 0
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			managed++
			var dep string
			for _, tag := range inst.Tags {
				if aws.ToString(tag.Key) == ec2.TagDeployment {
					dep = aws.ToString(tag.Value)
				}
			}
			if !owned[dep] {
				orphans++
			}
		}
	}
	k.mu.Lock()
	where := slices.Clone(k.log)
	k.mu.Unlock()
	fmt.Printf("\nEC2 wizard with killed `algocloud dev`: %d runs in %d lanes, seed %d, wall %.0fs, load %s\n",
		runs, lanes, seed, wall.Seconds(), loadavg())
	fmt.Printf("kills: %d (%s)\n", d.kills.Load(), strings.Join(where, "; "))
	fmt.Printf("live deployments %d, deleted %d; instances per deployment: %v; managed instances on moto %d; orphans %d\n",
		live, runs-live, perDeployment, managed, orphans)
	fmt.Printf("EC2 requests: %d (RunInstances %d, replayed by ClientToken %d)\n",
		rig.proxy.Total().Requests, rig.proxy.Counts()["RunInstances"].Requests, rig.proxy.Counts()["RunInstances"].Replayed)
	require.Equal(t, live, managed, "instances on moto = live deployments")
	require.Zero(t, orphans)
}

// tryPost posts a JSON body; err is set when the process died under it.
func tryPost(base, token, path string, body any) (int, []byte, error) {
	return testenv.TryAPI(base, token, http.MethodPost, path, body)
}

// tryDo sends a request without a body.
func tryDo(base, token, method, path string) (int, []byte, error) {
	return testenv.TryAPI(base, token, method, path, nil)
}

func decoded(status int, raw []byte) resp {
	r := resp{Status: status, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// findByAPIName returns the ID of the caller's deployment named api, or "".
func findByAPIName(l *killLane, api string) string {
	status, raw, err := tryDo(l.d.proc().api, l.d.token, http.MethodGet, "/api/v1/deployments")
	if err != nil || status != http.StatusOK {
		return ""
	}
	var list struct {
		Deployments []struct {
			ID      string `json:"id"`
			APIName string `json:"api_name"`
		} `json:"deployments"`
	}
	if json.Unmarshal(raw, &list) != nil {
		return ""
	}
	for _, dep := range list.Deployments {
		if dep.APIName == api {
			return dep.ID
		}
	}
	return ""
}
