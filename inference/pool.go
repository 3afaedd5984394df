package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// call is one unit of work for a worker.
type call struct {
	Op   string // opPredict or opTestInput
	Want Kind   // the wire kind the reply must have (the codec's choice)
	In   Value
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

// dispatcher hands calls to Python workers. The pool is the simple one (a call
// per idle worker); a dynamic batcher will implement the same interface.
//
// Do may be called concurrently. It returns the reply, an *APIError (algorithm
// errors, timeouts, lost workers, overload), or ctx's error when the caller
// gave up (the call itself still completes or times out in the background).
// Start is called once before Do; Close once, after the last Do returned.
type dispatcher interface {
	Start(ctx context.Context)
	Do(ctx context.Context, c call) (Value, error)
	Readiness() readiness
	Close(ctx context.Context) error
}

var _ dispatcher = (*pool)(nil)

// maxQueuedPerWorker bounds the calls waiting for a worker: past it the server
// answers 503 overloaded rather than queueing without limit.
const maxQueuedPerWorker = 16

// pool runs each call on an idle worker and replaces workers that die or time
// out. Threads workers boot in parallel at Start.
type pool struct {
	specs   []workerSpec
	timeout time.Duration
	log     *slog.Logger

	idle    chan *worker
	queued  atomic.Int64
	booted  atomic.Int64
	closing chan struct{}
	bg      sync.WaitGroup // boots and restarts in flight, background call tails

	mu      sync.Mutex
	initErr *APIError
	live    map[*worker]bool
	ctx     context.Context // bounds boots and restarts; cancelled by Close
	cancel  context.CancelFunc
}

func newPool(specs []workerSpec, timeout time.Duration, log *slog.Logger) *pool {
	return &pool{specs: specs, timeout: timeout, log: log, idle: make(chan *worker, len(specs)),
		closing: make(chan struct{}), live: map[*worker]bool{}}
}

// Start boots every worker in the background; Readiness tells when they are up.
func (p *pool) Start(ctx context.Context) {
	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, s := range p.specs {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			w, err := startWorker(p.ctx, s)
			if err != nil {
				p.bootFailed(s, err)
				return
			}
			p.booted.Add(1)
			p.add(w)
		}()
	}
}

func (p *pool) bootFailed(s workerSpec, err error) {
	if p.ctx.Err() != nil {
		return
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = apiErr(http.StatusServiceUnavailable, CodeInitFailed, "start worker %d: %v", s.idx, err)
	}
	p.log.Error("worker failed to start", "worker", s.idx, "code", ae.Code, "message", ae.Message, "traceback", ae.Traceback)
	p.mu.Lock()
	if p.initErr == nil {
		p.initErr = ae
	}
	p.mu.Unlock()
}

// Readiness is ready once every worker booted; init_failed (sticky) once one failed to.
func (p *pool) Readiness() readiness {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.initErr != nil {
		return readiness{Err: p.initErr}
	}
	return readiness{Ready: p.booted.Load() == int64(len(p.specs))}
}

func (p *pool) add(w *worker) {
	p.mu.Lock()
	closed := p.ctx.Err() != nil
	if !closed {
		p.live[w] = true
	}
	p.mu.Unlock()
	if closed {
		w.close(time.Second)
		return
	}
	p.idle <- w // never blocks: at most len(specs) workers exist
}

// Do runs c on the next idle worker, bounded by the pool's timeout.
func (p *pool) Do(ctx context.Context, c call) (Value, error) {
	if r := p.Readiness(); r.Err != nil {
		return Value{}, r.Err
	}
	w, err := p.acquire(ctx)
	if err != nil {
		return Value{}, err
	}
	done := make(chan callResult, 1)
	go func() {
		v, err := w.roundTrip(c.Op, c.Want, c.In)
		done <- callResult{v, err}
	}()
	timer := time.NewTimer(p.timeout)
	select {
	case r := <-done:
		timer.Stop()
		return r.v, p.release(w, r.err)
	case <-timer.C:
		p.timedOut(w, done)
		return Value{}, apiErr(http.StatusGatewayTimeout, CodePredictTimeout,
			"the call did not finish within %s: the worker was killed and is being restarted", p.timeout)
	case <-ctx.Done():
		// The caller left; the worker finishes (or times out) before serving anyone else.
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			select {
			case r := <-done:
				timer.Stop()
				_ = p.release(w, r.err)
			case <-timer.C:
				p.timedOut(w, done)
			}
		}()
		return Value{}, fmt.Errorf("call abandoned: %w", ctx.Err())
	}
}

// acquire waits for an idle worker, at most the pool's timeout.
func (p *pool) acquire(ctx context.Context) (*worker, error) {
	if p.queued.Add(1) > int64(maxQueuedPerWorker*len(p.specs)) {
		p.queued.Add(-1)
		return nil, apiErr(http.StatusServiceUnavailable, CodeOverloaded, "too many requests are waiting for a worker; retry later")
	}
	defer p.queued.Add(-1)
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for {
		select {
		case w := <-p.idle:
			if w.dead() { // died while idle: not this call's fault
				p.replace(w, "exited while idle")
				continue
			}
			return w, nil
		case <-timer.C:
			if r := p.Readiness(); r.Err != nil {
				return nil, r.Err
			}
			return nil, apiErr(http.StatusServiceUnavailable, CodeOverloaded, "no worker became free within %s; retry later", p.timeout)
		case <-p.closing:
			return nil, apiErr(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down")
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a worker: %w", ctx.Err())
		}
	}
}

// release returns w to the idle set, or replaces it when the call lost it.
func (p *pool) release(w *worker, err error) error {
	var lost *workerLostError
	if errors.As(err, &lost) {
		p.replace(w, lost.Error())
		return &APIError{Status: http.StatusInternalServerError, Code: CodeWorkerCrashed,
			Message: lost.Error() + "; it is being restarted"}
	}
	p.idle <- w
	return err
}

// timedOut kills w, waits for its call to unblock and replaces it.
func (p *pool) timedOut(w *worker, done <-chan callResult) {
	w.kill()
	<-done
	p.replace(w, "call timed out after "+p.timeout.String())
}

// replace retires w and starts a new worker in its slot, retrying with backoff
// while the restart fails (a restart's __init__ error is logged, not sticky).
func (p *pool) replace(w *worker, why string) {
	p.log.Warn("replacing worker", "worker", w.spec.idx, "reason", why)
	p.mu.Lock()
	delete(p.live, w)
	p.mu.Unlock()
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		w.close(0)
		backoff := 500 * time.Millisecond
		for p.ctx.Err() == nil {
			nw, err := startWorker(p.ctx, w.spec)
			if err == nil {
				p.add(nw)
				return
			}
			p.log.Error("worker restart failed", "worker", w.spec.idx, "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
}

// Close stops new calls, lets calls the pool still runs finish until ctx ends,
// and stops every worker (closing its request pipe, then killing it).
func (p *pool) Close(ctx context.Context) error {
	close(p.closing)
	p.cancel()
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("stop workers: %w", ctx.Err())
	}
	p.mu.Lock()
	live := p.live
	p.live = map[*worker]bool{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for w := range live {
		wg.Add(1)
		go func() { defer wg.Done(); w.close(2 * time.Second) }()
	}
	wg.Wait()
	return err
}
