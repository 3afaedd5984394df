package platformbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/activities/source"
	"github.com/algocloud/algocloud/bench/boot"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// The orchestration baseline: a workflow on the platform's own embedded
// server and client whose updates do nothing (noopUpdate) or exactly what a
// wizard step's orchestration does around its work (stepUpdate: one activity,
// then one local activity, as workflows.deployment.run projects the state).
const (
	noopTaskQueue = "algocloud-bench-noop"
	noopUpdate    = "noop"
	stepUpdate    = "step"
	finishSignal  = "finish"
	noopActivity  = "BenchNoopActivity"
)

// benchNoop waits for updates until signalled to finish.
func benchNoop(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandler(ctx, noopUpdate, func(ctx workflow.Context) (int, error) { return 1, nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandler(ctx, stepUpdate, func(ctx workflow.Context) (int, error) {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		})
		if err := workflow.ExecuteActivity(actx, noopActivity).Get(actx, nil); err != nil {
			return 0, err
		}
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
		if err := workflow.ExecuteLocalActivity(lctx, noopLocal).Get(lctx, nil); err != nil {
			return 0, err
		}
		return 1, nil
	})
	if err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, finishSignal).Receive(ctx, nil)
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

func noopActivityFn(context.Context) error { return nil }
func noopLocal(context.Context) error      { return nil }

// orchestration runs the no-op workflows on the platform's Temporal client.
type orchestration struct {
	c    client.Client
	w    sdkworker.Worker
	n    int
	once sync.Once
}

func startOrchestration(c client.Client) (*orchestration, error) {
	w := sdkworker.New(c, noopTaskQueue, sdkworker.Options{MaxConcurrentActivityExecutionSize: 16})
	w.RegisterWorkflow(benchNoop)
	w.RegisterActivityWithOptions(noopActivityFn, activity.RegisterOptions{Name: noopActivity})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start no-op worker: %w", err)
	}
	return &orchestration{c: c, w: w}, nil
}

func (o *orchestration) stop() { o.once.Do(o.w.Stop) }

// startWorkflow starts one no-op workflow and returns its ID and the time
// ExecuteWorkflow took (the shape of the configure step's Temporal call).
func (o *orchestration) startWorkflow(ctx context.Context) (string, time.Duration, error) {
	o.n++
	id := fmt.Sprintf("bench-noop-%d-%d", time.Now().UnixNano(), o.n)
	t := time.Now()
	_, err := o.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: noopTaskQueue}, benchNoop)
	return id, time.Since(t), err
}

// update sends one update and waits for its result.
func (o *orchestration) update(ctx context.Context, id, name string) (time.Duration, error) {
	t := time.Now()
	h, err := o.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var v int
		err = h.Get(ctx, &v)
	}
	return time.Since(t), err
}

func (o *orchestration) finish(ctx context.Context, id string) {
	_ = o.c.SignalWorkflow(ctx, id, "", finishSignal, nil)
}

// sample measures n rounds of: start a workflow, a no-op update, a
// step-shaped update, on a fresh workflow each round.
func (o *orchestration) sample(ctx context.Context, n int) (start, noop, step []time.Duration, err error) {
	for i := 0; i < n; i++ {
		id, d, err := o.startWorkflow(ctx)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("start no-op workflow: %w", err)
		}
		start = append(start, d)
		// The first update also waits for the workflow's first task; time
		// the warm ones only, as the wizard's steps find their workflow warm.
		if _, err := o.update(ctx, id, noopUpdate); err != nil {
			return nil, nil, nil, fmt.Errorf("no-op update: %w", err)
		}
		if d, err = o.update(ctx, id, noopUpdate); err != nil {
			return nil, nil, nil, fmt.Errorf("no-op update: %w", err)
		}
		noop = append(noop, d)
		if d, err = o.update(ctx, id, stepUpdate); err != nil {
			return nil, nil, nil, fmt.Errorf("step-shaped update: %w", err)
		}
		step = append(step, d)
		o.finish(ctx, id)
	}
	return start, noop, step, nil
}

