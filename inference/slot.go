package inference

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// serveSlot is one worker slot: it boots a worker, then runs the batches the
// queue hands it until the batcher closes, replacing the worker whenever a
// batch loses it (crash, protocol error, timeout). A failed first boot makes
// the whole batcher init_failed; a failed restart is retried with backoff.
func (b *batcher) serveSlot(s workerSpec) {
	defer b.slots.Done()
	w, err := startWorker(b.ctx, s)
	if err != nil {
		b.bootFailed(s, err)
		return
	}
	if !b.adopt(w, true) {
		return
	}
	for {
		most := 1
		if w.predictBatch {
			most = b.opts.maxBatch
		}
		batch := b.next(most)
		if batch == nil {
			b.retire(w, 2*time.Second)
			return
		}
		if w.dead() { // died while idle: not this batch's fault
			b.requeue(batch)
			w = b.restart(w, "exited while idle", "exited")
		} else if why, reason := b.run(w, batch, most > 1); why != "" {
			w = b.restart(w, why, reason)
		}
		if w == nil {
			return
		}
	}
}

func (b *batcher) bootFailed(s workerSpec, err error) {
	if b.ctx.Err() != nil {
		return
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = apiErr(http.StatusServiceUnavailable, CodeInitFailed, "start worker %d: %v", s.idx, err)
	}
	b.log.Error("worker failed to start", "worker", s.idx, "code", ae.Code, "message", ae.Message, "traceback", ae.Traceback)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.initErr == nil {
		b.initErr = ae
		b.failQueued(ae)
	}
}

// adopt records a started worker as live; false (and the worker closed) when
// the batcher is closing already.
func (b *batcher) adopt(w *worker, first bool) bool {
	b.mu.Lock()
	closed := b.ctx.Err() != nil
	if !closed {
		b.live[w] = true
		if first {
			b.booted++
		}
	}
	b.mu.Unlock()
	if closed {
		w.close(time.Second)
	}
	return !closed
}

// retire stops w, giving it grace to exit on its own.
func (b *batcher) retire(w *worker, grace time.Duration) {
	b.mu.Lock()
	delete(b.live, w)
	b.mu.Unlock()
	w.close(grace)
}

// restart replaces w, retrying with backoff (0.5 s doubling to 30 s) while
// the start fails; nil once the batcher is closing. reason labels the
// worker_restarts metric.
func (b *batcher) restart(w *worker, why, reason string) *worker {
	b.log.Warn("replacing worker", "worker", w.spec.idx, "reason", why)
	b.m.restarts.WithLabelValues(reason).Inc()
	b.retire(w, 0)
	backoff := 500 * time.Millisecond
	for b.ctx.Err() == nil {
		nw, err := startWorker(b.ctx, w.spec)
		if err == nil {
			if !b.adopt(nw, false) {
				return nil
			}
			return nw
		}
		b.log.Error("worker restart failed", "worker", w.spec.idx, "error", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-b.ctx.Done():
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// run sends batch to w (to predict_batch when asBatch, even a batch of one)
// and answers each call as its reply arrives. The batch as a whole is bounded
// by the timeout: past it the worker is killed and the calls still unanswered
// get predict_timeout. It returns why w must be replaced ("" when it need
// not) and the metric's reason label.
func (b *batcher) run(w *worker, batch []*pending, asBatch bool) (why, reason string) {
	now := time.Now()
	b.m.batchSize.Observe(float64(len(batch)))
	calls := make([]call, len(batch))
	for i, p := range batch {
		calls[i] = p.c
		b.m.queueWait.Observe(now.Sub(p.enq).Seconds())
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(b.opts.timeout, func() {
		timedOut.Store(true)
		w.kill()
	})
	answered := 0
	oomBefore := w.spec.box.OOMKills()
	asBatch = asBatch && batch[0].c.Op == opPredict // test_input goes to testing_input_data
	err := w.roundTripBatch(calls, asBatch, func(i int, v Value, err error) {
		batch[i].done <- callResult{v, err}
		answered++
	})
	timer.Stop()
	if err == nil && !timedOut.Load() {
		return "", ""
	}
	var rest error
	switch {
	case timedOut.Load():
		why, reason = "call timed out after "+b.opts.timeout.String(), "timeout"
		rest = apiErr(http.StatusGatewayTimeout, CodePredictTimeout,
			"the call did not finish within %s: the worker was killed and is being restarted", b.opts.timeout)
	default:
		why, reason = err.Error(), "crashed"
		var lost *workerLostError
		if !errors.As(err, &lost) {
			lost = &workerLostError{err.Error()}
		}
		rest = &APIError{Status: http.StatusInternalServerError, Code: CodeWorkerCrashed,
			Message: lost.Error() + "; it is being restarted"}
		if w.spec.box.OOMKills() > oomBefore {
			// The kernel killed it for memory: say so, naming the limit.
			why, reason = "out of memory", "out_of_memory"
			rest = &APIError{Status: http.StatusUnprocessableEntity, Code: CodeOutOfMemory, Stage: stageOf(batch[0].c.Op),
				Message: fmt.Sprintf("%s used more than %s; the worker was killed and is being restarted",
					funcOf(batch[0].c.Op), w.spec.box.Config().Limits.Describe())}
		}
	}
	for _, p := range batch[answered:] {
		p.done <- callResult{err: rest}
	}
	return why, reason
}

// funcOf names the algorithm's function a call runs (Test Code's
// testing_input_data, else predict: Test Code then sends its value to
// /predict like any call).
func funcOf(op string) string {
	if op == opTestInput {
		return "testing_input_data"
	}
	return "predict"
}

// stageOf is the stage (as in APIError.Stage) a call's op runs in.
func stageOf(op string) string {
	if op == opTestInput {
		return StageTestInput
	}
	return StagePredict
}
