package local

import (
	"context"
	"errors"
	"time"
)

// adopt makes p supervise the live process rec names, unless it already does.
func (p *Provider) adopt(rec *record) {
	k := key(rec.Spec.Server.ID, rec.Spec.Name)
	p.mu.Lock()
	if s := p.services[k]; s != nil && !s.isHalted() {
		if pr := s.current(); pr != nil && pr.pid == rec.PID {
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	p.forget(k)
	s := p.newService(rec.Spec, rec.Address)
	s.cur = watch(rec.PID, rec.Spec.ConfigFile)
	s.restarts = rec.Restarts
	p.supervise(s)
	p.log.Info("re-attached to service", "server", s.serverID, "service", s.name, "pid", rec.PID)
}

// forget stops supervising a service (without touching its process).
func (p *Provider) forget(k string) *service {
	p.mu.Lock()
	s := p.services[k]
	delete(p.services, k)
	p.mu.Unlock()
	if s != nil {
		s.halt()
	}
	return s
}

// supervise registers s and starts its supervisor goroutine.
func (p *Provider) supervise(s *service) {
	p.mu.Lock()
	p.services[key(s.serverID, s.name)] = s
	p.mu.Unlock()
	go p.superviseLoop(s)
}

// stableRun is how long a process must have run for its exit to count as a
// fresh failure rather than part of a crash loop (backoff resets).
const stableRun = time.Minute

func (p *Provider) superviseLoop(s *service) {
	defer close(s.done)
	failures := 0
	for {
		pr := s.current()
		select {
		case <-pr.exited:
		case <-s.halted:
			return
		}
		if s.isHalted() {
			return
		}
		p.log.Warn("service exited", "server", s.serverID, "service", s.name, "pid", pr.pid, "status", pr.status)
		if !s.spec.Restart {
			return
		}
		if time.Since(pr.started) > stableRun {
			failures = 0
		}
		delay := min(p.opts.MinBackoff<<min(failures, 20), p.opts.MaxBackoff)
		failures++
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.halted:
			t.Stop()
			return
		}
		if !p.restart(s, pr) {
			return
		}
	}
}

// restart starts s again after old exited, unless the service was stopped or
// someone else (another Provider) already restarted it. It reports whether
// supervision goes on.
func (p *Provider) restart(s *service, old *proc) bool {
	unlock, err := p.lockService(s.serverID, s.name)
	if err != nil {
		p.log.Warn("cannot restart service", "server", s.serverID, "service", s.name, "err", err)
		return false
	}
	defer unlock()
	if s.isHalted() {
		return false
	}
	rec, err := p.readRecord(s.serverID, s.name)
	if err != nil || rec == nil {
		return false // stopped (record removed), perhaps by another Provider
	}
	if rec.PID != old.pid && isOurs(rec.PID, rec.Spec.ConfigFile) {
		s.mu.Lock()
		s.cur = watch(rec.PID, rec.Spec.ConfigFile)
		s.mu.Unlock()
		return true
	}
	pr, err := p.spawn(s)
	if err != nil {
		p.log.Error("restart failed", "server", s.serverID, "service", s.name, "err", err)
		if errors.Is(err, errClosed) {
			return false
		}
		pr = &proc{pid: 0, started: time.Now(), exited: make(chan struct{}), status: err.Error()}
		close(pr.exited) // the loop backs off and tries again
	} else if s.isHalted() { // Stop or Close came while it started
		_ = p.terminate(context.Background(), pr)
		return false
	}
	s.mu.Lock()
	s.cur = pr
	s.restarts++
	rec.Restarts = s.restarts
	s.mu.Unlock()
	rec.PID = pr.pid
	rec.StartedAt = time.Now().UTC()
	if err := writeJSON(p.recordPath(s.serverID, s.name), rec); err != nil {
		p.log.Error("write pid file", "server", s.serverID, "service", s.name, "err", err)
	}
	p.log.Info("service restarted", "server", s.serverID, "service", s.name, "pid", pr.pid, "restarts", rec.Restarts)
	return true
}
