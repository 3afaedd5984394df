package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/internal/sandbox"
)

// installedMarker is written into a venv once its requirements installed:
// a venv without it was left by an attempt that did not finish (the agent
// killed mid-pip), and is made again from nothing rather than trusted.
const installedMarker = ".algocloud-installed"

// install is KindInstall: the venv (system site packages) and the
// requirements, both in the payload's sandbox, pip's output streamed as
// progress. A failing pip is an OK result with Failed (the author's
// problem, not retried); an error is for what is not the author's.
func (a *agentRuntime) install(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
	var in commands.Install
	if err := decodePayload(cmd, &in); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(in.Venv) || filepath.Clean(in.Venv) != in.Venv || in.Venv == "/" {
		return nil, fmt.Errorf("install: venv %q is not a clean absolute path", in.Venv)
	}
	if within(in.Venv, a.dir) || within(a.dir, in.Venv) {
		return nil, fmt.Errorf("install: venv %s overlaps the agent's folder %s, which no sandbox may see", in.Venv, a.dir)
	}
	for _, l := range in.FindLinks {
		if filepath.IsAbs(l) && within(filepath.Clean(l), a.dir) { // a local folder is mounted for pip
			return nil, fmt.Errorf("install: find-links %s is inside the agent's folder", l)
		}
	}
	var box sandbox.Config
	if len(in.Sandbox) == 0 || string(in.Sandbox) == "null" {
		// Never pip unconfined by omission: the platform always names one.
		return nil, errors.New("install: the payload has no sandbox: refusing to run pip and build backends unconfined")
	}
	if err := json.Unmarshal(in.Sandbox, &box); err != nil {
		return nil, fmt.Errorf("install: sandbox: %w", err)
	}
	if box.StateDir == "" {
		box.StateDir = filepath.Dir(in.Venv)
	}
	if within(box.StateDir, a.dir) {
		return nil, fmt.Errorf("install: sandbox state_dir %s is inside the agent's folder", box.StateDir)
	}
	// A venv an earlier attempt left unfinished (killed mid-pip) is not
	// trusted: its packages may be half written. Start it over.
	if _, err := os.Stat(in.Venv); err == nil {
		if _, err := os.Stat(filepath.Join(in.Venv, installedMarker)); err != nil {
			progress("install: " + in.Venv + " was left unfinished by an earlier attempt: making it again")
			if err := os.RemoveAll(in.Venv); err != nil {
				return nil, fmt.Errorf("install: remove the unfinished venv: %w", err)
			}
		}
	}
	out, err := installVenv(ctx, venvInstall{
		Sandbox: box, SystemPython: a.systemPython, Venv: in.Venv, Requirements: in.Requirements,
		Pip: python.InstallOptions{IndexURL: in.IndexURL, FindLinks: in.FindLinks, NoIndex: in.NoIndex},
	}, func(line string) { progress(line) })
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	res := commands.InstallOutput{Python: out.Python, Output: out.Output, Failed: out.Failed, OOMKilled: out.OOMKilled}
	switch {
	case out.OOMKilled:
		res.Output = strings.TrimSpace(out.Output + "\npip (or a package's build) used more than " + out.Limits + " and was killed")
		progress("install: pip was killed: it used more than " + out.Limits)
	case out.Failed:
		progress(fmt.Sprintf("install: pip exited %d", out.ExitCode))
	default:
		if err := os.WriteFile(filepath.Join(in.Venv, installedMarker), []byte(strings.Join(in.Requirements, "\n")+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("install: mark the venv installed: %w", err)
		}
	}
	return json.Marshal(res)
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
