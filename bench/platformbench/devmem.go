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
	tport, err := boot.FreePort()
	if err != nil {
		m.Err = err
		return m
	}
	uiPort := 0
	if ui {
		if uiPort, err = boot.FreePort(); err != nil {
			m.Err = err
			return m
		}
	}
	logPath := filepath.Join(data, "dev.log")
	logf, err := os.Create(logPath)
	if err != nil {
		m.Err = err
		return m
	}
	defer logf.Close()
	cmd := exec.Command(bin, "dev", "--data", filepath.Join(data, ".algocloud"), "--addr", "127.0.0.1:0",
		"--temporal-port", strconv.Itoa(tport), "--ui-port", strconv.Itoa(uiPort),
		"--infer-bin", inferBin, "--log-level", "warn")
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		m.Err = err
		return m
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		m.Err = fmt.Errorf("start %s dev: %w", bin, err)
		return m
	}
	exited := make(chan error, 1)
	reaped := false
	apiURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, "stdout:", redactToken(line))
			if f := strings.Fields(line); len(f) == 4 && f[0] == "API" && f[1] == "and" && f[2] == "wizard" {
				apiURL <- f[3]
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		if !reaped { // still running after a failure: make sure it goes
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	var base string
	select {
	case base = <-apiURL:
	case err := <-exited:
		reaped = true
		m.Err = fmt.Errorf("algocloud dev exited before printing its API URL: %v (log %s)", err, logPath)
		return m
	case <-time.After(2 * time.Minute):
		m.Err = fmt.Errorf("algocloud dev printed no API URL in 2 min (log %s)", logPath)
		return m
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := hc.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(t0) > 2*time.Minute {
			m.Err = fmt.Errorf("algocloud dev's /healthz did not answer 200 in 2 min (log %s)", logPath)
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.StartToHealthy = time.Since(t0)
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		m.Err = ctx.Err()
		return m
	}
	pid := cmd.Process.Pid
	m.RSS, m.HWM = statusMB(pid, "VmRSS"), statusMB(pid, "VmHWM")
	m.PSS = rollupMB(pid, "Pss")
	for _, c := range descendants(pid) {
		m.Children++
		m.ChildrenRSS += statusMB(c, "VmRSS")
	}
	ts := time.Now()
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		reaped = true
		m.Shutdown = time.Since(ts)
		m.ExitCode = cmd.ProcessState.ExitCode()
		if err != nil {
			m.Err = fmt.Errorf("algocloud dev exited with %v after SIGINT (log %s)", err, logPath)
		}
	case <-time.After(30 * time.Second):
		m.Err = fmt.Errorf("algocloud dev still running 30 s after SIGINT (log %s)", logPath)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		reaped = true
	}
	if m.Err == nil {
		_ = os.RemoveAll(data)
	}
	return m
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
