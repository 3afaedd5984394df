package platformbench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/bench/boot"
)

// devIdle is the idle footprint of the real `algocloud dev` binary.
type devIdle struct {
	UI             bool
	StartToHealthy time.Duration // exec .. first /healthz 200
	RSS            float64       // MB (VmRSS of the process after the idle wait)
	HWM            float64       // MB (VmHWM: the peak so far, start-up included)
	PSS            float64       // MB (smaps_rollup Pss)
	Children       int
	ChildrenRSS    float64       // MB
	Shutdown       time.Duration // SIGINT .. exit
	ExitCode       int
	Err            error
}

// measureDev runs `algocloud dev` on a fresh data folder and free ports,
// waits for its API, stays idle, reads its memory, then stops it with SIGINT
// and checks it exits 0 within 30 s.
func measureDev(ctx context.Context, bin, inferBin, tmp string, ui bool, idle time.Duration) (m devIdle) {
	m.UI, m.ExitCode = ui, -1
	data, err := os.MkdirTemp(tmp, "dev-*")
	if err != nil {
		m.Err = err
		return m
	}
	d, err := startDev(bin, inferBin, data, ui)
	if err != nil {
		m.Err = err
		return m
	}
	defer d.close()
	if m.StartToHealthy, m.Err = d.waitHealthy(); m.Err != nil {
		return m
	}
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		m.Err = ctx.Err()
		return m
	}
	m.readMemory(d.cmd.Process.Pid)
	m.Shutdown, m.ExitCode, m.Err = d.interrupt()
	if m.Err == nil {
		_ = os.RemoveAll(data)
	}
	return m
}

// devProcess is a running `algocloud dev` whose stdout a goroutine copies
// (token redacted) into its log, watching for the API's URL.
type devProcess struct {
	cmd     *exec.Cmd
	logf    *os.File
	logPath string
	t0      time.Time // just before exec
	apiURL  chan string
	exited  chan error
	reaped  bool // exited was received: the process is gone
}

// startDev starts `algocloud dev` on data with free Temporal (and, with ui,
// UI) ports, in its own process group.
func startDev(bin, inferBin, data string, ui bool) (*devProcess, error) {
	tport, err := boot.FreePort()
	if err != nil {
		return nil, err
	}
	uiPort := 0
	if ui {
		if uiPort, err = boot.FreePort(); err != nil {
			return nil, err
		}
	}
	d := &devProcess{logPath: filepath.Join(data, "dev.log"), apiURL: make(chan string, 1), exited: make(chan error, 1)}
	if d.logf, err = os.Create(d.logPath); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin, "dev", "--data", filepath.Join(data, ".algocloud"), "--addr", "127.0.0.1:0",
		"--temporal-port", strconv.Itoa(tport), "--ui-port", strconv.Itoa(uiPort),
		"--infer-bin", inferBin, "--log-level", "warn")
	d.cmd.Stderr = d.logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		d.logf.Close()
		return nil, err
	}
	d.t0 = time.Now()
	if err := d.cmd.Start(); err != nil {
		d.logf.Close()
		return nil, fmt.Errorf("start %s dev: %w", bin, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(d.logf, "stdout:", redactToken(line))
			if f := strings.Fields(line); len(f) == 4 && f[0] == "API" && f[1] == "and" && f[2] == "wizard" {
				d.apiURL <- f[3]
			}
		}
		d.exited <- d.cmd.Wait()
	}()
	return d, nil
}

// close kills the process group if the process still runs (after a
// failure) and closes the log.
func (d *devProcess) close() {
	if !d.reaped {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
	d.logf.Close()
}

// waitHealthy waits for the printed API URL, then polls its /healthz every
// 10 ms, and returns the time from exec to the first 200.
func (d *devProcess) waitHealthy() (time.Duration, error) {
	var base string
	select {
	case base = <-d.apiURL:
	case err := <-d.exited:
		d.reaped = true
		return 0, fmt.Errorf("algocloud dev exited before printing its API URL: %v (log %s)", err, d.logPath)
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("algocloud dev printed no API URL in 2 min (log %s)", d.logPath)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := hc.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(d.t0), nil
			}
		}
		if time.Since(d.t0) > 2*time.Minute {
			return 0, fmt.Errorf("algocloud dev's /healthz did not answer 200 in 2 min (log %s)", d.logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readMemory reads the process's and its descendants' memory from /proc.
func (m *devIdle) readMemory(pid int) {
	m.RSS, m.HWM = statusMB(pid, "VmRSS"), statusMB(pid, "VmHWM")
	m.PSS = rollupMB(pid, "Pss")
	for _, c := range descendants(pid) {
		m.Children++
		m.ChildrenRSS += statusMB(c, "VmRSS")
	}
}

// interrupt sends SIGINT and waits up to 30 s for the exit (then kills the
// group); it returns SIGINT..exit, the exit code (-1 when killed) and what
// went wrong.
func (d *devProcess) interrupt() (shutdown time.Duration, exitCode int, err error) {
	pid := d.cmd.Process.Pid
	ts := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case werr := <-d.exited:
		d.reaped = true
		shutdown, exitCode = time.Since(ts), d.cmd.ProcessState.ExitCode()
		if werr != nil {
			err = fmt.Errorf("algocloud dev exited with %v after SIGINT (log %s)", werr, d.logPath)
		}
		return shutdown, exitCode, err
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("algocloud dev still running 30 s after SIGINT (log %s)", d.logPath)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-d.exited
		d.reaped = true
		return 0, -1, err
	}
}

// redactToken keeps the printed API token out of the log.
func redactToken(line string) string {
	if i := strings.Index(line, "ac_"); i >= 0 {
		return line[:i] + "ac_<redacted>"
	}
	return line
}

// statusMB reads a "kB" field of /proc/pid/status in MB.
func statusMB(pid int, field string) float64 {
	return kbField(fmt.Sprintf("/proc/%d/status", pid), field)
}

// rollupMB reads a field of /proc/pid/smaps_rollup in MB.
func rollupMB(pid int, field string) float64 {
	return kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), field)
}

func kbField(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		return kb / 1024
	}
	return 0
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// processesMentioning counts processes (not this one) whose command line
// holds s: every inference server and Python worker of the bench's data
// folder names it (config path, venv interpreter).
func processesMentioning(s string) (n int, cmdlines []string) {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cl := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if strings.Contains(cl, s) {
			n++
			cmdlines = append(cmdlines, fmt.Sprintf("%d: %s", p, cl))
		}
	}
	return n, cmdlines
}

// waitNoProcesses waits up to limit for processesMentioning(s) to reach 0.
func waitNoProcesses(s string, limit time.Duration) (int, []string) {
	deadline := time.Now().Add(limit)
	for {
		n, cl := processesMentioning(s)
		if n == 0 || time.Now().After(deadline) {
			return n, cl
		}
		time.Sleep(100 * time.Millisecond)
	}
}
