package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// call is one unit of work for a worker.
type call struct {
	Op   string // opPredict or opTestInput
	Want Kind   // the wire kind the reply must have (the codec's choice)
	In   Value
	// Logs asks for the algorithm's output during the call (Value.Logs, or
	// the *APIError's logs when it failed). The ONNX dispatcher has none.
	Logs bool
}

type callResult struct {
	v   Value
	err error
}

// readiness is what /readyz reports.
type readiness struct {
	Ready bool
	Err   *APIError // init_failed once a worker's __init__ raised
}

// dispatcher hands calls to Python workers.
//
// Do may be called concurrently. It returns the reply, an *APIError (algorithm
// errors, timeouts, lost workers, overload: one wrapping ErrOverflow when the
// queue is full), or ctx's error when the caller gave up (a call a worker has
// already taken still completes or times out in the background; one still
// queued is dropped). Start is called once before Do; Close once, after the
// last Do returned.
type dispatcher interface {
	Start(ctx context.Context)
	Do(ctx context.Context, c call) (Value, error)
	Readiness() readiness
	Close(ctx context.Context) error
}

var _ dispatcher = (*batcher)(nil)

// ErrOverflow is what Do's *APIError wraps (errors.Is) when the queue of
// calls waiting for a worker holds Config.MaxQueueSize already: the server
// answers 429 overloaded with Retry-After instead of queueing without bound,
// as google-api-go-client's bundler does.
var ErrOverflow = errors.New("inference: the request queue is full")

// batchOptions are the batcher's knobs, from Config.
type batchOptions struct {
	timeout   time.Duration // bounds the wait in the queue, and separately one batch's run
	maxBatch  int
	delay     time.Duration
	preferred []int // sorted, largest first
	maxQueue  int
	// keyOf, when set, replaces batchKey: which calls may share a batch
	// (the ONNX dispatcher batches images of any size; preprocessing resizes).
	keyOf func(call) string
}

func batchOptionsOf(c Config) batchOptions {
	pref := slices.Clone(c.PreferredBatchSizes)
	slices.Sort(pref)
	slices.Reverse(pref)
	return batchOptions{timeout: time.Duration(c.Timeout), maxBatch: c.MaxBatchSize,
		delay: time.Duration(c.MaxQueueDelay), preferred: pref, maxQueue: c.MaxQueueSize}
}

// pending is one call in, or taken from, the batcher's queue.
type pending struct {
	c      call
	key    string // calls with equal keys may share a batch
	enq    time.Time
	queued bool            // guarded by batcher.mu
	done   chan callResult // buffered: a worker never waits for a caller that left
}

// batcher queues calls and hands them, in batches, to one goroutine per
// worker slot (see slot.go). A batch closes when it reaches MaxBatchSize or a
// preferred size, or when its oldest call has waited MaxQueueDelay; a batch
// holds calls of one op, wire kind and, for tensors, dtype and shape, so that
// predict_batch can stack them. A class without predict_batch gets batches of
// one. The queue holds at most MaxQueueSize calls.
type batcher struct {
	specs []workerSpec
	opts  batchOptions
	log   *slog.Logger
	m     *metrics

	ctx    context.Context // bounds boots and restarts; cancelled by Close
	cancel context.CancelFunc
	slots  sync.WaitGroup

	mu      sync.Mutex
	queue   []*pending    // oldest first
	changed chan struct{} // closed (and replaced) when the queue grows or closing starts
	closing bool
	initErr *APIError
	booted  int
	live    map[*worker]bool
}

func newBatcher(specs []workerSpec, opts batchOptions, log *slog.Logger, m *metrics) *batcher {
	return &batcher{specs: specs, opts: opts, log: log, m: m, changed: make(chan struct{}), live: map[*worker]bool{}}
}

// Start boots every worker slot in the background; Readiness tells when they are up.
func (b *batcher) Start(ctx context.Context) {
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, s := range b.specs {
		b.slots.Add(1)
		go b.serveSlot(s)
	}
}

// Readiness is ready once every worker booted; init_failed (sticky) once one failed to.
func (b *batcher) Readiness() readiness {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.initErr != nil {
		return readiness{Err: b.initErr}
	}
	return readiness{Ready: b.booted == len(b.specs)}
}

// Do queues c and waits for its result. The wait in the queue is bounded by
// the timeout (503 overloaded past it); once a worker took c, its batch is.
func (b *batcher) Do(ctx context.Context, c call) (Value, error) {
	p := &pending{c: c, done: make(chan callResult, 1)}
	switch {
	case b.opts.maxBatch > 1 && b.opts.keyOf != nil:
		p.key = b.opts.keyOf(c)
	case b.opts.maxBatch > 1:
		p.key = batchKey(c)
	}
	if err := b.enqueue(p); err != nil {
		return Value{}, err
	}
	timer := time.NewTimer(b.opts.timeout)
	defer timer.Stop()
	for {
		select {
		case r := <-p.done:
			return r.v, r.err
		case <-timer.C:
			if b.remove(p) {
				return Value{}, apiErr(http.StatusServiceUnavailable, CodeOverloaded,
					"no worker became free within %s; retry later", b.opts.timeout)
			}
			// A worker took it as the timer fired: its batch has its own timeout.
		case <-ctx.Done():
			b.remove(p) // still queued: nobody runs it; taken: the worker finishes it
			return Value{}, fmt.Errorf("call abandoned: %w", ctx.Err())
		}
	}
}

