package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agent/revisions"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// serve is KindServe: it writes the revision's config (revisions/<revision>/
// config.json in the agent's folder) and its token file, then starts the
// revision when nothing serves, swaps it in when another serves, and does
// nothing more when it already serves (a token rotation alone: the serving
// server follows its token file). A revision that fails to start is an OK
// result with Failed: the one serving before still serves.
func (a *agentRuntime) serve(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
	var in commands.Serve
	if err := decodePayload(cmd, &in); err != nil {
		return nil, err
	}
	if err := checkRevision(in.Revision); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if b, err := hex.DecodeString(in.TokenSHA256); err != nil || len(b) != 32 {
		return nil, errors.New("serve: token_sha256 must be 64 hex digits (the SHA-256 of the endpoint's token)")
	}
	var cfg inferapi.Config
	err := json.Unmarshal(in.Config, &cfg)
	if err != nil {
		return nil, fmt.Errorf("serve: config: %w", err)
	}
	if cfg.Sandbox == nil {
		return nil, errors.New("serve: the config has no sandbox: refusing to run author code unconfined")
	}
	if cfg.Sandbox.StateDir != "" && within(cfg.Sandbox.StateDir, a.dir) {
		return nil, fmt.Errorf("serve: sandbox state_dir %s is inside the agent's folder", cfg.Sandbox.StateDir)
	}
	folder := filepath.Join(a.dir, "revisions", in.Revision)
	if cfg.TokenFile == "" {
		cfg.TokenFile = filepath.Join(folder, "token.sha256")
	}
	cfg.TokenSHA256 = "" // the file is the one source: a rotation rewrites it
	if cfg.RunDir == "" {
		cfg.RunDir = filepath.Join(a.runRoot, in.Revision)
	}
	if within(cfg.RunDir, a.dir) {
		return nil, fmt.Errorf("serve: run_dir %s is inside the agent's folder", cfg.RunDir)
	}
	// The agent's own token, for its batch chunks (agent_batch.go).
	if cfg.AgentTokenSHA256, err = a.agentTokenSHA256(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	// And the Unix socket the chunks call it on (agent_batch.go), in the
	// agent's folder; "" when the path would be too long for a socket.
	if cfg.AgentSocket, err = a.revisionSocket(in.Revision); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := writeFileAtomic(cfg.TokenFile, []byte(in.TokenSHA256+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("serve: write the token file: %w", err)
	}
	st := a.sup.Status()
	if st.Serving != nil && st.Serving.ID == in.Revision {
		progress("serve: revision " + in.Revision + " serves already (token file written)")
		return json.Marshal(serveOutput(a.sup.Status()))
	}
	if err := mkdirRun(cfg.RunDir); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	cfgPath := filepath.Join(folder, "config.json")
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cfgPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("serve: write config: %w", err)
	}
	rev := revisions.Revision{ID: in.Revision, Config: cfgPath}
	if st.Serving == nil {
		progress("serve: starting revision " + in.Revision)
		err = a.sup.Start(ctx, rev)
	} else {
		progress(fmt.Sprintf("serve: starting revision %s beside %s, then moving traffic to it", in.Revision, st.Serving.ID))
		err = a.sup.Swap(ctx, rev)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // not an answer: the command runs again
	}
	out := serveOutput(a.sup.Status())
	if err != nil {
		if errors.Is(err, revisions.ErrServing) || errors.Is(err, revisions.ErrNotServing) {
			// Something started or stopped meanwhile (another command):
			// not this revision's fault; the platform retries.
			return nil, fmt.Errorf("serve: %w", err)
		}
		out.Failed, out.Error, out.Traceback = true, err.Error(), tracebackIn(err.Error())
		progress("serve: revision " + in.Revision + " did not start; " + servingLine(out))
		return json.Marshal(out)
	}
	progress("serve: revision " + in.Revision + " serves")
	return json.Marshal(out)
}

// stop is KindStop: the serving revision drains and stops, as do those
// still draining.
func (a *agentRuntime) stop(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
	st := a.sup.Status()
	if st.Serving != nil {
		progress("stop: draining revision " + st.Serving.ID)
	}
	if err := a.sup.Stop(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("stop: %w", err)
	}
	progress("stop: no revision serves")
	return json.Marshal(serveOutput(a.sup.Status()))
}

// status is KindStatus: what serves, starts and drains.
func (a *agentRuntime) status(_ context.Context, _ protocol.Command, _ func(...string)) (json.RawMessage, error) {
	return json.Marshal(serveOutput(a.sup.Status()))
}

// serveOutput is the supervisor's status as the contract's output.
func serveOutput(st revisions.Status) commands.ServeOutput {
	var out commands.ServeOutput
	if st.Serving != nil {
		out.Serving, out.Since = st.Serving.ID, st.Serving.Since
	}
	if st.Starting != nil {
		out.Starting = st.Starting.ID
	}
	for _, d := range st.Draining {
		out.Draining = append(out.Draining, d.ID)
	}
	return out
}

func servingLine(out commands.ServeOutput) string {
	if out.Serving == "" {
		return "no revision serves"
	}
	return "revision " + out.Serving + " still serves"
}
