package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// This file holds `algocloud ls` and what the client commands (deploy, logs,
// ls, predict) share: they talk to a running platform over HTTP only.

// apiOptions are the flags of the commands that call the platform's API.
// The API token comes from $ALGOCLOUD_TOKEN only, never a flag, so it does
// not show in process lists or shell history.
type apiOptions struct {
	API string
}

func (o *apiOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.API, "api", env("API", apiclient.DefaultBaseURL), "the platform's API URL ($ALGOCLOUD_API); the API token is read from $ALGOCLOUD_TOKEN")
}

func (o *apiOptions) client() (*apiclient.Client, error) {
	return apiclient.New(o.API, env("TOKEN", ""), nil)
}

// parseInterspersed parses fs's flags wherever they stand among args (so
// `algocloud logs ID -f` works like `algocloud logs -f ID`) and returns the
// other arguments. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) []string {
	var pos []string
	for {
		_ = fs.Parse(args) // ExitOnError: a bad flag has exited already
		rest := fs.Args()
		if len(rest) == 0 {
			return pos
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...)
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// interruptible is a context that Ctrl-C or SIGTERM ends.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// resolveDeployment finds the caller's deployment by ID or API name.
func resolveDeployment(ctx context.Context, c *apiclient.Client, ref string) (apiclient.Deployment, error) {
	list, err := c.ListDeployments(ctx)
	if err != nil {
		return apiclient.Deployment{}, err
	}
	for _, d := range list {
		if d.ID == ref || d.APIName == ref {
			return d, nil
		}
	}
	return apiclient.Deployment{}, fmt.Errorf("you have no deployment with ID or API name %q (algocloud ls lists them)", ref)
}

// ls prints the caller's deployments.
func ls(args []string) error {
	fs := flag.NewFlagSet("ls", flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	asJSON := fs.Bool("json", false, "print the deployments as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: algocloud ls [--api URL] [--json]\n\nLists your deployments: step, status, what serves (SERVING: code revision, commit, install revision; SINCE)\nand what is staged for Complete (STAGED: code revision and how far it is). algocloud show ID has more.\n\n")
		fs.PrintDefaults()
	}
	if rest := parseInterspersed(fs, args); len(rest) > 0 {
		fs.Usage()
		return errors.New("ls takes no arguments")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	list, err := c.ListDeployments(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(os.Stderr, "No deployments yet: algocloud deploy DIR creates one.")
		return nil
	}
	return printList(os.Stdout, list)
}

// printList is ls's table. SERVING is the code revision, commit and install
// the endpoint serves, SINCE when; STAGED the working copy waiting for
// Complete and how far it is (not installed, untested, test failed, passed).
func printList(w io.Writer, list []apiclient.Deployment) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAPI NAME\tNAME\tSTEP\tSTATUS\tSERVING\tSINCE\tSTAGED\tENDPOINT\tUPDATED")
	for _, d := range list {
		endpoint := d.Endpoint
		if endpoint == "" {
			endpoint = "-"
		}
		status := d.Status
		if d.Error != "" {
			status += " (error)"
		}
		serving, since := "-", "-"
		if s := d.Serving; s != nil {
			serving = fmt.Sprintf("r%d %s i%d", s.CodeRevision, origin(s.Commit, s.Source), s.InstallRevision)
			since = s.Since.Local().Format("2006-01-02 15:04")
		}
		staged := "-"
		if s := d.Staged; s != nil {
			staged = fmt.Sprintf("r%d %s", s.CodeRevision, stagedProgress(s))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.APIName, cell(d.Name, 32), d.Step, status,
			serving, since, staged, endpoint, d.UpdatedAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

// origin is a revision's short commit, or where it came from when it has
// none (an upload, an edit of one).
func origin(commit, source string) string {
	switch {
	case len(commit) > 7:
		return commit[:7]
	case commit != "":
		return commit
	case source != "":
		return source
	}
	return "-"
}

// stagedProgress says how far a staged revision is from Complete.
func stagedProgress(s *apiclient.StagedRevision) string {
	switch {
	case s.InstallRevision == 0:
		return "not installed"
	case !s.Tested:
		return fmt.Sprintf("i%d untested", s.InstallRevision)
	case !s.TestPassed:
		return fmt.Sprintf("i%d test failed", s.InstallRevision)
	}
	return fmt.Sprintf("i%d test passed", s.InstallRevision)
}

// cell is s on one line, at most n runes.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}
