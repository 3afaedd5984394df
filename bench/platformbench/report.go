package platformbench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// burstBaseline is a baseline run n at once.
type burstBaseline struct {
	Wall     time.Duration
	Each     []time.Duration
	Failures int
	Err      error
}

// results is everything one run measured.
type results struct {
	Started, Finished time.Time
	Args              []string
	Commit            string
	InferBin, DevBin  string
	DataDir, LogPath  string
	KeptDir           string
	Wizards           int

	PlatformStart, PlatformStop time.Duration
	LeftAfterStop               int

	Warmup       wizardRun
	WarmupDelete time.Duration
	Seq          []wizardRun
	SeqDeletes   []time.Duration

	SeqDeleteErrors []string

	// Baselines of the sequential phase, interleaved with its runs.
	StartWF, NoopUpd, StepUpd []time.Duration
	RawReady, RawFirst        []time.Duration
	RawReadyWR                []time.Duration // readiness seen through inferapi.WaitReady
	RawClone, RawVenv         []time.Duration
	RawRemove, RawStop        []time.Duration

	RawBurst, OrchBurst, WorkBurst, RemoveBurst burstBaseline
	Burst                                       *burst
	SeqQueue, BurstQueue                        queueStats

	Dev    []devIdle
	Phases []phaseCPU
	HWM    float64 // MB, this process's peak RSS (embedded Temporal, API, worker)
	Log    logSummary
}

// problems lists what makes the run a failure.
func (r *results) problems() []string {
	var out []string
	for _, s := range r.Seq {
		if s.Err != nil {
			out = append(out, fmt.Sprintf("sequential %s failed at %s: %v", s.APIName, s.FailedStep, s.Err))
		}
	}
	out = append(out, r.SeqDeleteErrors...)
	if b := r.Burst; b != nil {
		for _, f := range b.Failures {
			out = append(out, fmt.Sprintf("burst %s failed at %s: %v", f.APIName, f.FailedStep, f.Err))
		}
		out = append(out, b.DeleteFailures...)
		if b.Leftover > 0 {
			out = append(out, fmt.Sprintf("%d processes of the data folder still run after deleting the burst: %s", b.Leftover, strings.Join(b.LeftoverCmd, "; ")))
		}
	}
	if r.LeftAfterStop > 0 {
		out = append(out, fmt.Sprintf("%d processes of the data folder still run after the platform stopped", r.LeftAfterStop))
	}
	if r.RawBurst.Err != nil {
		out = append(out, fmt.Sprintf("raw burst: %d failed: %v", r.RawBurst.Failures, r.RawBurst.Err))
	}
	if r.WorkBurst.Err != nil {
		out = append(out, fmt.Sprintf("work burst: %d failed: %v", r.WorkBurst.Failures, r.WorkBurst.Err))
	}
	if r.RemoveBurst.Err != nil {
		out = append(out, fmt.Sprintf("removal burst: %d failed: %v", r.RemoveBurst.Failures, r.RemoveBurst.Err))
	}
	if r.OrchBurst.Err != nil {
		out = append(out, fmt.Sprintf("orchestration burst: %d failed: %v", r.OrchBurst.Failures, r.OrchBurst.Err))
	}
	for _, d := range r.Dev {
		if d.Err != nil {
			out = append(out, fmt.Sprintf("algocloud dev (UI %v): %v", d.UI, d.Err))
		} else if d.ExitCode != 0 {
			out = append(out, fmt.Sprintf("algocloud dev (UI %v) exited %d after SIGINT", d.UI, d.ExitCode))
		}
	}
	return out
}

// table builds a markdown table.
type table struct {
	b strings.Builder
}

func newTable(head ...string) *table {
	t := &table{}
	t.row(head...)
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
	return t
}

