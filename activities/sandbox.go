package activities

import (
	"fmt"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/spec"
)

// SandboxSettings say how author code runs (internal/sandbox).
type SandboxSettings struct {
	// Mode is sandbox.ModeBwrap (the zero value means it too) or
	// sandbox.ModeNone, only where the operator chose --sandbox=none.
	Mode sandbox.Mode
	// Scale multiplies every instance type's limits (algocloud dev
	// --sandbox-scale): 1 (or 0) gives the instance's own.
	Scale float64
}

// Unconfined reports whether author code runs without a sandbox.
func (s SandboxSettings) Unconfined() bool { return s.Mode == sandbox.ModeNone }

// UnconfinedWarning is what every result of an unconfined platform says.
const UnconfinedWarning = "author code runs UNSANDBOXED on this platform (started with --sandbox=none): it can read the platform's keys and data"

// sandboxConfig is how one role ("install", "test", "live") of a server runs
// author code: the deployment's instance type's limits, its network choice,
// a cgroup of its own. Its StateDir is left to the inference server (its
// config file's folder), which is the server's folder wherever it runs.
func (a *Activities) sandboxConfig(srv compute.Server, sp spec.Spec, role string) (*sandbox.Config, error) {
	mode := a.Sandbox.Mode
	if mode == "" {
		mode = sandbox.ModeBwrap
	}
	sp = sp.WithDefaults()
	lim, err := sandbox.ForInstanceType(sp.InstanceType, a.Sandbox.Scale)
	if err != nil {
		return nil, fmt.Errorf("sandbox limits: %w", err)
	}
	net := sandbox.NetOutbound
	if sp.Network == spec.NetworkNone {
		net = sandbox.NetNone
	}
	id := srv.ID
	if id == "" {
		id = "server"
	}
	return &sandbox.Config{Mode: mode, Network: net, Group: id + "." + role, Limits: lim}, nil
}
