// Package loadgen is a closed-loop load client: each of n clients sends a
// request, waits for its answer and sends the next, until stopped. It keeps
// every request (its start, how long it took, what answered it, its error),
// so callers count failures and take percentiles of the latencies.
//
// It imports the standard library only: the agent's tests (agent/revisions,
// which must link no platform package), the agent hub's tests and the swap
// benchmark (bench/swapbench) share it.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Request makes one request for client (0 ≤ client < Options.Clients) and
// says what answered it (free-form: e.g. which revision served it). ctx is
// done once the load stops.
type Request func(ctx context.Context, client int) (string, error)

// Options are a load's settings.
type Options struct {
	// Clients is how many clients send requests concurrently.
	Clients int
	// Backoff is how long a client waits after a failed request before
	// sending its next one (0: it sends it at once).
	Backoff time.Duration
	// DropCancelled drops a request that ends once the load's context is
	// done: its failure is most likely the cancellation's. Without it such
	// a request is kept like any other.
	DropCancelled bool
}

// Sample is one request.
type Sample struct {
	Client int
	Start  time.Time
	Took   time.Duration
	Who    string // what Request said answered it; "" when it failed
	Err    string // "" when it succeeded
}

// Load is clients sending requests back to back.
type Load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ok      atomic.Int64
	mu      sync.Mutex
	samples []Sample
	last    []string
}

// Start starts o.Clients clients, each calling req back to back until ctx
// is done or Stop is called.
func Start(ctx context.Context, o Options, req Request) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cancel: cancel, last: make([]string, o.Clients)}
	for i := 0; i < o.Clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				who, err := req(ctx, i)
				s := Sample{Client: i, Start: start, Took: time.Since(start), Who: who}
				if o.DropCancelled && ctx.Err() != nil {
					return
				}
				if err != nil {
					s.Who, s.Err = "", err.Error()
				}
				l.mu.Lock()
				l.samples = append(l.samples, s)
				if err == nil {
					l.ok.Add(1)
					l.last[i] = who
				}
				l.mu.Unlock()
				if err != nil && o.Backoff > 0 {
					time.Sleep(o.Backoff)
				}
			}
		}()
	}
	return l
}

// Stop stops the clients and waits for them to end. It may be called more
// than once.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}

// Wait waits for the clients to end (once Start's ctx is done) without
// stopping them.
func (l *Load) Wait() {
	l.wg.Wait()
}

// OK is how many requests have succeeded so far.
func (l *Load) OK() int64 {
	return l.ok.Load()
}

// Samples returns a copy of the requests so far, in the order they ended.
func (l *Load) Samples() []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sample(nil), l.samples...)
}

// Failures lists the errors of the failed requests so far.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var fails []string
	for _, s := range l.samples {
		if s.Err != "" {
			fails = append(fails, s.Err)
		}
	}
	return fails
}

// Answers counts the successful requests so far by what answered them.
func (l *Load) Answers() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, s := range l.samples {
		if s.Err == "" {
			n[s.Who]++
		}
	}
	return n
}

// Last is what answered each client's last successful request ("" for a
// client with none yet), indexed by client.
func (l *Load) Last() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.last...)
}

// P99 is the 99th percentile of d (0 when d is empty). It sorts d in
// place.
func P99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, len(d)*99/100)]
}

// PredictPNG posts img (a PNG) to url with token as its bearer token and
// says which of two revisions answered by the answer's centre pixel: "old"
// when it is bright (the disc's centre is white), "new" when it is dark
// (the new revision inverts its mask). An answer other than 200 is an
// error quoting up to 100 bytes of its body.
func PredictPNG(ctx context.Context, c *http.Client, url, token string, img []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(img))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "image/png")
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d: %.100s", res.StatusCode, body)
	}
	m, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	b := m.Bounds()
	if color.GrayModel.Convert(m.At(b.Dx()/2, b.Dy()/2)).(color.Gray).Y > 127 {
		return "old", nil
	}
	return "new", nil
}
