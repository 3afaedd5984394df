package main

// This file holds `algocloud predict --async` and `algocloud predictions`:
// async predictions through the platform's API (POST
// /api/v1/endpoints/{api_name}/predictions and the routes under it), which
// the platform runs durably on Temporal. They authenticate with the
// endpoint's token or the owner's API token: both are accepted there.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// asyncFlags are predict's flags for async predictions.
type asyncFlags struct {
	async   bool
	wait    bool
	webhook string
	events  string
	key     string
	quiet   bool
}

func (a *asyncFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&a.async, "async", false, "create an async prediction through the platform's API (INPUT is then API_NAME INPUT); prints its id")
	fs.BoolVar(&a.wait, "wait", false, "with --async: wait until it finishes and write its output as without --async")
	fs.StringVar(&a.webhook, "webhook", "", "with --async: an https URL the platform tells of the prediction's events (signed, Standard Webhooks)")
	fs.StringVar(&a.events, "webhook-events", "", "with --webhook: the events to send, comma-separated (start,output,logs,completed; default: the API's)")
	fs.BoolVar(&a.quiet, "q", false, "with --async: quiet: no id hint, progress or predict's logs on stderr (errors and tracebacks still show)")
	fs.StringVar(&a.key, "idempotency-key", "", "with --async: a key that makes a retried create return the same prediction (default: a random one per run)")
}

// jobsToken is the token of the async routes: --token, else the endpoint
// token of $ALGOCLOUD_ENDPOINT_TOKEN, else the API token of $ALGOCLOUD_TOKEN.
func jobsToken(flagToken string) (string, error) {
	for _, t := range []string{flagToken, env("ENDPOINT_TOKEN", ""), env("TOKEN", "")} {
		if strings.TrimSpace(t) != "" {
			return strings.TrimSpace(t), nil
		}
	}
	return "", errors.New("no token: set ALGOCLOUD_ENDPOINT_TOKEN (the endpoint's, Complete Deployment showed it) or ALGOCLOUD_TOKEN (yours), or pass --token")
}

// jobsClient is a client of the platform's API at api with the jobs token.
func jobsClient(api, flagToken string) (*apiclient.Client, error) {
	tok, err := jobsToken(flagToken)
	if err != nil {
		return nil, err
	}
	return apiclient.New(api, tok, nil)
}

// randomKey is an idempotency key: one per CLI run, so that the create this
// run retries is the same prediction but another run makes a new one.
func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "cli-" + hex.EncodeToString(b)
}

// predictAsync creates an async prediction of apiName with input (a file,
// - or an http(s) URL), prints its id, and with --wait waits for it and
// writes its output where -o says.
func predictAsync(ctx context.Context, c *apiclient.Client, a asyncFlags, apiName, input, output string, in apiclient.Input) error {
	ai := apiclient.AsyncInput{Input: in}
	if strings.HasPrefix(input, "http://") || strings.HasPrefix(input, "https://") {
		ai = apiclient.AsyncInput{URL: input}
	}
	o := apiclient.AsyncOptions{Webhook: a.webhook, IdempotencyKey: a.key}
	if o.IdempotencyKey == "" {
		o.IdempotencyKey = randomKey()
	}
	if a.events != "" {
		for _, e := range strings.Split(a.events, ",") {
			if e = strings.TrimSpace(e); e != "" {
				o.Events = append(o.Events, e)
			}
		}
	}
	if a.wait {
		o.Wait = 60 * time.Second // the API's most; then poll
	}
	p, err := c.CreatePrediction(ctx, apiName, ai, o)
	if err != nil {
		return err
	}
	if !a.wait {
		fmt.Println(p.ID)
		if !a.quiet {
			fmt.Fprintf(os.Stderr, "prediction %s is %s; see it with: algocloud predictions get %s %s\n", p.ID, p.Status, apiName, p.ID)
		}
		return nil
	}
	var seen func(apiclient.Prediction)
	if !a.quiet {
		fmt.Fprintf(os.Stderr, "prediction %s\n", p.ID)
		seen = func(p apiclient.Prediction) { fmt.Fprintf(os.Stderr, "  %s\n", p.Status) }
	}
	p, err = c.WaitPrediction(ctx, apiName, p, 0, seen)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "stopped waiting; the prediction goes on: algocloud predictions get %s %s\n", apiName, p.ID)
		}
		return err
	}
	return finishPrediction(ctx, c, apiName, p, output, a.quiet)
}

