// Package platformbench is the code of the algocloud-bench command
// (cmd/algocloud-bench, run by scripts/bench.sh). It measures the platform core's figures on this
// machine and prints each next to a baseline measured in the same run:
//
//   - complete → the endpoint's first answer, against algocloud-infer started
//     directly on the same code (no platform);
//   - every wizard step through the REST API, against a no-op Temporal update
//     shaped like a step (one activity, one local activity) on the same
//     embedded server;
//   - N wizards at once (all must finish; it exits non-zero otherwise), against
//     N such updates at once and N algocloud-infer processes booted at once;
//   - the idle memory of the real `algocloud dev` binary, with and without the
//     Temporal UI.
//
// Run the command from the repository (scripts/bench.sh builds bin/ first):
//
//	go run ./cmd/algocloud-bench -out docs/benchmarks-platform.md
//
// No pip download happens: examples/segmentation needs only Debian's numpy
// and Pillow. Nothing here asserts a time; the figures are for people.
package platformbench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
	"github.com/algocloud/algocloud/internal/platform"
)

type options struct {
	wizards   int
	runs      int
	out       string
	inferBin  string
	devBin    string
	example   string
	threads   int
	idle      time.Duration
	noops     int
	cpuprof   string
	skip      map[string]bool
	keep      bool
	imgW      int
	imgH      int
	rawBursts bool
	commit    string
	blockRate int
}

// Main parses args (the command line after the program name) as
// algocloud-bench's flags, runs the benchmark, prints the report and returns
// the process's exit code: 1 when the run failed or any wizard failed.
func Main(args []string) int {
	var o options
	var skip string
	fs := flag.NewFlagSet("algocloud-bench", flag.ExitOnError)
	fs.IntVar(&o.wizards, "wizards", 50, "wizards run at once in the burst")
	fs.IntVar(&o.runs, "runs", 5, "sequential wizard runs (after one warm-up run)")
	fs.StringVar(&o.out, "out", "", "also write the report (markdown) to this file")
	fs.StringVar(&o.inferBin, "infer-bin", "", "algocloud-infer binary (default bin/algocloud-infer, else built into a temp folder)")
	fs.StringVar(&o.devBin, "algocloud-bin", "", "algocloud binary for the idle-memory figure (default bin/algocloud, else built)")
	fs.StringVar(&o.example, "example", "examples/segmentation", "algorithm folder to deploy (image→image, no pip requirements)")
	fs.IntVar(&o.threads, "threads", 1, "the deployments' Python worker count")
	fs.DurationVar(&o.idle, "idle", 10*time.Second, "how long algocloud dev stays idle before its memory is read")
	fs.IntVar(&o.noops, "noops", 3, "no-op Temporal rounds per sequential run (baseline)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "folder for CPU profiles of this process: sequential.pprof, burst.pprof")
	fs.StringVar(&skip, "skip", "", "comma-separated phases to skip: sequential, burst, dev")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary data folder (kept anyway when something failed)")
	fs.IntVar(&o.imgW, "width", 128, "sample image width")
	fs.IntVar(&o.imgH, "height", 96, "sample image height")
	fs.BoolVar(&o.rawBursts, "raw-burst", true, "also run the burst's raw baselines: N algocloud-infer booted at once, N clones + venvs at once")
	fs.IntVar(&o.blockRate, "blockprofile-rate", 0, "with -cpuprofile, also write burst.block.pprof and burst.mutex.pprof (runtime.SetBlockProfileRate(rate ns); 0: off)")
	fs.StringVar(&o.commit, "commit", "", "commit to name in the report (default: git describe of the repository)")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits 2 after the usage, as before
	o.skip = map[string]bool{}
	for _, s := range platform.SplitList(skip) {
		o.skip[s] = true
	}
	res, err := run(o)
	report := res.markdown(o)
	fmt.Println(report)
	if o.out != "" {
		if werr := os.WriteFile(o.out, []byte(report), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "algocloud-bench: write report:", werr)
			return 1
		}
		progress("report written to %s", o.out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "algocloud-bench:", err)
		return 1
	}
	if probs := res.problems(); len(probs) > 0 {
		fmt.Fprintln(os.Stderr, "algocloud-bench: FAILED:\n  "+strings.Join(probs, "\n  "))
		return 1
	}
	return 0
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// repoRoot finds the module root above the working folder.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/algocloud/algocloud\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the algocloud repository (no go.mod of github.com/algocloud/algocloud above %s)", dir)
		}
		dir = parent
	}
}

