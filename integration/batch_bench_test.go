package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkclient "go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"golang.org/x/sys/unix"

	"github.com/algocloud/algocloud/internal/testenv"
)

// TestBatchFigure is the batch figure of docs/benchmarks.md, run only when
// ALGOCLOUD_BENCH_BATCH=N (the image count) is set: on one `algocloud dev`,
// N small PNGs through the segmentation endpoint by a client loop calling
// /predict with C requests in flight, then as a batch with concurrency C
// (the ratio of their throughputs), then as a batch during which dev is
// killed with SIGKILL three times (items sent twice, items lost). It is a
// test, not a testing.B, because it drives the dev binary with the
// integration harness (startDev, walk), which takes a *testing.T; it prints
// its figures and asserts nothing about time.
func TestBatchFigure(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ALGOCLOUD_BENCH_BATCH"))
	if n <= 0 {
		t.Skip("set ALGOCLOUD_BENCH_BATCH=N to measure a batch of N images")
	}
	const conc = 4 // the endpoint's threads (2) x 2, the batch's default
	// ALGOCLOUD_BENCH_BATCH_SIDE=S uses SxS images instead of the small ones
	// (10 to 18 pixels a side), to see how the ratio moves with the predict's cost.
	side, _ := strconv.Atoi(os.Getenv("ALGOCLOUD_BENCH_BATCH_SIDE"))
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	// ALGOCLOUD_BENCH_BATCH_PPROF=DIR saves a CPU profile of dev during the
	// batch as DIR/batch.pprof (`go tool pprof -top bin/algocloud DIR/batch.pprof`).
	profDir := os.Getenv("ALGOCLOUD_BENCH_BATCH_PPROF")
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if profDir != "" {
		t.Setenv("ALGOCLOUD_DEV_PPROF", pprofAddr)
	}
	d := startDev(t, data, apiPort, temporalPort)
	defer func() {
		_ = d.Cmd.Process.Signal(syscall.SIGINT)
		<-d.Done()
	}()
	c := testenv.NewAPIClient(t, d.api, d.token)
	tok := d.token // a restarted dev prints no token
	_, endpoint, epTok := walk(t, c, "benchseg", "segmentation", "image")
	hc := endpointClient2(t, data)
	imgs := make([][]byte, n)
	var entries []zipEntry
	for i := range imgs {
		imgs[i] = batchPNG(t, i)
		if side > 0 {
			imgs[i] = sidePNG(t, i, side)
		}
		entries = append(entries, zipEntry{name: fmt.Sprintf("%05d.png", i), body: imgs[i]})
	}
	archive := makeZip(t, entries)
	// ALGOCLOUD_BENCH_BATCH_PIN=1 pins the endpoint to core 0 and the
	// platform plus this process (both load generators) to core 1 before each
	// phase: the endpoint on its own machine, as in production (pinCPUs).
	pinned := os.Getenv("ALGOCLOUD_BENCH_BATCH_PIN") != ""
	repin := func(phase string) {
		if !pinned {
			return
		}
		e, p := pinCPUs(t, data, d.Cmd.Process.Pid)
		t.Logf("pinned before %s: endpoint %d processes, %d threads on core 0; platform and clients %d processes, %d threads on core 1",
			phase, e.procs, e.threads, p.procs, p.threads)
	}

	// The client loop: conc goroutines, each taking the next image. It runs
	// before and after the batch, and the batch is compared with their mean:
	// the machine's load from other work moves between phases.
	runLoop := func() (time.Duration, cpuTimes) {
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0 := readCPU(t, data, d.Cmd.Process.Pid)
		start := time.Now()
		for g := 0; g < conc; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					res, out := predict(t, hc, endpoint, epTok, imgs[i])
					require.Equal(t, http.StatusOK, res.StatusCode, string(out))
				}
			}()
		}
		wg.Wait()
		return time.Since(start), readCPU(t, data, d.Cmd.Process.Pid).sub(cpu0)
	}
	repin("the first loop")
	loop1, cpuLoop := runLoop()

	// The batch, from the POST to its completed_at.
	var profiled <-chan struct{}
	if profDir != "" {
		profiled = saveProfile(t, pprofAddr, filepath.Join(profDir, "batch.pprof"), 2*loop1+2*time.Second)
	}
	repin("the batch")
	cpu0 := readCPU(t, data, d.Cmd.Process.Pid)
	start := time.Now()
	r := postBatch(t, d.api, epTok, "benchseg", archive, conc)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	cpuPosted := readCPU(t, data, d.Cmd.Process.Pid)
	fin := waitBatchFast(t, c, r.Str("urls", "get"))
	cpuDone := readCPU(t, data, d.Cmd.Process.Pid)
	cpuStage, cpuBatch := cpuPosted.sub(cpu0), cpuDone.sub(cpuPosted)
	if profiled != nil {
		<-profiled
	}
	require.Equal(t, n, count(fin, "done"), string(fin.Raw))
	created, _ := time.Parse(time.RFC3339Nano, fin.Str("created_at"))
	completed, _ := time.Parse(time.RFC3339Nano, fin.Str("completed_at"))
	batchServer := completed.Sub(created)
	// End to end ends at completed_at (dev runs on this machine's clock),
	// not at the poll that saw it: the poll's interval adds nothing.
	batchWall := completed.Sub(start)
	repin("the second loop")
	loop2, _ := runLoop()
	loop := (loop1 + loop2) / 2

	if os.Getenv("ALGOCLOUD_BENCH_BATCH_NOKILL") != "" {
		t.Logf("FIGURE images %dx%d (0: 10 to 18 px); pinned (endpoint core 0, platform and clients core 1): %v", side, side, pinned)
	}
	t.Logf("FIGURE batch of %d PNGs at concurrency %d: client loop %.1f items/s (%.2f s, mean of %.2f s before and %.2f s after the batch); batch %.1f items/s end to end (%.2f s, upload included), %.1f items/s create→completed (%.2f s); ratio %.1f %% (end to end), %.1f %% (create→completed; %.1f %% and %.1f %% against the loop before and after)",
		n, conc, float64(n)/loop.Seconds(), loop.Seconds(), loop1.Seconds(), loop2.Seconds(), float64(n)/batchWall.Seconds(), batchWall.Seconds(),
		float64(n)/batchServer.Seconds(), batchServer.Seconds(), 100*loop.Seconds()/batchWall.Seconds(), 100*loop.Seconds()/batchServer.Seconds(),
		100*loop1.Seconds()/batchServer.Seconds(), 100*loop2.Seconds()/batchServer.Seconds())
	started, _ := time.Parse(time.RFC3339Nano, fin.Str("started_at"))
	ev := batchEvents(t, temporalPort, "batch-"+r.Str("id"))
	t.Logf("FIGURE batch phases: created→started (workflow start, first MarkBatch) %.0f ms; started→completed %.0f ms, of which last chunk's completion→completed (workflow task, last MarkBatch) %.0f ms",
		float64(started.Sub(created).Milliseconds()), float64(completed.Sub(started).Milliseconds()), float64(completed.Sub(ev.lastChunkDone).Milliseconds()))
	t.Logf("FIGURE batch workflow phases (history): created→workflow started (item rows, the start) %.0f ms; workflow started→first chunk started (first MarkBatch, chunk dispatched) %.0f ms; last chunk completed→completed %.0f ms",
		float64(ev.started.Sub(created).Milliseconds()), float64(ev.firstChunkStarted.Sub(ev.started).Milliseconds()), float64(completed.Sub(ev.lastChunkDone).Milliseconds()))
	if first, last, k := socketPredictSpan(t, data); k > 0 {
		// The serial phases around the endpoint's work: from the batch's
		// creation to the agent's first predict (the item rows, the first
		// chunk's command issued while the workflow starts, its hand-over,
		// the input's download; started_at may come after it), and from its
		// last predict to completed_at (the last part's upload, recording
		// it, the workflow's end).
		t.Logf("FIGURE batch serial phases: created→first predict on the agent socket %.0f ms (started→first predict %.0f ms); last predict→completed %.0f ms (%d predicts on the socket)",
			float64(first.Sub(created).Milliseconds()), float64(first.Sub(started).Milliseconds()), float64(completed.Sub(last).Milliseconds()), k)
	}
	per := func(s float64) float64 { return 1000 * s / float64(n) }
	t.Logf("FIGURE CPU ms per item: client loop (first): endpoint %.2f, test process (client) %.2f, dev %.2f; batch: staging (the POST) dev %.2f; running (POST answered to seen succeeded): endpoint %.2f, server agent (its chunks' client) %.2f, dev %.2f, test process %.2f",
		per(cpuLoop.endpoint), per(cpuLoop.test), per(cpuLoop.dev), per(cpuStage.dev), per(cpuBatch.endpoint), per(cpuBatch.agent), per(cpuBatch.dev), per(cpuBatch.test))
	t.Logf("FIGURE endpoint CPU ms per item by process: client loop (first): Go server %.2f, Python workers %.2f, sandbox helpers %.2f; batch running: Go server %.2f, Python workers %.2f, sandbox helpers %.2f",
		per(cpuLoop.serve), per(cpuLoop.python), per(cpuLoop.helpers), per(cpuBatch.serve), per(cpuBatch.python), per(cpuBatch.helpers))

	if os.Getenv("ALGOCLOUD_BENCH_BATCH_NOKILL") != "" {
		return
	}
	// The same batch with three kills of algocloud dev.
	baseline := predictLines(t, data)
	r = postBatch(t, d.api, epTok, "benchseg", archive, conc)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	get := r.Str("urls", "get")
	progress := func() int {
		_, raw, err := testenv.TryAPI(c.Base, tok, http.MethodGet, get, nil)
		if err != nil {
			return -1
		}
		var b resp
		_ = json.Unmarshal(raw, &b.Body)
		return count(b, "done") + count(b, "failed")
	}
	for kill := 1; kill <= 3; kill++ {
		target := kill * n / 4
		require.Eventually(t, func() bool { return progress() >= target }, 30*time.Minute, 20*time.Millisecond)
		require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
		<-d.Done()
		d = startDev(t, data, apiPort, temporalPort)
		c.Base = d.api
	}
	fin = waitBatch(t, c, get, 30*time.Minute)
	calls := predictLines(t, data) - baseline
	t.Logf("FIGURE batch of %d PNGs, algocloud dev killed 3 times: status %s, %d done, %d failed; %d predicts completed at the endpoint: %d items done twice, %d lost",
		n, fin.Str("status"), count(fin, "done"), count(fin, "failed"), calls, calls-count(fin, "done"), n-count(fin, "done")-count(fin, "failed"))
}

