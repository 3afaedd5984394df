package inferbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is one closed-loop run: conc clients each sending the next
// request as soon as the last one answered.
type loadResult struct {
	conc     int
	ok       int
	statuses map[int]int // non-200 answers and transport errors (status 0)
	lat      []time.Duration
	elapsed  time.Duration
	respLen  int
	last     []byte // one 200 body, to check pixels
}

func (r loadResult) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// pct is the p-th percentile latency (nearest rank), in milliseconds.
func (r loadResult) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.lat))+0.5) - 1
	return float64(r.lat[max(0, min(i, len(r.lat)-1))].Microseconds()) / 1000
}

func (r loadResult) errors() string {
	if len(r.statuses) == 0 {
		return ""
	}
	var parts []string
	for s, n := range r.statuses {
		parts = append(parts, fmt.Sprintf("%d×%d", n, s))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// target is a server under load.
type target struct {
	name, url, token string
	contentType      string // of the request body; image/png when empty
}

// runLoad warms up for warm, then measures for dur: the requests answered
// within the window count, whenever they were sent.
func runLoad(ctx context.Context, t target, body []byte, conc int, warm, dur time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	start := time.Now()
	measureFrom, stop := start.Add(warm), start.Add(warm+dur)
	res := loadResult{conc: conc, statuses: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(stop) {
					return
				}
				status, out := post(ctx, client, t, body)
				end := time.Now()
				if end.Before(measureFrom) || end.After(stop) {
					continue // answered during the warm-up, or after the window closed
				}
				took := end.Sub(t0)
				mu.Lock()
				if status == http.StatusOK {
					res.ok++
					res.lat = append(res.lat, took)
					res.respLen, res.last = len(out), out
				} else {
					res.statuses[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = dur
	slices.Sort(res.lat)
	return res
}

func post(ctx context.Context, client *http.Client, t target, body []byte) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	ct := t.contentType
	if ct == "" {
		ct = "image/png"
	}
	req.Header.Set("Content-Type", ct)
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, out
}

// rssSampler records the peak resident memory of one process while it runs.
type rssSampler struct {
	peak int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if kb := procStatusKB(pid, "VmRSS:"); kb > s.peak {
				s.peak = kb
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the peak RSS in MiB.
func (s *rssSampler) Stop() float64 {
	close(s.stop)
	<-s.done
	return float64(s.peak) / 1024
}

// procStatusKB reads a "kB" field of /proc/PID/status (0 when unreadable).
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuSeconds is the user+system CPU time of pid and, when withChildren, of
// its live child processes (the Python workers).
func cpuSeconds(pid int, withChildren bool) (self, children float64) {
	self = procCPU(pid)
	if !withChildren {
		return self, 0
	}
	// Each thread lists the children it forked; Go forks from any thread.
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				children += procCPU(c)
			}
		}
	}
	return self, children
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machineBusy is the CPU seconds all cores spent busy since boot (/proc/stat:
// everything but idle and iowait).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}