// concurrent runs n warm workflows each receiving steps step-shaped updates
// at once, the orchestration a burst of n wizards needs; it returns the wall
// time and every update's time.
func (o *orchestration) concurrent(ctx context.Context, n, steps int) (wall time.Duration, each []time.Duration, failures int, firstErr error) {
	ids := make([]string, n)
	for i := range ids {
		id, _, err := o.startWorkflow(ctx)
		if err != nil {
			return 0, nil, n, err
		}
		// One update first, one workflow at a time: every workflow has run
		// its first task before the timed burst, so the burst measures the
		// steps' orchestration, not how fast new workflows get their first
		// task (the histories report that apart for the wizards).
		if _, err := o.update(ctx, id, noopUpdate); err != nil {
			return 0, nil, n, err
		}
		ids[i] = id
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t := time.Now()
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 0; s < steps; s++ {
				d, err := o.update(ctx, id, stepUpdate)
				mu.Lock()
				if err != nil {
					failures++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					each = append(each, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	wall = time.Since(t)
	for _, id := range ids {
		o.finish(ctx, id)
	}
	return wall, each, failures, firstErr
}

// rawBoot is the process baseline: algocloud-infer started directly (no
// platform) on a copy of a completed deployment's live.json (same code, same
// venv, same certificate; another port and token), timed from exec to the
// first /readyz 200 (polled every 5 ms) and to the first 200 of /predict.
type rawBoot struct {
	inferBin string
	liveJSON string // a live deployment's config to copy
	workdir  string // its server folder (the provider runs services there)
	tmp      string
	w        *wizard
	n        int
	lastStop time.Duration // SIGTERM .. exit of the last run's process
}

// With platformPoll the readiness wait is inferapi.WaitReady itself, the
// poll the platform's StartService and RunTest use, instead of the 5 ms one.
func (b *rawBoot) run(ctx context.Context, platformPoll bool) (ready, first time.Duration, err error) {
	b.n++
	token, sum, err := boot.NewToken(32)
	if err != nil {
		return 0, 0, err
	}
	port, err := boot.FreePort()
	if err != nil {
		return 0, 0, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out, err := rawConfig(b.liveJSON, addr, sum)
	if err != nil {
		return 0, 0, err
	}
	path := filepath.Join(b.tmp, fmt.Sprintf("raw-%d.json", b.n))
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return 0, 0, err
	}
	logf, err := os.Create(path + ".log")
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()

	t0 := time.Now()
	proc, err := boot.Start(boot.Options{
		Command: []string{b.inferBin, "--config", path}, Dir: b.workdir,
		Env:    []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + b.workdir},
		Stdout: logf, Stderr: logf, Group: true,
	})
	if err != nil {
		return 0, 0, err
	}
	defer func() { b.lastStop = proc.Stop(15 * time.Second) }()
	base := "https://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	if platformPoll {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := inferapi.WaitReady(wctx, b.w.endpoint, base)
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("inferapi.WaitReady: %w (log %s)", err, logf.Name())
		}
	}
	for !platformPoll {
		if b.readyOnce(ctx, base) {
			break
		}
		select {
		case <-proc.Done():
			return 0, 0, fmt.Errorf("algocloud-infer exited before ready: %v (log %s)", proc.Err(), logf.Name())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("algocloud-infer not ready in 2 min (log %s)", logf.Name())
		}
	}
	ready = time.Since(t0)
	if _, err := b.w.firstAnswer(ctx, base, token, time.Minute); err != nil {
		return 0, 0, err
	}
	return ready, time.Since(t0), nil
}

// rawConfig is the live deployment's config at liveJSON served on addr
// with the token whose SHA-256 is sum. The deployment's token_file goes:
// the server would follow it instead of token_sha256 and refuse the
// baseline's token.
func rawConfig(liveJSON, addr, sum string) ([]byte, error) {
	raw, err := os.ReadFile(liveJSON)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", liveJSON, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", liveJSON, err)
	}
	cfg["listen"], cfg["token_sha256"] = addr, sum
	delete(cfg, "token_file")
	return json.Marshal(cfg)
}