// batchTimes are times the Temporal server recorded in a Batch workflow's
// history (event times and activity types are not encrypted): with the
// batch's own timestamps they split its fixed phases, the start before the
// first chunk and the end after the last, from the chunks' work.
type batchTimes struct {
	started, firstChunkStarted, lastChunkDone time.Time
}

// batchEvents reads a Batch workflow's history from dev's Temporal server.
func batchEvents(t *testing.T, temporalPort int, workflowID string) batchTimes {
	tc, err := sdkclient.Dial(sdkclient.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", temporalPort), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	defer tc.Close()
	types := map[int64]string{}
	var bt batchTimes
	for _, ev := range fetchHistory(t, tc, workflowID).Events {
		if ev.GetWorkflowExecutionStartedEventAttributes() != nil {
			bt.started = ev.GetEventTime().AsTime()
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			types[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && types[a.GetScheduledEventId()] == "RunChunk" && bt.firstChunkStarted.IsZero() {
			bt.firstChunkStarted = ev.GetEventTime().AsTime()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && types[a.GetScheduledEventId()] == "RunChunk" {
			bt.lastChunkDone = ev.GetEventTime().AsTime()
		}
	}
	require.False(t, bt.started.IsZero() || bt.firstChunkStarted.IsZero() || bt.lastChunkDone.IsZero(), "%s has a start and a completed RunChunk", workflowID)
	return bt
}

// waitBatchFast polls every 250 ms (the CLI's progress bar polls every
// second). The figure's times come from the batch's created_at and
// completed_at, so the interval does not move them; polling every 20 ms, as
// this harness once did, cost dev 1.5 ms of CPU a GET (token and endpoint
// look-ups), about 7 % of a core taken from the batch being measured.
func waitBatchFast(t testing.TB, c *client, path string) resp {
	var r resp
	require.Eventually(t, func() bool {
		r = c.Do(http.MethodGet, path, nil)
		s := r.Str("status")
		return s == "succeeded" || s == "failed" || s == "canceled"
	}, 60*time.Minute, 250*time.Millisecond)
	return r
}

// endpointClient2 verifies endpoints with the CA of a dev process's data
// folder, keeping as many connections as the loop uses.
func endpointClient2(t testing.TB, data string) *http.Client {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(mustCA(t, data).RootPEM()))
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}}
}

// sidePNG is an SxS image that differs for every i.
func sidePNG(t testing.TB, i, side int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			v := uint8((x*37 + y*11 + i*53) % 256)
			img.Set(x, y, color.RGBA{v, uint8(i), 255 - v, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// cpuTimes is CPU seconds (user + system) spent so far by the dev process
// (its own threads and children other than endpoints), by the endpoints
// serving from data (algocloud-infer and everything under it: sandboxes,
// Python workers) and by this test process (the client loop's side).
//
// The endpoint's share is split by process too: its Go server
// (`algocloud-infer serve`), its Python workers, and the rest of its tree
// (the sandbox's helpers: bwrap, slirp4netns), to see which part of the
// endpoint a request costs more in.
type cpuTimes struct {
	dev, endpoint, agent, test float64
	serve, python, helpers     float64 // parts of endpoint
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.dev - o.dev, c.endpoint - o.endpoint, c.agent - o.agent, c.test - o.test,
		c.serve - o.serve, c.python - o.python, c.helpers - o.helpers}
}

// readCPU reads cpuTimes from /proc: the timing counters beside the
// throughput figure, to see which process the two cores went to.
func readCPU(t testing.TB, data string, devPID int) cpuTimes {
	type proc struct {
		ppid   int
		cpu    float64
		infer  bool
		agent  bool // the server's agent (it runs batch chunks): apart from the endpoint
		python bool
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		argv := strings.Split(string(cmd), "\x00")
		infer := filepath.Base(argv[0]) == "algocloud-infer" && strings.Contains(string(cmd), data)
		agent := infer && len(argv) > 1 && argv[1] == "agent"
		python := strings.HasPrefix(filepath.Base(argv[0]), "python")
		procs[pid] = proc{ppid: ppid, cpu: (ut + st) / 100, infer: infer, agent: agent, python: python} // USER_HZ is 100 on Linux
	}
	var c cpuTimes
	for pid, p := range procs {
		// Walk up: the first endpoint or the dev process decides.
		for cur, hops := pid, 0; cur > 1 && hops < 64; hops++ {
			q, ok := procs[cur]
			if !ok {
				break
			}
			if q.agent {
				c.agent += p.cpu
				break
			}
			if q.infer {
				c.endpoint += p.cpu
				switch {
				case cur == pid:
					c.serve += p.cpu
				case p.python:
					c.python += p.cpu
				default:
					c.helpers += p.cpu
				}
				break
			}
			if cur == devPID {
				c.dev += p.cpu
				break
			}
			cur = q.ppid
		}
	}
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	c.test = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return c
}

// saveProfile fetches a CPU profile of dev over the next d into path, in
// the background; wait for the returned channel before reading the file.
func saveProfile(t testing.TB, addr, path string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()+0.999))
		res, err := http.Get(url) //nolint:noctx // bounded by the profile's own length
		if err != nil {
			t.Logf("profile: %v", err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Logf("profile: %v", err)
		}
	}()
	return done
}

// pinCPUs models the endpoint and the platform on separate machines by CPU
// affinity (ALGOCLOUD_BENCH_BATCH_PIN=1): every thread of the endpoints
// serving from data (algocloud-infer and everything under it: sandboxes,
// Python workers) on core 0; every thread of the dev process and its other
// children, and of this test process (the loop's client, the batch's
// poller), on core 1. Children and threads started later inherit their
// parent's set, and the harness calls it again before each phase in case an
// endpoint process was replaced. It returns how many processes and threads
// went to each side. Other users' processes on the machine are not pinned and still run
// on both cores.
type pinCount struct{ procs, threads int }

func pinCPUs(t testing.TB, data string, devPID int) (endpoint, platform pinCount) {
	type proc struct {
		ppid  int
		infer bool
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		argv := strings.Split(string(cmd), "\x00")
		infer := filepath.Base(argv[0]) == "algocloud-infer" && strings.Contains(string(cmd), data)
		procs[pid] = proc{ppid: ppid, infer: infer}
	}
	var core0, core1 unix.CPUSet
	core0.Set(0)
	core1.Set(1)
	pin := func(c *pinCount, pid int, set *unix.CPUSet) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*", pid))
		c.procs++
		for _, task := range tasks {
			tid, _ := strconv.Atoi(filepath.Base(task))
			err := unix.SchedSetaffinity(tid, set)
			if errors.Is(err, unix.ESRCH) { // the thread ended meanwhile
				continue
			}
			require.NoError(t, err, "pin thread %d of process %d", tid, pid)
			c.threads++
		}
	}
	for pid := range procs {
		// Walk up: the first endpoint or the dev process decides.
		for cur, hops := pid, 0; cur > 1 && hops < 64; hops++ {
			q, ok := procs[cur]
			if !ok {
				break
			}
			if q.infer {
				pin(&endpoint, pid, &core0)
				break
			}
			if cur == devPID {
				pin(&platform, pid, &core1)
				break
			}
			cur = q.ppid
		}
	}
	pin(&platform, os.Getpid(), &core1)
	require.NotZero(t, endpoint.threads, "no endpoint process found to pin")
	return endpoint, platform
}