func (t *table) row(cells ...string) {
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (t *table) String() string { return t.b.String() }

// markdown is the report: the run's header, the figures, then a
// section per phase that ran, the CPU by phase, the log and any problems.
func (r *results) markdown(o options) string {
	var b strings.Builder
	if r.Finished.IsZero() { // stopped early by an error
		r.Finished = time.Now()
	}
	f := r.sequentialFigures()
	r.writeHeader(&b, o)
	r.writeFigures(&b, o, f)
	r.writeSequential(&b, f)
	r.writeBurst(&b, f)
	r.writeDev(&b)
	r.writeCPU(&b)
	r.writeTail(&b)
	return b.String()
}

// seqFigures are the one-at-a-time medians the report's sections share.
type seqFigures struct {
	seqRuns            []wizardRun // the runs that finished
	total, c2f         []time.Duration
	stepMed            time.Duration // step-shaped update
	rawFirst, rawReady time.Duration
	floor              time.Duration // the whole wizard's floor from the baselines
}

func (r *results) sequentialFigures() seqFigures {
	f := seqFigures{seqRuns: r.okRuns()}
	f.total, f.c2f = totals(f.seqRuns)
	f.stepMed = median(r.StepUpd)
	f.rawFirst, f.rawReady = median(r.RawFirst), median(r.RawReady)
	f.floor = median(r.StartWF) + time.Duration(len(wizardSteps))*f.stepMed + median(r.RawClone) + median(r.RawVenv) + 2*f.rawFirst
	return f
}

// writeHeader is the run's command, machine, duration and what the
// baselines are.
func (r *results) writeHeader(b *strings.Builder, o options) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	host, _ := os.Hostname()
	w("### Run of %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	w("- Command: `algocloud-bench %s` (what `./scripts/bench.sh` runs after `scripts/build.sh`; `go run ./cmd/algocloud-bench` takes the same flags), commit `%s`, %s.\n", strings.Join(r.Args, " "), r.Commit, runtime.Version())
	w("- Machine: %s, %d cores (`nproc`), %s, %.0f GB RAM; shared with other engineers (see the CPU table: \"others\").\n", host, runtime.NumCPU(), cpuModel(), memTotalGB())
	w("- Took %s. Example `%s`, %d Python worker(s) per endpoint, a %d×%d PNG; no pip download (no requirements).\n",
		r.Finished.Sub(r.Started).Round(time.Second), o.example, o.threads, o.imgW, o.imgH)
	w("- Baselines ran in the same run, interleaved with the measured runs: *step-shaped update* is a Temporal Update on the same embedded server and client whose handler runs one no-op activity and one no-op local activity (what `workflows.deployment.run` adds around a step's work); *raw boot* is `algocloud-infer` exec'd directly on a copy of a live deployment's `live.json` (same code, venv, certificate), `/readyz` polled every 5 ms, then `/predict` until 200; *direct work* is the step's own library calls (`source.Clone`, `python.EnsureVenv`, `os.RemoveAll` of that folder) with no API, Temporal or activity around them.\n\n")
}

// writeFigures is the table of the figures against their goals.
func (r *results) writeFigures(b *strings.Builder, o options, f seqFigures) {
	b.WriteString("#### The issue's figures\n\n")
	t := newTable("figure", "measured", "baseline (same run)", "ratio (overhead)", "goal")
	if len(f.seqRuns) > 0 {
		t.row("*Complete* → endpoint's first answer", fmt.Sprintf("median %s, max %s (%d runs)", fd(median(f.c2f)), fd(maxDur(f.c2f)), len(f.c2f)),
			"raw boot → first answer "+fd(f.rawFirst), ratio(median(f.c2f), f.rawFirst), goal(maxDur(f.c2f) < time.Second, "< 1 s"))
		t.row("… of which the *complete* call", fmt.Sprintf("median %s, max %s", fd(median(stepStats(f.seqRuns, "complete", false))), fd(maxDur(stepStats(f.seqRuns, "complete", false)))),
			"raw boot → /readyz 200 "+fd(f.rawReady), ratio(median(stepStats(f.seqRuns, "complete", false)), f.rawReady), "")
		t.row("… raw boot → ready as `inference.WaitReady` (the platform's poll) sees it", fmt.Sprintf("median %s, max %s", fd(median(r.RawReadyWR)), fd(maxDur(r.RawReadyWR))),
			"raw boot → /readyz 200 (5 ms poll) "+fd(f.rawReady), ratio(median(r.RawReadyWR), f.rawReady), "")
		t.row("Whole wizard through the API (configure → first answer), no pip download", fmt.Sprintf("median %s, max %s", fd(median(f.total)), fd(maxDur(f.total))),
			"floor "+fd(f.floor)+": start workflow + 5 step-shaped updates + direct clone + direct venv + 2 raw boots → first answer", ratio(median(f.total), f.floor), goal(maxDur(f.total) < 10*time.Second, "< 10 s"))
	}
	if bu := r.Burst; bu != nil {
		bt, bc := totals(bu.Runs)
		burstFloor := r.WorkBurst.Wall + 2*r.RawBurst.Wall + r.OrchBurst.Wall
		t.row(fmt.Sprintf("%d wizards at once on the embedded server", bu.N),
			fmt.Sprintf("%d/%d finished, %d failed; wall %s; per wizard p50 %s, p95 %s; complete→first answer p50 %s, p95 %s",
				bu.N-len(bu.Failures), bu.N, len(bu.Failures), fd(bu.Wall), fd(pct(bt, 50)), fd(pct(bt, 95)), fd(pct(bc, 50)), fd(pct(bc, 95))),
			fmt.Sprintf("floor %s: %d × direct (clone + venv) at once (%s) + 2 × %d raw boots at once (%s) + %d×5 step-shaped updates at once (%s)",
				fd(burstFloor), bu.N, fd(r.WorkBurst.Wall), bu.N, fd(r.RawBurst.Wall), bu.N, fd(r.OrchBurst.Wall)),
			ratio(bu.Wall, burstFloor), goal(len(bu.Failures) == 0, "no failure"))
	}
	for _, d := range r.Dev {
		if !d.UI || d.Err != nil {
			continue
		}
		base := "–"
		for _, e := range r.Dev {
			if !e.UI && e.Err == nil {
				base = fmt.Sprintf("same with `--ui-port 0`: %.0f MB", e.RSS)
			}
		}
		t.row(fmt.Sprintf("Idle memory of `algocloud dev` (%s idle, UI on)", o.idle), fmt.Sprintf("RSS %.0f MB (+ %d children, %.0f MB)", d.RSS, d.Children, d.ChildrenRSS),
			base, "", goal(d.RSS+d.ChildrenRSS < 300, "< 300 MB"))
	}
	b.WriteString(t.String())
}

// writeSequential is the one-wizard-at-a-time section, per step.
func (r *results) writeSequential(b *strings.Builder, f seqFigures) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if len(f.seqRuns) > 0 {
		w("\n#### One wizard at a time, per step (%d runs after a warm-up; warm-up run %s, complete→first answer %s)\n\n", len(f.seqRuns), fd(r.Warmup.Total), fd(r.Warmup.CompleteToFirst))
		t := newTable("step", "API round trip median", "max", "inside the workflow (its activities) median", "API − workflow", "baseline (median)", "ratio (overhead)")
		for _, s := range stepNamesAll {
			api, wf := stepStats(f.seqRuns, s, false), stepStats(f.seqRuns, s, true)
			baseName, base := r.stepBaseline(s)
			diff := "–"
			if len(wf) > 0 && median(wf) > 0 {
				diff = fd(median(api) - median(wf))
			}
			t.row("`"+s+"`", fd(median(api)), fd(maxDur(api)), fd(median(wf)), diff, baseName+" "+fd(base), ratio(median(api), base))
		}
		t.row("**total**", fd(median(f.total)), fd(maxDur(f.total)), "", "", "floor "+fd(f.floor), ratio(median(f.total), f.floor))
		delBase := f.stepMed + median(r.RawStop) + median(r.RawRemove)
		t.row("`DELETE` (stop endpoint, release server)", fd(median(r.SeqDeletes)), fd(maxDur(r.SeqDeletes)), "", "", "step-shaped update + raw SIGTERM → exit + folder removal "+fd(delBase), ratio(median(r.SeqDeletes), delBase))
		b.WriteString(t.String())
		b.WriteString(r.SeqQueue.markdown("Where the steps' activities spent their time, one wizard at a time (deletes included)"))
		w("\nBaselines (medians): start a workflow %s; no-op update %s; step-shaped update %s; raw boot → /readyz %s, → first answer %s, SIGTERM → exit %s; `source.Clone` %s; `python.EnsureVenv` %s; removing their folder %s. Platform start (embedded Temporal, store, CA, worker, API) %s, stop %s.\n",
			fd(median(r.StartWF)), fd(median(r.NoopUpd)), fd(f.stepMed), fd(f.rawReady), fd(f.rawFirst), fd(median(r.RawStop)), fd(median(r.RawClone)), fd(median(r.RawVenv)), fd(median(r.RawRemove)), fd(r.PlatformStart), fd(r.PlatformStop))
	}
}