// binary returns flagValue, else root/bin/name, else builds ./cmd/name into tmp.
func binary(flagValue, root, name, tmp string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	p = filepath.Join(tmp, name)
	progress("building %s (no bin/%s; scripts/build.sh makes it)", name, name)
	cmd := exec.Command("go", "build", "-o", p, "./cmd/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", name, err, out)
	}
	return p, nil
}

func run(o options) (res *results, err error) {
	res = &results{Started: time.Now(), Args: os.Args[1:], Wizards: o.wizards}
	root, err := repoRoot()
	if err != nil {
		return res, err
	}
	res.Commit = o.commit
	if res.Commit == "" {
		res.Commit = gitDescribe(root)
	}
	tmp, err := os.MkdirTemp("", "algocloud-bench-*")
	if err != nil {
		return res, err
	}
	defer func() {
		failed := err != nil || len(res.problems()) > 0
		if res.LogPath != "" && !o.keep && !failed {
			// The data goes; the platform's log stays for a reader of the report.
			kept := filepath.Join(os.TempDir(), fmt.Sprintf("algocloud-bench-platform-%s.log", res.Started.Format("20060102-150405")))
			if b, err := os.ReadFile(res.LogPath); err == nil && os.WriteFile(kept, b, 0o644) == nil {
				progress("platform log kept in %s", kept)
			}
		}
		if o.keep || failed {
			progress("kept %s (logs, data)", tmp)
			res.KeptDir = tmp
			return
		}
		_ = os.RemoveAll(tmp)
	}()
	if res.InferBin, err = binary(o.inferBin, root, "algocloud-infer", tmp); err != nil {
		return res, err
	}
	if !o.skip["dev"] {
		if res.DevBin, err = binary(o.devBin, root, "algocloud", tmp); err != nil {
			return res, err
		}
	}
	if !o.skip["sequential"] || !o.skip["burst"] {
		if err := runPlatform(o, root, tmp, res); err != nil {
			return res, err
		}
	}
	if !o.skip["dev"] {
		for _, ui := range []bool{true, false} {
			progress("idle memory of algocloud dev (UI %v): start, wait %s idle, read /proc, SIGINT", ui, o.idle)
			snap := snapCPU()
			m := measureDev(context.Background(), res.DevBin, res.InferBin, tmp, ui, o.idle)
			res.Phases = append(res.Phases, since(fmt.Sprintf("algocloud dev idle (UI %v)", ui), snap))
			if m.Err != nil {
				progress("  error: %v", m.Err)
			} else {
				progress("  RSS %.0f MB (children %.0f MB), healthy after %s, exit %d after %s", m.RSS, m.ChildrenRSS, fd(m.StartToHealthy), m.ExitCode, fd(m.Shutdown))
			}
			res.Dev = append(res.Dev, m)
		}
	}
	res.Finished = time.Now()
	return res, nil
}

