package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// logs prints a deployment's progress events; -f follows new ones.
func logs(args []string) error {
	fs := flag.NewFlagSet("logs", flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	follow := fs.Bool("f", false, "follow: keep printing new events until Ctrl-C")
	after := fs.Int64("after", 0, "print only events with a larger id")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: algocloud logs [-f] [--api URL] ID|API_NAME\n\nPrints a deployment's progress log (provisioning, pip, tests...).\n\n")
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("logs takes one deployment ID or API name")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	d, err := resolveDeployment(ctx, c, rest[0])
	if err != nil {
		return err
	}
	last := *after
	for {
		p, err := c.Events(ctx, d.ID, last, 1000)
		if err != nil {
			return err
		}
		for _, ev := range p.Events {
			printEvent(os.Stdout, timeLead(ev), ev)
		}
		if len(p.Events) == 0 {
			break
		}
		last = p.NextAfter
	}
	if !*follow {
		return nil
	}
	err = c.FollowEvents(ctx, d.ID, last, func(ev apiclient.Event) error {
		printEvent(os.Stdout, timeLead(ev), ev)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C is how -f ends
	}
	return err
}

// printEvent writes one event after lead; lines of a multi-line message (pip
// output, tracebacks) are indented under the first.
func printEvent(w io.Writer, lead string, ev apiclient.Event) {
	head := lead + fmt.Sprintf("%-20s ", ev.Kind)
	lines := strings.Split(strings.TrimRight(ev.Message, "\n"), "\n")
	fmt.Fprintln(w, head+lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintln(w, strings.Repeat(" ", len(head))+l)
	}
}

// timeLead is an event's local time, as logs shows it.
func timeLead(ev apiclient.Event) string { return ev.At.Local().Format("15:04:05") + "  " }