// writeBurst is the N-wizards-at-once section.
func (r *results) writeBurst(b *strings.Builder, f seqFigures) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if bu := r.Burst; bu != nil {
		w("\n#### %d wizards at once\n\n", bu.N)
		t := newTable("per wizard", "p50", "p95", "max")
		bt, bc := totals(bu.Runs)
		t.row("total (configure → first answer)", fd(pct(bt, 50)), fd(pct(bt, 95)), fd(maxDur(bt)))
		t.row("complete → first answer", fd(pct(bc, 50)), fd(pct(bc, 95)), fd(maxDur(bc)))
		for _, s := range stepNamesAll {
			api := stepStats(bu.Runs, s, false)
			wf := stepStats(bu.Runs, s, true)
			extra := ""
			if len(wf) > 0 && median(wf) > 0 {
				extra = fmt.Sprintf(" (in workflow %s)", fd(pct(wf, 50)))
			}
			t.row("`"+s+"`", fd(pct(api, 50))+extra, fd(pct(api, 95)), fd(maxDur(api)))
		}
		t.row(fmt.Sprintf("`DELETE`, all %d at once (wall %s; floor: %d removals at once %s + %d×5 step-shaped updates at once %s)", bu.N, fd(bu.DeleteWall), bu.N, fd(r.RemoveBurst.Wall), bu.N, fd(r.OrchBurst.Wall)), fd(pct(bu.Deletes, 50)), fd(pct(bu.Deletes, 95)), fd(maxDur(bu.Deletes)))
		t.row(fmt.Sprintf("baseline: step-shaped update, %d×5 at once on warm workflows (wall %s, %d failed)", bu.N, fd(r.OrchBurst.Wall), r.OrchBurst.Failures), fd(pct(r.OrchBurst.Each, 50)), fd(pct(r.OrchBurst.Each, 95)), fd(maxDur(r.OrchBurst.Each)))
		t.row(fmt.Sprintf("baseline: direct `source.Clone` + `python.EnsureVenv`, %d at once (wall %s, %d failed)", bu.N, fd(r.WorkBurst.Wall), r.WorkBurst.Failures), fd(pct(r.WorkBurst.Each, 50)), fd(pct(r.WorkBurst.Each, 95)), fd(maxDur(r.WorkBurst.Each)))
		t.row(fmt.Sprintf("baseline: removing those %d folders at once (wall %s, %d failed)", bu.N, fd(r.RemoveBurst.Wall), r.RemoveBurst.Failures), fd(pct(r.RemoveBurst.Each, 50)), fd(pct(r.RemoveBurst.Each, 95)), fd(maxDur(r.RemoveBurst.Each)))
		t.row(fmt.Sprintf("baseline: raw boot → first answer, %d at once (wall %s, %d failed)", bu.N, fd(r.RawBurst.Wall), r.RawBurst.Failures), fd(pct(r.RawBurst.Each, 50)), fd(pct(r.RawBurst.Each, 95)), fd(maxDur(r.RawBurst.Each)))
		b.WriteString(t.String())
		w("\nWall time %s for %d wizards (%d failed); one at a time they would take %s (%d × the sequential median). Peak %d processes of the data folder at once (inference servers and their Python workers). After deleting all: %d left (checked by command line naming the data folder). Peak RSS of the bench process (embedded Temporal, API, worker): %.0f MB.\n",
			fd(bu.Wall), bu.N, len(bu.Failures), fd(time.Duration(bu.N)*median(f.total)), bu.N, bu.PeakProcesses, bu.Leftover, r.HWM)
		b.WriteString(r.BurstQueue.markdown(fmt.Sprintf("Where the steps' activities spent their time, %d at once (deletes included)", bu.N)))
		if len(bu.Failures) > 0 {
			w("\nFailures:\n\n")
			for _, f := range bu.Failures {
				w("- `%s` at `%s`: %s\n", f.APIName, f.FailedStep, oneLine(f.Err.Error()))
			}
		}
	}
}