func (b *rawBoot) readyOnce(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	res, err := b.w.endpoint.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// concurrent boots n raw servers at once and returns the wall time until all
// answered their first /predict, and each one's exec→first answer.
func (b *rawBoot) concurrent(ctx context.Context, n int) (wall time.Duration, each []time.Duration, failures int, firstErr error) {
	// Each run writes its own config; give each goroutine its own rawBoot
	// counter range so file names do not collide.
	var mu sync.Mutex
	var wg sync.WaitGroup
	t := time.Now()
	for i := 0; i < n; i++ {
		one := *b
		one.n = 100000 * (i + 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, first, err := one.run(ctx, false)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			each = append(each, first)
		}()
	}
	// The wall time ends when the last one answered, before the stops that
	// run's deferred cleanup does; record it from the answers themselves.
	wg.Wait()
	wall = time.Since(t)
	if len(each) > 0 {
		wall = maxDur(each)
	}
	return wall, each, failures, firstErr
}

// rawWork times the wizard's other real work called directly, without the
// API, Temporal or an activity around it: the platform's own go-git clone
// (source.Clone) of the algorithm, its venv (python.EnsureVenv, which also
// probes the interpreter), and the removal of the folder they made (what
// ReleaseServer deletes).
func rawWork(ctx context.Context, repo, tmp string, i int) (clone, venv, remove time.Duration, err error) {
	dir := filepath.Join(tmp, fmt.Sprintf("raw-work-%d", i))
	defer os.RemoveAll(dir)
	if clone, venv, err = prepareWork(ctx, repo, dir); err != nil {
		return 0, 0, 0, err
	}
	t := time.Now()
	if err = os.RemoveAll(dir); err != nil {
		return 0, 0, 0, err
	}
	return clone, venv, time.Since(t), nil
}

func prepareWork(ctx context.Context, repo, dir string) (clone, venv time.Duration, err error) {
	t := time.Now()
	if _, err = source.Clone(ctx, source.CloneOptions{URL: repo, Ref: "main", Dest: filepath.Join(dir, "code", "1"), AllowLocal: true}); err != nil {
		return 0, 0, fmt.Errorf("clone: %w", err)
	}
	clone = time.Since(t)
	t = time.Now()
	if _, err = python.EnsureVenv(ctx, "/usr/bin/python3", filepath.Join(dir, "venv")); err != nil {
		return 0, 0, err
	}
	return clone, time.Since(t), nil
}

// rawWorkBurst runs n prepareWork (clone, venv) at once, then removes the n
// folders at once: the wizard's own work, and the deletion's, at the burst's
// concurrency without the platform.
func rawWorkBurst(ctx context.Context, repo, tmp string, n int) (prep, remove burstBaseline) {
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(tmp, fmt.Sprintf("raw-work-burst-%d", i))
	}
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	prep = allAtOnce(n, func(i int) error {
		_, _, err := prepareWork(ctx, repo, dirs[i])
		return err
	})
	remove = allAtOnce(n, func(i int) error { return os.RemoveAll(dirs[i]) })
	return prep, remove
}

// allAtOnce runs f(0..n-1) in n goroutines and times each and all.
func allAtOnce(n int, f func(i int) error) (b burstBaseline) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	t := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			err := f(i)
			d := time.Since(t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.Failures++
				if b.Err == nil {
					b.Err = err
				}
				return
			}
			b.Each = append(b.Each, d)
		}()
	}
	wg.Wait()
	b.Wall = time.Since(t)
	return b
}
