package platformbench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pct is the nearest-rank p-th percentile (p in 0..100) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// fd formats a duration for the tables: ms below 10 s, s above.
func fd(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// ratio formats a/b as "×r (+a−b)".
func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "–"
	}
	diff := a - b
	sign := "+"
	if diff < 0 {
		sign, diff = "−", -diff
	}
	return fmt.Sprintf("×%.2f (%s%s)", float64(a)/float64(b), sign, fd(diff))
}

func goal(ok bool, what string) string {
	if ok {
		return what + ": met"
	}
	return what + ": **missed**"
}

// cpuSnap is CPU time spent so far: by this process, by its reaped children
// (endpoints, Python workers, git, venv: counted when they exit), and by the
// whole machine (/proc/stat, every process of every user).
type cpuSnap struct {
	at       time.Time
	self     time.Duration
	children time.Duration
	busy     time.Duration
	load1    float64
}

func snapCPU() cpuSnap {
	s := cpuSnap{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = tv(ru.Utime) + tv(ru.Stime)
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		s.children = tv(ru.Utime) + tv(ru.Stime)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		var total, idle int64
		for i, x := range f[1:] {
			v, _ := strconv.ParseInt(x, 10, 64)
			if i >= 8 { // guest time is already in user
				break
			}
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		s.busy = time.Duration(total-idle) * 10 * time.Millisecond // USER_HZ = 100
	}
	s.load1 = loadavg()
	return s
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// phaseCPU is what a phase cost.
type phaseCPU struct {
	Name               string
	Wall               time.Duration
	Self, Children     time.Duration
	Machine            time.Duration // every process on the machine
	LoadBefore, LoadAt float64
}

func since(name string, a cpuSnap) phaseCPU {
	b := snapCPU()
	return phaseCPU{
		Name: name, Wall: b.at.Sub(a.at), Self: b.self - a.self, Children: b.children - a.children,
		Machine: b.busy - a.busy, LoadBefore: a.load1, LoadAt: b.load1,
	}
}

// Others is CPU time of processes that are not this bench or its children
// (other engineers' work on the shared machine), as far as it can be told:
// children still running at the phase's end are not counted yet.
func (p phaseCPU) Others() time.Duration {
	return max(0, p.Machine-p.Self-p.Children)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memTotalGB() float64 {
	return kbField("/proc/meminfo", "MemTotal") / 1024
}