// writeDev is the `algocloud dev` idle section.
func (r *results) writeDev(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if len(r.Dev) > 0 {
		w("\n#### `algocloud dev` idle\n\n")
		t := newTable("UI", "RSS", "peak RSS (VmHWM)", "PSS", "children (RSS)", "exec → /healthz 200", "SIGINT → exit", "exit code")
		for _, d := range r.Dev {
			if d.Err != nil {
				t.row(fmt.Sprint(d.UI), "error: "+oneLine(d.Err.Error()), "", "", "", "", "", "")
				continue
			}
			t.row(fmt.Sprint(d.UI), fmt.Sprintf("%.0f MB", d.RSS), fmt.Sprintf("%.0f MB", d.HWM), fmt.Sprintf("%.0f MB", d.PSS),
				fmt.Sprintf("%d (%.0f MB)", d.Children, d.ChildrenRSS), fd(d.StartToHealthy), fd(d.Shutdown), fmt.Sprint(d.ExitCode))
		}
		b.WriteString(t.String())
	}
}

// writeCPU is the CPU-by-phase table.
func (r *results) writeCPU(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("\n#### CPU by phase (load of the shared machine)\n\n")
	t := newTable("phase", "wall", "bench process CPU", "its children's CPU", "others' CPU", "machine busy", "load1 before → after")
	for _, p := range r.Phases {
		busy := "–"
		if p.Wall > 0 {
			busy = fmt.Sprintf("%.0f%%", 100*p.Machine.Seconds()/(p.Wall.Seconds()*float64(runtime.NumCPU())))
		}
		t.row(p.Name, fd(p.Wall), fd(p.Self), fd(p.Children), fd(p.Others()), busy, fmt.Sprintf("%.2f → %.2f", p.LoadBefore, p.LoadAt))
	}
	b.WriteString(t.String())
	w("\nChildren's CPU counts processes once they exit (every endpoint is stopped by the end of its phase); \"others\" is the machine's busy time minus this process and its children: other engineers' work.\n")
}

