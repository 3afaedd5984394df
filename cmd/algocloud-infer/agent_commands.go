package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agent/revisions"
)

// The agent's command handlers (agent/commands' kinds), registered next to
// agent.info when the agent runs both the command channel and the revisions
// supervisor (--platform and --listen): install (agent_install.go), test
// (agent_test_cmd.go), serve, stop and status (agent_serve.go). Every one
// that runs author code runs it through internal/sandbox, as the inference
// server and pip's install always do; the agent's folder (credential, link
// state, control socket, configs) is never mounted into a sandbox: the
// runners and sandbox /etc files go to runRoot, beside it.

// agentHandlers are the link handlers of this binary: agent.info always, and
// the author-code kinds when sup runs (nil: the agent has no endpoint, so
// they answer an error saying so).
func agentHandlers(server string, a *agentRuntime) map[string]link.Handler {
	h := map[string]link.Handler{KindInfo: link.HandlerFunc(infoHandler(server))}
	kinds := []string{commands.KindInstall, commands.KindTest, commands.KindServe, commands.KindStop, commands.KindStatus, commands.KindBatch}
	if a == nil {
		for _, k := range kinds {
			h[k] = link.HandlerFunc(func(context.Context, protocol.Command, func(...string)) (json.RawMessage, error) {
				return nil, fmt.Errorf("this agent runs without --listen (no endpoint, no revisions): it answers %s only and cannot run %q", KindInfo, k)
			})
		}
		return h
	}
	h[commands.KindInstall] = a.prepared(a.install)
	h[commands.KindTest] = a.prepared(a.test)
	h[commands.KindServe] = a.prepared(a.serve)
	h[commands.KindStop] = link.HandlerFunc(a.stop)
	h[commands.KindStatus] = link.HandlerFunc(a.status)
	h[commands.KindBatch] = link.HandlerFunc(a.batch) // agent_batch.go
	return h
}

// agentRuntime is what the author-code handlers share.
type agentRuntime struct {
	// dir is the agent's folder (never mounted into a sandbox).
	dir string
	// runRoot is where the servers' runners and sandbox /etc files go: the
	// server folder's run/, beside the agent's folder, so that no file of
	// the agent's folder is bound into a sandbox.
	runRoot string
	// exe is the inference server (this binary).
	exe string
	// systemPython makes the venvs.
	systemPython string
	sup          *revisions.Supervisor
	// remote is set on a remote server (agent_fetch.go): the payloads'
	// home placeholder and sealed objects to fetch.
	remote *remote

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per test revision (lock)
}

// lock serialises the commands working on one key (a test's folder).
func (a *agentRuntime) lock(key string) (unlock func()) {
	a.mu.Lock()
	if a.locks == nil {
		a.locks = map[string]*sync.Mutex{}
	}
	m, ok := a.locks[key]
	if !ok {
		m = &sync.Mutex{}
		a.locks[key] = m
	}
	a.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// newAgentRuntime makes the handlers' runtime for the agent folder dir and
// kills what test servers a killed agent left (their pid files).
func newAgentRuntime(dir string, sup *revisions.Supervisor) (*agentRuntime, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("agent: find this executable: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	a := &agentRuntime{dir: abs, runRoot: filepath.Join(filepath.Dir(abs), "run"), exe: exe, systemPython: "/usr/bin/python3", sup: sup}
	a.reapTests()
	return a, nil
}

var revisionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkRevision reports what is wrong with a payload's revision name.
func checkRevision(rev string) error {
	if !revisionRe.MatchString(rev) {
		return fmt.Errorf("revision %q: 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter or digit)", rev)
	}
	return nil
}

// decodePayload reads a command's payload into v, refusing unknown fields
// (a newer platform's payload this agent would misread).
func decodePayload(cmd protocol.Command, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(cmd.Payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s payload: %w", cmd.Kind, err)
	}
	return nil
}

// writeFileAtomic writes b to path (mode perm) through a temporary file and
// a rename, so a killed agent never leaves half a config.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return err
}

// tracebackMarker starts every Python traceback.
const tracebackMarker = "Traceback (most recent call last)"

// tracebackIn finds a Python traceback in text: a server's log tail, whose
// lines are JSON (the traceback inside a string field) or plain.
func tracebackIn(text string) string {
	for _, line := range strings.Split(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		for _, v := range m {
			if s, ok := v.(string); ok {
				if i := strings.Index(s, tracebackMarker); i >= 0 {
					return s[i:]
				}
			}
		}
	}
	if i := strings.Index(text, tracebackMarker); i >= 0 {
		return text[i:]
	}
	return ""
}

// mkdirRun makes a server's run folder: the runner is written there and
// read by the sandboxed workers, so it is world-readable, and it is outside
// the agent's folder.
func mkdirRun(dir string) error {
	return os.MkdirAll(dir, 0o755)
}
