package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// show prints one deployment: where it stands, what serves and what is staged.
func show(args []string) error {
	fs := flag.NewFlagSet("show", flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	asJSON := fs.Bool("json", false, "print the deployment's detail (GET /api/v1/deployments/{id}) as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: algocloud show [--api URL] [--json] ID|API_NAME\n\n"+
			"Shows a deployment: its step and status, the code revision, commit and install that serve\n"+
			"and since when, and what is staged (fetched, installed or tested, waiting for Complete).\n\n")
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("show takes one deployment ID or API name")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	ref, err := resolveDeployment(ctx, c, rest[0])
	if err != nil {
		return err
	}
	d, err := c.GetDeployment(ctx, ref.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return printDetail(os.Stdout, d)
}

// printDetail is show's answer, one field a line.
func printDetail(w io.Writer, d apiclient.DeploymentDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	line("ID", d.ID)
	line("API name", d.APIName)
	line("Name", cell(d.Name, 80))
	line("Step", d.Step)
	line("Status", d.Status)
	if d.Endpoint != "" {
		line("Endpoint", d.Endpoint)
	}
	if s := d.Serving; s != nil {
		line("Serving", fmt.Sprintf("code revision %d (%s), install revision %d", s.CodeRevision, describeOrigin(s.Commit, s.Source), s.InstallRevision))
		line("  since", s.Since.Local().Format("2006-01-02 15:04:05 MST"))
		reqs := "none"
		if len(s.Requirements) > 0 {
			reqs = cell(strings.Join(s.Requirements, ", "), 120)
		}
		line("  requirements", reqs)
	} else {
		line("Serving", "nothing")
	}
	if s := d.Staged; s != nil {
		what := fmt.Sprintf("code revision %d (%s)", s.CodeRevision, describeOrigin(s.Commit, ""))
		if s.InstallRevision != 0 {
			what += fmt.Sprintf(", install revision %d", s.InstallRevision)
		}
		line("Staged", what+": "+stagedNext(s))
	} else {
		line("Staged", "nothing (the working copy is what was completed)")
	}
	if d.NextStep != "" {
		line("Next step", d.NextStep)
	}
	if d.Error != "" {
		line("Error", cell(d.Error, 200))
	}
	if d.StateError != "" {
		line("Note", d.StateError+" (serving and staged are from the last step's record)")
	}
	return tw.Flush()
}

// describeOrigin is a revision's commit in full, or its source without one.
func describeOrigin(commit, source string) string {
	switch {
	case commit != "":
		return "commit " + commit
	case source != "":
		return source
	}
	return "no commit"
}

// stagedNext says how far a staged revision is and what it needs next.
func stagedNext(s *apiclient.StagedRevision) string {
	switch {
	case s.InstallRevision == 0:
		return "requirements not installed yet"
	case !s.Tested:
		return "not tested yet"
	case !s.TestPassed:
		return "Test Code failed"
	}
	return "Test Code passed; Complete serves it"
}