// writeTail is the platform log's summary and the problems, if any.
func (r *results) writeTail(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if r.LogPath != "" {
		w("\n#### Platform log (level info and above)\n\n%s", r.Log.markdown())
	}
	if probs := r.problems(); len(probs) > 0 {
		w("\n#### Problems\n\n")
		for _, p := range probs {
			w("- %s\n", oneLine(p))
		}
		if r.KeptDir != "" {
			w("\nData and logs kept in `%s`.\n", r.KeptDir)
		}
	}
}

func (r *results) okRuns() []wizardRun {
	var out []wizardRun
	for _, s := range r.Seq {
		if s.Err == nil {
			out = append(out, s)
		}
	}
	return out
}

// stepBaseline is the same-run baseline of one wizard step.
func (r *results) stepBaseline(step string) (string, time.Duration) {
	st := median(r.StepUpd)
	switch step {
	case "configure":
		return "start workflow", median(r.StartWF)
	case "provision":
		return "step-shaped update", st
	case "fetch_code":
		return "step-shaped update + direct `source.Clone`", st + median(r.RawClone)
	case "install_requirements":
		return "step-shaped update + direct `python.EnsureVenv`", st + median(r.RawVenv)
	case "test":
		return "step-shaped update + raw boot → first answer", st + median(r.RawFirst)
	case "complete":
		return "step-shaped update + raw boot → /readyz", st + median(r.RawReady)
	case "first_predict":
		var d []time.Duration
		for i := range r.RawFirst {
			d = append(d, r.RawFirst[i]-r.RawReady[i])
		}
		return "raw first /predict after ready", median(d)
	}
	return "", 0
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// logSummary counts the platform log's records by level and message.
type logSummary struct {
	Lines    int
	ByLevel  map[string]int
	Messages map[string]int    // "LEVEL msg" -> count, WARN and ERROR only
	Patterns map[string]int    // known trouble signs -> count
	Examples map[string]string // message or sign -> its first line
}

var troubleSigns = []string{"database is locked", "SQLITE_BUSY", "resource exhausted", "ResourceExhausted", "deadline exceeded", "context canceled", "too many", "timed out"}

func summariseLog(path string) logSummary {
	s := logSummary{ByLevel: map[string]int{}, Messages: map[string]int{}, Patterns: map[string]int{}, Examples: map[string]string{}}
	f, err := os.Open(path)
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		s.Lines++
		level := field(line, "level")
		s.ByLevel[level]++
		if level == "WARN" || level == "ERROR" {
			k := level + " " + field(line, "msg")
			s.Messages[k]++
			if _, ok := s.Examples[k]; !ok {
				s.Examples[k] = line
			}
		}
		for _, p := range troubleSigns {
			if strings.Contains(line, p) {
				s.Patterns[p]++
				if _, ok := s.Examples[p]; !ok {
					s.Examples[p] = line
				}
			}
		}
	}
	return s
}

