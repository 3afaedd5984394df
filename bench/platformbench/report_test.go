package platformbench

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReportGolden renders the report of fixed results (every section:
// sequential runs, a burst with a failure, the dev idle rows, an error row,
// problems) and compares it with testdata/report.golden.md, so that moving
// the report's code keeps its bytes. The two lines naming this machine and
// Go's version are masked. UPDATE_GOLDEN=1 rewrites the file after a
// change meant to alter the report.
func TestReportGolden(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	run := func(id string, fail bool) wizardRun {
		r := wizardRun{APIName: id, ID: id, API: map[string]time.Duration{}, InWF: map[string]time.Duration{}, Total: 3 * time.Second, CompleteToFirst: 400 * time.Millisecond}
		for i, s := range stepNamesAll {
			r.API[s] = time.Duration(100+i*10) * time.Millisecond
			r.InWF[s] = time.Duration(50+i*10) * time.Millisecond
		}
		if fail {
			r.Err, r.FailedStep = errors.New("boom\nline"), "test"
		}
		return r
	}
	st := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &results{Started: st, Finished: st.Add(time.Minute), Args: []string{"-runs", "2"}, Commit: "abc", Wizards: 3,
		Seq: []wizardRun{run("a", false), run("b", false), run("c", true)}, Warmup: run("w", false),
		StartWF: ms(10, 12), NoopUpd: ms(3, 4), StepUpd: ms(5, 6), RawReady: ms(100, 110), RawFirst: ms(200, 220), RawReadyWR: ms(120, 130),
		RawStop: ms(30, 31), RawClone: ms(40, 41), RawVenv: ms(300, 310), RawRemove: ms(5, 6), SeqDeletes: ms(500, 510),
		PlatformStart: time.Second, PlatformStop: 2 * time.Second, HWM: 321, LogPath: "x", KeptDir: "/tmp/k",
		Burst:  &burst{N: 3, Runs: []wizardRun{run("x", false), run("y", false), run("z", true)}, Failures: []wizardRun{run("z", true)}, Wall: 9 * time.Second, Deletes: ms(700, 800, 900), DeleteWall: time.Second, PeakProcesses: 7, Leftover: 1},
		Dev:    []devIdle{{UI: true, RSS: 100, HWM: 120, PSS: 90, Children: 2, ChildrenRSS: 50, StartToHealthy: time.Second, Shutdown: time.Second}, {UI: false, RSS: 80}, {UI: false, Err: errors.New("x")}},
		Phases: []phaseCPU{{Name: "p", Wall: time.Second, Self: time.Millisecond}},
	}
	r.OrchBurst.Wall, r.OrchBurst.Each = time.Second, ms(1, 2, 3)
	r.WorkBurst.Wall, r.WorkBurst.Each = time.Second, ms(1, 2, 3)
	r.RemoveBurst.Wall, r.RemoveBurst.Each = time.Second, ms(1, 2, 3)
	r.RawBurst.Wall, r.RawBurst.Each = time.Second, ms(1, 2, 3)
	o := options{example: "examples/segmentation", threads: 1, imgW: 128, imgH: 96, idle: time.Second}
	got := maskMachine(r.markdown(o))
	const golden = "testdata/report.golden.md"
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}

// maskMachine blanks the report's lines that name the machine, the commit
// line's Go version included.
func maskMachine(report string) string {
	lines := strings.Split(report, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "- Command: ") || strings.HasPrefix(l, "- Machine: ") {
			lines[i] = l[:strings.Index(l, ":")+1] + " (masked)"
		}
	}
	return strings.Join(lines, "\n")
}