// finishPrediction writes a final prediction's output (or says why there is
// none), after its logs on stderr unless quiet.
func finishPrediction(ctx context.Context, c *apiclient.Client, apiName string, p apiclient.Prediction, output string, quiet bool) error {
	if !quiet {
		printLogs(os.Stderr, p)
	}
	switch p.Status {
	case apiclient.StatusSucceeded:
		out, err := c.PredictionOutput(ctx, apiName, p)
		if err != nil {
			return err
		}
		return writeOutput(out, output)
	case apiclient.StatusFailed:
		msg := "failed"
		if p.Error != nil {
			if p.Error.Traceback != "" {
				fmt.Fprintf(os.Stderr, "%s\n", strings.TrimRight(p.Error.Traceback, "\n"))
			}
			msg = p.Error.Message
		}
		return fmt.Errorf("prediction %s failed: %s", p.ID, msg)
	default:
		return fmt.Errorf("prediction %s is %s", p.ID, p.Status)
	}
}

const predictionsUsage = `Usage:
  algocloud predictions ls     [--limit N] [--json] API_NAME   the endpoint's predictions, newest first
  algocloud predictions get    [--json|--logs] [-o OUT] [-q] API_NAME ID
                                one prediction; -o writes its output; --logs prints only what predict printed
  algocloud predictions wait   [-o OUT] [-q] API_NAME ID        wait until it ends, then write its output
  algocloud predictions cancel API_NAME ID                      cancel it (a finished one stays as it is)
  algocloud predictions webhooks API_NAME ID                    its webhook's delivery attempts

What the algorithm's predict printed (its logs) goes to stderr between
"--- logs of prediction ID ---" and "--- end of logs ---", so stdout stays
the output; -q leaves the logs out; get --logs writes only them, to stdout.
API_NAME is the endpoint's API name (algocloud ls). The token is --token, else
$ALGOCLOUD_ENDPOINT_TOKEN (the endpoint's), else $ALGOCLOUD_TOKEN (yours).
Create one with: algocloud predict --async API_NAME INPUT

`

