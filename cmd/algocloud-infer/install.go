package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/sandbox"
)

// installUsage is the install mode's synopsis, for errors.
const installUsage = "algocloud-infer install --config <live.json> [--requirements <requirements.txt>] [--python /usr/bin/python3] [--find-links <dir>] [--no-index] [--index-url <url>]"

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runInstall is the install mode: it makes the venv the config's Python
// lives in and pip-installs the requirements file into it, both inside the
// sandbox the config names (group "<server>.install", the config's limits
// and network), so neither venv creation nor pip nor any package's build
// backend runs as the caller. On an EC2 instance fetch.sh runs it as root:
// the sandbox then runs as an unprivileged uid of the install group's own,
// which cannot read the bundle (mode 0700, the service user's). pip's output
// goes to stdout as it comes.
func runInstall(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "the live server's config (its python names the venv, its sandbox how author code runs)")
	reqPath := fs.String("requirements", "", "requirements file (one requirement a line, # comments); absent or empty: only the venv")
	systemPython := fs.String("python", "/usr/bin/python3", "interpreter the venv is made from")
	var findLinks stringList
	fs.Var(&findLinks, "find-links", "local folder or URL of packages for pip (repeatable)")
	noIndex := fs.Bool("no-index", false, "do not use a package index (only --find-links)")
	indexURL := fs.String("index-url", "", "package index instead of PyPI")
	timeout := fs.Duration("timeout", 30*time.Minute, "longest the pip install may take")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("install: %w (usage: %s)", err, installUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("install: unexpected argument %q (usage: %s)", fs.Arg(0), installUsage)
	}
	if *configPath == "" {
		return fmt.Errorf("install: --config is required (usage: %s)", installUsage)
	}
	cfg, err := inferapi.LoadConfig(*configPath)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if cfg.Python == "" {
		fmt.Fprintln(stdout, "install: the config runs no Python: no venv to make")
		return nil
	}
	if filepath.Base(cfg.Python) != "python" || filepath.Base(filepath.Dir(cfg.Python)) != "bin" || !filepath.IsAbs(cfg.Python) {
		return fmt.Errorf("install: config python %q is not <venv>/bin/python", cfg.Python)
	}
	// A config without a sandbox would mean pip unconfined; the platform
	// always writes one (mode none only when the operator chose it).
	if cfg.Sandbox == nil {
		return errors.New("install: the config has no sandbox section: refusing to run pip and build backends unconfined")
	}
	venv := filepath.Dir(filepath.Dir(cfg.Python))
	home := filepath.Dir(venv)
	var reqs []string
	if *reqPath != "" {
		if reqs, err = python.ReadRequirementsFile(*reqPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("install: %w", err)
		}
	}

	boxCfg := *cfg.Sandbox
	boxCfg.Group = installGroup(boxCfg.Group)
	boxCfg.StateDir = home
	out, err := installVenv(ctx, venvInstall{
		Sandbox: boxCfg, SystemPython: *systemPython, Venv: venv, Requirements: reqs,
		Pip: python.InstallOptions{NoIndex: *noIndex, FindLinks: findLinks, IndexURL: *indexURL, Timeout: *timeout},
	}, func(line string) { fmt.Fprintln(stdout, line) })
	switch {
	case err != nil:
		return fmt.Errorf("install: %w", err)
	case out.OOMKilled:
		return fmt.Errorf("install: pip exited %d: pip (or a package's build) used more than %s and was killed", out.ExitCode, out.Limits)
	case out.Failed:
		return fmt.Errorf("install: pip exited %d (its output is above)", out.ExitCode)
	}
	return nil
}

// venvInstall is one venv to make and its requirements to install, both in
// a sandbox: the install mode's and the agent's install command's work.
type venvInstall struct {
	// Sandbox is the install role's sandbox (its group already the
	// install's own).
	Sandbox sandbox.Config
	// SystemPython is the interpreter the venv is made from.
	SystemPython string
	// Venv is the venv's folder.
	Venv string
	// Requirements are pip requirement strings.
	Requirements []string
	// Pip is pip's index settings and timeout (Box is set here).
	Pip python.InstallOptions
}

// installOutcome is how an install ended when it ran: pip's output tail, and
// whether pip failed (the author's problem: a requirement that does not
// exist or does not build) or was killed for memory.
type installOutcome struct {
	Python    string
	Output    string
	Failed    bool
	OOMKilled bool
	ExitCode  int
	// Limits describes the sandbox's limits (for the OOM message).
	Limits string
}

// installVenv makes in.Venv (system site packages) and pip-installs
// in.Requirements into it, both inside in.Sandbox, saying each line of
// progress (its own and pip's) to say as it comes. The error is for what is
// not the author's: no sandbox, no interpreter, a venv that cannot be made,
// ctx ending; a failing pip is an outcome with Failed.
func installVenv(ctx context.Context, in venvInstall, say func(string)) (installOutcome, error) {
	box, err := sandbox.New(in.Sandbox)
	if err != nil {
		return installOutcome{}, fmt.Errorf("sandbox: %w", err)
	}
	defer box.Close()
	c := box.Config()
	out := installOutcome{Limits: c.Limits.Describe()}
	if c.Mode == sandbox.ModeNone {
		say("install: WARNING: the config's sandbox mode is none: pip and build backends run UNSANDBOXED")
	}
	say(fmt.Sprintf("install: venv %s in sandbox %s (network %s, %s, uid %d)", in.Venv, c.Group, c.Network, c.Limits.Describe(), box.UID()))
	py, err := python.EnsureVenvIn(ctx, box, in.SystemPython, in.Venv)
	if err != nil {
		return installOutcome{}, err
	}
	out.Python = py
	if len(in.Requirements) == 0 {
		say("install: no requirements to install")
		return out, nil
	}
	say("install: pip install " + strings.Join(in.Requirements, " "))
	opts := in.Pip
	opts.Box = box
	tail, err := python.Install(ctx, py, in.Requirements, opts, say)
	out.Output = tail
	var ie *python.InstallError
	if errors.As(err, &ie) {
		out.Failed, out.ExitCode, out.Output = true, ie.ExitCode, ie.Output
		out.OOMKilled = box.OOMKills() > 0
		return out, nil
	}
	if err != nil {
		return out, err
	}
	say(fmt.Sprintf("install: installed %d requirement(s)", len(in.Requirements)))
	return out, nil
}

// installGroup is the install's sandbox group next to the live one's:
// "<server>.live" gives "<server>.install", so the install has its own
// cgroup (and, as root, its own uid).
func installGroup(live string) string {
	return strings.TrimSuffix(live, ".live") + ".install"
}

// installMain runs the install mode until done or SIGTERM/SIGINT.
func installMain(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return runInstall(ctx, args, os.Stdout)
}
