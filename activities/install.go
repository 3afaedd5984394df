package activities

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// InstallRequirements makes the server's venv (system site packages: Debian's
// numpy and Pillow) and pip-installs the spec's and aai_pip-requirements.txt's
// requirements. pip's output streams into the event log as it runs. An
// environment onnx deployment without requirements needs no venv (its server
// runs no Python) and installs nothing; with requirements it gets the venv
// and pip as Python does (docs/onnx.md).
func (a *Activities) InstallRequirements(ctx context.Context, in actdef.InstallInput) (actdef.InstallInfo, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "installing requirements" })()
	reqPath := filepath.Join(in.Code.Dir, RequirementsFile)
	fileReqs := in.Code.Requirements
	if in.RequirementsTxt != nil {
		reqs, err := spec.ParseRequirements(*in.RequirementsTxt)
		if err != nil {
			return actdef.InstallInfo{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		if err := python.WriteRequirementsFile(reqPath, reqs); err != nil {
			return actdef.InstallInfo{}, fmt.Errorf("write %s: %w", RequirementsFile, err)
		}
		fileReqs = reqs
	}
	reqs := mergeRequirements(in.Spec.Requirements, fileReqs)
	if in.Spec.Environment == spec.EnvONNX && len(reqs) == 0 {
		// The ONNX server runs no Python: nothing to install, no venv.
		a.event(ctx, in.DeploymentID, "install_requirements", "environment onnx: no requirements, so no venv (the model runs in ONNX Runtime)")
		return actdef.InstallInfo{CodeRevision: in.Code.Revision, Requirements: reqs}, nil
	}
	venv := filepath.Join(in.Server.Workdir, "venv")
	// pip, and the build scripts of every package it fetches, run in the
	// server's sandbox: the venv writable, nothing of the platform visible.
	boxCfg, err := a.sandboxConfig(in.Server, in.Spec, "install")
	if err != nil {
		return actdef.InstallInfo{}, nonRetryable(actdef.BadInputErrorType, err)
	}
	boxCfg.StateDir = in.Server.Workdir
	box, err := sandbox.New(*boxCfg)
	if err != nil {
		return actdef.InstallInfo{}, fmt.Errorf("install sandbox: %w", err)
	}
	defer box.Close()
	if a.Sandbox.Unconfined() {
		a.event(ctx, in.DeploymentID, "install_requirements", "WARNING: %s", UnconfinedWarning)
	}
	a.event(ctx, in.DeploymentID, "install_requirements", "preparing venv %s", venv)
	py, err := python.EnsureVenvIn(ctx, box, a.Python, venv)
	if err != nil {
		return actdef.InstallInfo{}, fmt.Errorf("venv: %w", err)
	}
	info := actdef.InstallInfo{CodeRevision: in.Code.Revision, Python: py, Requirements: reqs}
	if len(reqs) == 0 {
		a.event(ctx, in.DeploymentID, "install_requirements", "no requirements to install")
		return info, nil
	}
	a.event(ctx, in.DeploymentID, "install_requirements", "pip install %s", strings.Join(reqs, " "))
	lines := newLineBatcher(func(text string) { a.event(ctx, in.DeploymentID, "pip", "%s", text) })
	pip := a.Pip
	pip.Box = box
	out, err := python.Install(ctx, py, reqs, pip, func(line string) {
		lines.add(line)
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, line)
		}
	})
	lines.flush()
	info.Output = tail(out, 4000)
	var ie *python.InstallError
	if errors.As(err, &ie) {
		if box.OOMKills() > 0 {
			err = fmt.Errorf("%w\npip (or a package's build) used more than %s and was killed", err, box.Config().Limits.Describe())
		}
		return actdef.InstallInfo{}, nonRetryable(actdef.InstallFailedErrorType, err)
	}
	if err != nil {
		return actdef.InstallInfo{}, fmt.Errorf("pip install: %w", err)
	}
	a.event(ctx, in.DeploymentID, "install_requirements", "installed %d requirement(s)", len(reqs))
	return info, nil
}

// mergeRequirements keeps the spec's requirements first and drops duplicates.
func mergeRequirements(lists ...[]string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, l := range lists {
		for _, r := range l {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// lineBatcher groups output lines into one event a second, so a chatty pip
// does not write thousands of rows.
type lineBatcher struct {
	mu    sync.Mutex
	buf   []string
	last  time.Time
	write func(string)
}

func newLineBatcher(write func(string)) *lineBatcher {
	return &lineBatcher{write: write, last: time.Now()}
}

func (b *lineBatcher) add(line string) {
	b.mu.Lock()
	b.buf = append(b.buf, line)
	due := time.Since(b.last) > time.Second || len(b.buf) >= 50
	b.mu.Unlock()
	if due {
		b.flush()
	}
}

func (b *lineBatcher) flush() {
	b.mu.Lock()
	text := strings.Join(b.buf, "\n")
	b.buf, b.last = nil, time.Now()
	b.mu.Unlock()
	if text != "" {
		b.write(text)
	}
}