// predictions runs `algocloud predictions SUBCOMMAND`.
func predictions(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, predictionsUsage)
		if len(args) == 0 {
			return errors.New("predictions needs a subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("predictions "+sub, flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	tok := fs.String("token", "", "the endpoint token or your API token (default $ALGOCLOUD_ENDPOINT_TOKEN, else $ALGOCLOUD_TOKEN)")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 20, "ls: how many (newest first)")
	output := fs.String("o", "", "get, wait: write the output to this file (as algocloud predict -o)")
	timeout := fs.Duration("timeout", 30*time.Minute, "wait: give up waiting after this long (the prediction goes on)")
	onlyLogs := fs.Bool("logs", false, "get: print only what the algorithm's predict printed (its logs), as they are, to stdout")
	quiet := fs.Bool("q", false, "get, wait: leave the logs out of stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), predictionsUsage)
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	want := 2
	if sub == "ls" {
		want = 1
	}
	switch sub {
	case "ls", "get", "wait", "cancel", "webhooks":
	default:
		fs.Usage()
		return fmt.Errorf("unknown predictions subcommand %q", sub)
	}
	if len(rest) != want {
		fs.Usage()
		return fmt.Errorf("predictions %s takes %s", sub, map[int]string{1: "API_NAME", 2: "API_NAME ID"}[want])
	}
	if *onlyLogs && (sub != "get" || *asJSON || *output != "") {
		return errors.New("--logs goes with predictions get, without --json or -o")
	}
	c, err := jobsClient(o.API, *tok)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	apiName := rest[0]
	switch sub {
	case "ls":
		page, err := c.ListPredictions(ctx, apiName, *limit, "")
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(page)
		}
		return printPredictions(page.Predictions)
	case "get":
		p, err := c.GetPrediction(ctx, apiName, rest[1])
		if err != nil {
			return err
		}
		switch {
		case *output != "":
			return finishPrediction(ctx, c, apiName, p, *output, *quiet)
		case *asJSON:
			return printJSON(p)
		case *onlyLogs:
			if p.Logs == "" {
				fmt.Fprintf(os.Stderr, "prediction %s has no logs (%s)\n", p.ID, noLogsWhy(p))
				return nil
			}
			_, err := fmt.Fprint(os.Stdout, printable(p.Logs, isTerminal(os.Stdout)))
			return err
		}
		if err := printPrediction(p); err != nil {
			return err
		}
		if !*quiet {
			printLogs(os.Stderr, p)
		}
		return nil
	case "wait":
		p, err := c.GetPrediction(ctx, apiName, rest[1])
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if p, err = c.WaitPrediction(wctx, apiName, p, 0, nil); err != nil {
			return err
		}
		return finishPrediction(ctx, c, apiName, p, *output, *quiet)
	case "cancel":
		p, err := c.CancelPrediction(ctx, apiName, rest[1])
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", p.ID, p.Status)
		return nil
	default: // webhooks
		list, err := c.WebhookAttempts(ctx, apiName, rest[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(list)
		}
		return printWebhookAttempts(list, "the prediction has no webhook")
	}
}

// printWebhookAttempts prints a prediction's or batch's webhook delivery
// attempts as a table; none says why there may be none.
func printWebhookAttempts(list []apiclient.WebhookAttempt, none string) error {
	if len(list) == 0 {
		fmt.Fprintf(os.Stderr, "No webhook deliveries (%s, or none was due yet).\n", none)
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tEVENT\tATTEMPT\tSTATUS\tOUTCOME\tDURATION\tERROR")
	for _, a := range list {
		code := "-"
		if a.StatusCode != 0 {
			code = fmt.Sprint(a.StatusCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d ms\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), a.Event, a.Attempt, code, a.Outcome, a.DurationMS, cell(a.Error, 60))
	}
	return tw.Flush()
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printPredictions is ls's table.
func printPredictions(list []apiclient.Prediction) error {
	if len(list) == 0 {
		fmt.Fprintln(os.Stderr, "No predictions yet: algocloud predict --async API_NAME INPUT makes one.")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tPREDICT TIME")
	for _, p := range list {
		pt := "-"
		if p.Metrics.PredictTime > 0 {
			pt = fmt.Sprintf("%.2f s", p.Metrics.PredictTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Status, p.CreatedAt.Local().Format("2006-01-02 15:04:05"), pt)
	}
	return tw.Flush()
}

// printPrediction is get's summary.
func printPrediction(p apiclient.Prediction) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nstatus\t%s\ncreated\t%s\n", p.ID, p.Status, p.CreatedAt.Local().Format(time.RFC3339))
	if p.StartedAt != nil {
		fmt.Fprintf(tw, "started\t%s\n", p.StartedAt.Local().Format(time.RFC3339))
	}
	if p.CompletedAt != nil {
		fmt.Fprintf(tw, "completed\t%s\n", p.CompletedAt.Local().Format(time.RFC3339))
	}
	if p.Metrics.PredictTime > 0 {
		fmt.Fprintf(tw, "predict time\t%.3f s\n", p.Metrics.PredictTime)
	}
	if ref, ok := p.OutputFile(); ok {
		fmt.Fprintf(tw, "output\t%s (%s, %s): -o FILE downloads it\n", ref.URL, ref.ContentType, size(ref.Size))
	} else if len(p.Output) > 0 && string(p.Output) != "null" {
		fmt.Fprintf(tw, "output\t%s\n", cell(string(p.Output), 200))
	}
	if p.Error != nil {
		fmt.Fprintf(tw, "error\t%s\n", p.Error.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.Error != nil && p.Error.Traceback != "" {
		fmt.Println(strings.TrimRight(p.Error.Traceback, "\n"))
	}
	return nil
}