// runPlatform starts the platform in-process and runs the sequential and burst phases.
func runPlatform(o options, root, tmp string, res *results) error {
	ctx := context.Background()
	logf, err := os.Create(filepath.Join(tmp, "platform.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	s, err := startSession(ctx, o, root, tmp, logf, res)
	if err != nil {
		return err
	}
	defer s.stop()
	defer s.orch.stop()
	res.Phases = append(res.Phases, since("platform start", s.started))
	if err := s.warmUp(ctx); err != nil {
		return err
	}
	seqIDs := []string{res.Warmup.ID}
	if !o.skip["sequential"] {
		ids, err := s.sequential(ctx)
		if err != nil {
			return err
		}
		seqIDs = append(seqIDs, ids...)
	}
	if !o.skip["burst"] {
		s.burst(ctx)
	}
	res.SeqQueue = analyseHistories(ctx, s.p.Client, seqIDs)
	s.orch.stop()
	s.stop()
	res.HWM = statusMB(os.Getpid(), "VmHWM")
	res.Log = summariseLog(logf.Name())
	return nil
}

// session is one in-process platform and what the phases measured on it
// share: the wizard's client, the orchestration baseline, the raw
// algocloud-infer baseline (once the warm-up made a live.json to boot).
type session struct {
	o       options
	tmp     string
	repo    string // the algorithm's Git repository
	dataDir string
	res     *results
	p       *platform.Platform
	w       *wizard
	orch    *orchestration
	raw     *rawBoot
	started cpuSnap // before the platform started
	stopped bool
}

// startSession makes the algorithm's repository, starts the platform on
// tmp/data (logging to logf), and the dev user's API client and the
// orchestration baseline's worker on it.
func startSession(ctx context.Context, o options, root, tmp string, logf *os.File, res *results) (*session, error) {
	s := &session{o: o, tmp: tmp, repo: filepath.Join(tmp, "repo"), dataDir: filepath.Join(tmp, "data"), res: res}
	res.DataDir, res.LogPath = s.dataDir, logf.Name()
	if err := os.MkdirAll(s.repo, 0o755); err != nil {
		return nil, err
	}
	if err := gitRepo(filepath.Join(root, o.example), s.repo); err != nil {
		return nil, err
	}

	progress("starting the platform in-process (embedded Temporal on SQLite in %s)", s.dataDir)
	s.started = snapCPU()
	t := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	p, err := platform.Start(sctx, platform.Options{
		DataDir: s.dataDir, Embedded: true, RunAPI: true, RunWorker: true, APIAddr: "127.0.0.1:0",
		InferCommand: []string{res.InferBin}, AllowLocalGit: true,
		Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("start platform: %w", err)
	}
	res.PlatformStart = time.Since(t)
	s.p = p
	if err := s.connect(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// connect makes the wizard's API and endpoint clients and starts the
// orchestration baseline's worker.
func (s *session) connect(ctx context.Context) error {
	tok, err := s.p.EnsureDevUser(ctx)
	if err != nil {
		return fmt.Errorf("dev user: %w", err)
	}
	hc, err := endpointClient(s.p.CA.RootPEM())
	if err != nil {
		return err
	}
	api, err := apiclient.New(s.p.APIURL, tok, &http.Client{Timeout: 15 * time.Minute})
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	s.w = &wizard{
		api:      api,
		endpoint: hc, repo: s.repo, threads: s.o.threads,
		png: samplePNG(s.o.imgW, s.o.imgH), pngW: s.o.imgW, pngH: s.o.imgH,
	}
	s.orch, err = startOrchestration(s.p.Client)
	return err
}

// stop stops the platform once, timing the stop and counting the data
// folder's processes left after it.
func (s *session) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	t := time.Now()
	s.p.Stop()
	s.res.PlatformStop = time.Since(t)
	s.res.LeftAfterStop, _ = waitNoProcesses(s.dataDir, 15*time.Second)
}

// warmUp runs one wizard whose endpoint stays live (its live.json is what
// the raw process baseline boots) and warms the raw path too.
func (s *session) warmUp(ctx context.Context) error {
	progress("warm-up wizard (cold caches; reported apart)")
	if _, _, _, err := s.orch.sample(ctx, 1); err != nil {
		return err
	}
	res := s.res
	res.Warmup = s.w.walk(ctx, "bench-warmup")
	if res.Warmup.Err != nil {
		return fmt.Errorf("warm-up wizard failed at %s: %w", res.Warmup.FailedStep, res.Warmup.Err)
	}
	s.raw = &rawBoot{inferBin: res.InferBin, liveJSON: filepath.Join(res.Warmup.Workdir, "live.json"),
		workdir: res.Warmup.Workdir, tmp: s.tmp, w: s.w}
	if _, _, err := s.raw.run(ctx, false); err != nil { // warm the raw path too
		return fmt.Errorf("raw algocloud-infer: %w", err)
	}
	return nil
}

// sequential runs -runs wizards one after another, each after its
// baselines, and returns the IDs of the deployments they made.
func (s *session) sequential(ctx context.Context) ([]string, error) {
	stopProf := startProfile(s.o.cpuprof, "sequential.pprof")
	defer stopProf()
	snap := snapCPU()
	var ids []string
	for i := 0; i < s.o.runs; i++ {
		step, err := s.sequentialBaselines(ctx, i)
		if err != nil {
			return ids, err
		}
		r := s.w.walk(ctx, fmt.Sprintf("bench-seq-%d", i))
		s.res.Seq = append(s.res.Seq, r)
		if r.ID != "" {
			ids = append(ids, r.ID)
		}
		if r.Err != nil {
			progress("  run %d FAILED at %s: %v", i+1, r.FailedStep, r.Err)
		} else {
			progress("  run %d: wizard %s, complete→first answer %s (complete call %s); raw boot→first answer %s; step-shaped update %s",
				i+1, fd(r.Total), fd(r.CompleteToFirst), fd(r.API["complete"]), fd(s.res.RawFirst[len(s.res.RawFirst)-1]), fd(median(step)))
		}
		if r.ID != "" {
			d, err := s.w.remove(ctx, r.ID)
			if err != nil {
				s.res.SeqDeleteErrors = append(s.res.SeqDeleteErrors, err.Error())
			} else {
				s.res.SeqDeletes = append(s.res.SeqDeletes, d)
			}
		}
	}
	s.res.Phases = append(s.res.Phases, since(fmt.Sprintf("sequential (%d wizards + baselines)", s.o.runs), snap))
	return ids, nil
}

// sequentialBaselines measures run i's baselines: the raw algocloud-infer
// boot (with the 5 ms and the platform's readiness poll), the direct
// clone + venv + removal, and the Temporal no-op and step-shaped updates,
// whose step-shaped durations it returns for the progress line.
func (s *session) sequentialBaselines(ctx context.Context, i int) (step []time.Duration, err error) {
	res := s.res
	ready, first, err := s.raw.run(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("raw algocloud-infer: %w", err)
	}
	res.RawReady, res.RawFirst, res.RawStop = append(res.RawReady, ready), append(res.RawFirst, first), append(res.RawStop, s.raw.lastStop)
	readyWR, _, err := s.raw.run(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("raw algocloud-infer: %w", err)
	}
	res.RawReadyWR = append(res.RawReadyWR, readyWR)
	clone, venv, remove, err := rawWork(ctx, s.repo, s.tmp, i)
	if err != nil {
		return nil, fmt.Errorf("raw work baseline: %w", err)
	}
	res.RawClone, res.RawVenv, res.RawRemove = append(res.RawClone, clone), append(res.RawVenv, venv), append(res.RawRemove, remove)
	st, noop, step, err := s.orch.sample(ctx, s.o.noops)
	if err != nil {
		return nil, err
	}
	res.StartWF, res.NoopUpd, res.StepUpd = append(res.StartWF, st...), append(res.NoopUpd, noop...), append(res.StepUpd, step...)
	return step, nil
}

// burst runs -wizards wizards at once after the burst's baselines (N raw
// boots, N clones + venvs, N workflows of step-shaped updates), deletes
// them at once and reads their histories' queue times.
func (s *session) burst(ctx context.Context) {
	res, n := s.res, s.o.wizards
	if s.o.rawBursts {
		s.rawBursts(ctx)
	}
	if d, err := s.w.remove(ctx, res.Warmup.ID); err != nil {
		res.SeqDeleteErrors = append(res.SeqDeleteErrors, "warm-up: "+err.Error())
	} else {
		res.WarmupDelete = d
	}
	progress("orchestration baseline: %d workflows × 5 step-shaped updates at once", n)
	snap := snapCPU()
	res.OrchBurst.Wall, res.OrchBurst.Each, res.OrchBurst.Failures, res.OrchBurst.Err = s.orch.concurrent(ctx, n, len(wizardSteps))
	res.Phases = append(res.Phases, since(fmt.Sprintf("orchestration burst (%d×5 updates)", n), snap))
	progress("  done after %s (%d failed)", fd(res.OrchBurst.Wall), res.OrchBurst.Failures)

	progress("%d wizards at once", n)
	stopProf := startProfile(s.o.cpuprof, "burst.pprof")
	stopBlock := startBlockProfile(s.o.cpuprof, s.o.blockRate, "burst")
	snap = snapCPU()
	res.Burst = runBurst(ctx, s.w, n, s.dataDir, "bench-burst")
	res.Phases = append(res.Phases, since(fmt.Sprintf("%d wizards at once", n), snap))
	stopProf()
	stopBlock()
	progress("  all finished after %s: %d failed, peak %d processes", fd(res.Burst.Wall), len(res.Burst.Failures), res.Burst.PeakProcesses)
	for _, f := range res.Burst.Failures {
		progress("  FAILED %s at %s: %v", f.APIName, f.FailedStep, f.Err)
	}
	progress("deleting the %d at once", n)
	snap = snapCPU()
	res.Burst.deleteAll(ctx, s.w, s.dataDir)
	res.Phases = append(res.Phases, since(fmt.Sprintf("delete %d at once", n), snap))
	progress("  done after %s; %d processes of the data folder left", fd(res.Burst.DeleteWall), res.Burst.Leftover)
	var ids []string
	for _, r := range res.Burst.Runs {
		if r.ID != "" {
			ids = append(ids, r.ID)
		}
	}
	res.BurstQueue = analyseHistories(ctx, s.p.Client, ids)
}

// rawBursts are the burst's direct baselines: N algocloud-infer booted at
// once, then N clones + venvs at once and their removals.
func (s *session) rawBursts(ctx context.Context) {
	res, n := s.res, s.o.wizards
	progress("process baseline: %d algocloud-infer booted at once, directly", n)
	snap := snapCPU()
	res.RawBurst.Wall, res.RawBurst.Each, res.RawBurst.Failures, res.RawBurst.Err = s.raw.concurrent(ctx, n)
	res.Phases = append(res.Phases, since(fmt.Sprintf("raw burst (%d algocloud-infer)", n), snap))
	progress("  all answered after %s (%d failed)", fd(res.RawBurst.Wall), res.RawBurst.Failures)
	progress("work baseline: %d × (clone + venv) at once, then %d removals at once, called directly", n, n)
	snap = snapCPU()
	res.WorkBurst, res.RemoveBurst = rawWorkBurst(ctx, s.repo, s.tmp, n)
	res.Phases = append(res.Phases, since(fmt.Sprintf("direct work burst (%d clones + venvs, then removals)", n), snap))
	progress("  done after %s (%d failed); removals %s", fd(res.WorkBurst.Wall), res.WorkBurst.Failures, fd(res.RemoveBurst.Wall))
}

// startProfile writes a CPU profile of this process to dir/name until the
// returned function is called; no-op when dir is empty.
func startProfile(dir, name string) func() {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		progress("cpu profile: %v", err)
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		progress("cpu profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		progress("cpu profile: %v", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// startBlockProfile records blocking and mutex contention at rate until the
// returned function writes dir/name.block.pprof and dir/name.mutex.pprof.
func startBlockProfile(dir string, rate int, name string) func() {
	if dir == "" || rate <= 0 {
		return func() {}
	}
	runtime.SetBlockProfileRate(rate)
	runtime.SetMutexProfileFraction(1)
	return func() {
		for _, kind := range []string{"block", "mutex"} {
			f, err := os.Create(filepath.Join(dir, name+"."+kind+".pprof"))
			if err != nil {
				progress("%s profile: %v", kind, err)
				continue
			}
			_ = pprof.Lookup(kind).WriteTo(f, 0)
			f.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}
}

func gitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