// socketPredicts counts the successful predicts the endpoints serving from
// data answered on their agent socket (inferapi.Config.AgentSocket): the
// request log's remote address of a Unix socket caller is "@", where a TCP
// caller's is 127.0.0.1:port.
func socketPredicts(t testing.TB, data string) int {
	revs, _ := filepath.Glob(filepath.Join(data, "servers", "*", "agent", "revisions", "*", "server.log"))
	n := 0
	for _, l := range revs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"path":"/predict"`) && strings.Contains(line, `"status":200`) && strings.Contains(line, `"remote":"@"`) {
				n++
			}
		}
	}
	return n
}

// socketPredictSpan is the time of the first and last successful predict
// the endpoints serving from data logged from their agent socket (see
// socketPredicts), and how many there were. A request's log line is
// written when its answer is, so first is when the first answer left.
func socketPredictSpan(t testing.TB, data string) (first, last time.Time, n int) {
	revs, _ := filepath.Glob(filepath.Join(data, "servers", "*", "agent", "revisions", "*", "server.log"))
	for _, l := range revs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `"path":"/predict"`) || !strings.Contains(line, `"status":200`) || !strings.Contains(line, `"remote":"@"`) {
				continue
			}
			var rec struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Time.IsZero() {
				continue
			}
			if n == 0 || rec.Time.Before(first) {
				first = rec.Time
			}
			if rec.Time.After(last) {
				last = rec.Time
			}
			n++
		}
	}
	return first, last, n
}
