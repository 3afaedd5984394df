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
	box, err := sandbox.New(boxCfg)
	if err != nil {
		return fmt.Errorf("install: sandbox: %w", err)
	}
	defer box.Close()
	c := box.Config()
	if c.Mode == sandbox.ModeNone {
		fmt.Fprintln(stdout, "install: WARNING: the config's sandbox mode is none: pip and build backends run UNSANDBOXED")
	}
	fmt.Fprintf(stdout, "install: venv %s in sandbox %s (network %s, %s, uid %d)\n", venv, c.Group, c.Network, c.Limits.Describe(), box.UID())
	py, err := python.EnsureVenvIn(ctx, box, *systemPython, venv)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if len(reqs) == 0 {
		fmt.Fprintln(stdout, "install: no requirements to install")
		return nil
	}
	fmt.Fprintf(stdout, "install: pip install %s\n", strings.Join(reqs, " "))
	opts := python.InstallOptions{NoIndex: *noIndex, FindLinks: findLinks, IndexURL: *indexURL, Timeout: *timeout, Box: box}
	_, err = python.Install(ctx, py, reqs, opts, func(line string) { fmt.Fprintln(stdout, line) })
	var ie *python.InstallError
	if errors.As(err, &ie) && box.OOMKills() > 0 {
		return fmt.Errorf("install: pip exited %d: pip (or a package's build) used more than %s and was killed", ie.ExitCode, c.Limits.Describe())
	}
	if errors.As(err, &ie) {
		return fmt.Errorf("install: pip exited %d (its output is above)", ie.ExitCode)
	}
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	fmt.Fprintf(stdout, "install: installed %d requirement(s)\n", len(reqs))
	return nil
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