// field reads key=value or key="quoted value" from a slog text line.
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		var out strings.Builder
		for j := 1; j < len(rest); j++ {
			c := rest[j]
			if c == '\\' && j+1 < len(rest) {
				j++
				out.WriteByte(rest[j])
				continue
			}
			if c == '"' {
				break
			}
			out.WriteByte(c)
		}
		return out.String()
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

func (s logSummary) markdown() string {
	var b strings.Builder
	var lv []string
	for k, n := range s.ByLevel {
		lv = append(lv, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(lv)
	fmt.Fprintf(&b, "%d lines: %s.", s.Lines, strings.Join(lv, ", "))
	var pats []string
	for k, n := range s.Patterns {
		pats = append(pats, fmt.Sprintf("%q ×%d", k, n))
	}
	slices.Sort(pats)
	if len(pats) > 0 {
		fmt.Fprintf(&b, " Trouble signs: %s.", strings.Join(pats, ", "))
	} else {
		b.WriteString(" No trouble signs (SQLite busy/locked, resource exhausted, deadline exceeded, timeouts).")
	}
	b.WriteString("\n")
	type kv struct {
		k string
		n int
	}
	var msgs []kv
	for k, n := range s.Messages {
		msgs = append(msgs, kv{k, n})
	}
	slices.SortFunc(msgs, func(a, b kv) int { return b.n - a.n })
	if len(msgs) > 0 {
		b.WriteString("\n| warnings and errors | count | first one |\n|---|---|---|\n")
		for i, m := range msgs {
			if i == 10 {
				break
			}
			fmt.Fprintf(&b, "| %s | %d | `%s` |\n", oneLine(m.k), m.n, strings.ReplaceAll(oneLine(s.Examples[m.k]), "`", "'"))
		}
	}
	if len(pats) > 0 {
		b.WriteString("\nFirst line of each trouble sign:\n\n")
		var keys []string
		for k := range s.Patterns {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "- %q: `%s`\n", k, strings.ReplaceAll(oneLine(s.Examples[k]), "`", "'"))
		}
	}
	return b.String()
}
