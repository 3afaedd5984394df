package platformbench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// burst is N wizards run at once, then deleted at once.
type burst struct {
	N        int
	Wall     time.Duration // first configure sent .. last first answer
	Runs     []wizardRun
	Failures []wizardRun

	DeleteWall     time.Duration
	Deletes        []time.Duration
	DeleteFailures []string
	Leftover       int      // processes naming the data folder after the deletes
	LeftoverCmd    []string // their command lines
	PeakProcesses  int      // most processes naming the data folder at once
}

// runBurst starts n wizards at the same instant and waits for all of them.
func runBurst(ctx context.Context, w *wizard, n int, dataDir, prefix string) *burst {
	b := &burst{N: n}
	runs := make([]wizardRun, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	stopSampling := sampleProcesses(dataDir, &b.PeakProcesses)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			runs[i] = w.walk(ctx, fmt.Sprintf("%s-%03d", prefix, i))
		}()
	}
	t := time.Now()
	close(gate)
	wg.Wait()
	b.Wall = time.Since(t)
	stopSampling()
	b.Runs = runs
	for _, r := range runs {
		if r.Err != nil {
			b.Failures = append(b.Failures, r)
		}
	}
	return b
}

// deleteAll deletes every deployment the burst created, all at once, then
// checks that no process of the data folder is left.
func (b *burst) deleteAll(ctx context.Context, w *wizard, dataDir string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	t := time.Now()
	for _, r := range b.Runs {
		if r.ID == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := w.remove(ctx, r.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.DeleteFailures = append(b.DeleteFailures, r.APIName+": "+err.Error())
				return
			}
			b.Deletes = append(b.Deletes, d)
		}()
	}
	wg.Wait()
	b.DeleteWall = time.Since(t)
	b.Leftover, b.LeftoverCmd = waitNoProcesses(dataDir, 15*time.Second)
}

// sampleProcesses records the most processes naming dir seen at once, once
// a second, until the returned function is called.
func sampleProcesses(dir string, peak *int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if n, _ := processesMentioning(dir); n > *peak {
				*peak = n
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// stepStats collects one step's durations over runs.
func stepStats(runs []wizardRun, step string, inWF bool) []time.Duration {
	var out []time.Duration
	for _, r := range runs {
		if r.Err != nil {
			continue
		}
		m := r.API
		if inWF {
			m = r.InWF
		}
		if d, ok := m[step]; ok {
			out = append(out, d)
		}
	}
	return out
}

func totals(runs []wizardRun) (total, c2f []time.Duration) {
	for _, r := range runs {
		if r.Err == nil {
			total = append(total, r.Total)
			c2f = append(c2f, r.CompleteToFirst)
		}
	}
	return total, c2f
}