// batchKey is what calls that may share a batch have in common.
func batchKey(c call) string {
	if c.Op != opPredict {
		return "" // test_input calls always go alone
	}
	b := make([]byte, 0, 48)
	b = append(b, c.Want...)
	b = append(b, '/')
	b = append(b, c.In.Kind...)
	if c.In.Kind == KindTensor || c.In.Kind == KindImage { // an image's decoded shape: the same for both kinds
		b = append(b, '/')
		b = append(b, c.In.DType...)
		for _, d := range c.In.Shape {
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(d), 10)
		}
	}
	return string(b)
}

func (b *batcher) enqueue(p *pending) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.initErr != nil:
		return b.initErr
	case b.closing:
		return apiErr(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down")
	case len(b.queue) >= b.opts.maxQueue:
		return &APIError{Status: http.StatusTooManyRequests, Code: CodeOverloaded, cause: ErrOverflow,
			Message: fmt.Sprintf("%d requests are already waiting for a worker; retry later", len(b.queue))}
	}
	p.enq, p.queued = time.Now(), true
	b.queue = append(b.queue, p)
	b.queueChanged(true)
	return nil
}

// queueChanged updates the depth gauge and, when wake, wakes the waiting
// slots. Called with mu held.
func (b *batcher) queueChanged(wake bool) {
	b.m.queueDepth.Set(float64(len(b.queue)))
	if wake {
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

// remove takes p out of the queue; false when a worker already took it.
func (b *batcher) remove(p *pending) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !p.queued {
		return false
	}
	i := slices.Index(b.queue, p)
	b.queue = slices.Delete(b.queue, i, i+1)
	p.queued = false
	b.queueChanged(false)
	return true
}

// next blocks until a batch of at most most calls is due and returns it; nil
// once the batcher is closing and the queue is empty.
func (b *batcher) next(most int) []*pending {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		batch, wait := b.form(most, time.Now())
		changed, done := b.changed, b.closing && len(b.queue) == 0
		b.mu.Unlock()
		if batch != nil {
			return batch
		}
		if done {
			return nil
		}
		var due <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			due = timer.C
		}
		select {
		case <-changed:
		case <-due:
		}
	}
}

// form takes the next batch out of the queue, or says how long until the
// oldest call's delay runs out. The oldest call leads the batch; younger
// calls with the same key join it in arrival order. Called with mu held.
func (b *batcher) form(most int, now time.Time) ([]*pending, time.Duration) {
	if len(b.queue) == 0 {
		return nil, 0
	}
	head := b.queue[0]
	if most <= 1 || head.key == "" {
		b.queue[0] = nil
		b.queue = b.queue[1:]
		head.queued = false
		b.queueChanged(false)
		return []*pending{head}, 0
	}
	n := 1
	for _, p := range b.queue[1:] {
		if n == most {
			break
		}
		if p.key == head.key {
			n++
		}
	}
	size := 0
	switch {
	case n == most:
		size = n
	case b.closing || now.Sub(head.enq) >= b.opts.delay:
		size = n
	default:
		for _, p := range b.opts.preferred { // largest first
			if p <= n {
				size = p
				break
			}
		}
	}
	if size == 0 {
		return nil, head.enq.Add(b.opts.delay).Sub(now)
	}
	batch := make([]*pending, 0, size)
	keep := b.queue[:0]
	for _, p := range b.queue {
		if len(batch) < size && p.key == head.key {
			p.queued = false
			batch = append(batch, p)
			continue
		}
		keep = append(keep, p)
	}
	clear(b.queue[len(keep):])
	b.queue = keep
	b.queueChanged(false)
	return batch, 0
}

// requeue puts a batch a worker could not run back at the front of the queue.
func (b *batcher) requeue(batch []*pending) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range batch {
		p.queued = true
	}
	b.queue = append(batch[:len(batch):len(batch)], b.queue...)
	b.queueChanged(true)
}

// failQueued answers every queued call with err. Called with mu held.
func (b *batcher) failQueued(err error) {
	for _, p := range b.queue {
		p.queued = false
		p.done <- callResult{err: err}
	}
	clear(b.queue)
	b.queue = b.queue[:0]
	b.queueChanged(false)
}

// Close refuses new calls, lets the workers finish what is queued and running
// until ctx ends (then kills them), and stops every worker by closing its
// request pipe.
func (b *batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	b.queueChanged(true)
	b.mu.Unlock()
	b.cancel() // stops boots and restarts; slots drain the queue with the workers they hold
	done := make(chan struct{})
	go func() { b.slots.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("stop workers: %w", ctx.Err())
		b.mu.Lock()
		for w := range b.live {
			w.kill()
		}
		b.mu.Unlock()
		<-done
	}
	b.mu.Lock()
	b.failQueued(apiErr(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down"))
	b.mu.Unlock()
	return err
}
