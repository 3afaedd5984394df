package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"
)

const batchesUsage = `Usage:
  algocloud batches ls       [--limit N] [--json] API_NAME   the endpoint's batches, newest first
  algocloud batches webhooks [--json] API_NAME BATCH_ID      its webhook's delivery attempts

API_NAME is the endpoint's API name (algocloud ls). The token is --token, else
$ALGOCLOUD_ENDPOINT_TOKEN (the endpoint's), else $ALGOCLOUD_TOKEN (yours).
Start a batch with: algocloud batch API_NAME INPUTS... -o OUT.zip [--webhook URL]

`

// batches runs `algocloud batches SUBCOMMAND`: the batches of an endpoint
// and their webhook deliveries, as `algocloud predictions` for predictions.
func batches(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, batchesUsage)
		if len(args) == 0 {
			return errors.New("batches needs a subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("batches "+sub, flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	tok := fs.String("token", "", "the endpoint token or your API token (default $ALGOCLOUD_ENDPOINT_TOKEN, else $ALGOCLOUD_TOKEN)")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 20, "ls: how many (newest first)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), batchesUsage)
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	want := map[string]int{"ls": 1, "webhooks": 2}[sub]
	if want == 0 {
		fs.Usage()
		return fmt.Errorf("unknown batches subcommand %q", sub)
	}
	if len(rest) != want {
		fs.Usage()
		return fmt.Errorf("batches %s takes %s", sub, map[int]string{1: "API_NAME", 2: "API_NAME BATCH_ID"}[want])
	}
	c, err := jobsClient(o.API, *tok)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	apiName := rest[0]
	if sub == "webhooks" {
		list, err := c.BatchWebhookAttempts(ctx, apiName, rest[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(list)
		}
		return printWebhookAttempts(list, "the batch has no webhook")
	}
	list, err := c.ListBatches(ctx, apiName, *limit, time.Time{})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(os.Stderr, "No batches yet: algocloud batch API_NAME INPUTS... -o OUT.zip starts one.")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tDONE\tFAILED\tLEFT")
	for _, b := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", b.ID, b.Status, b.CreatedAt.Local().Format("2006-01-02 15:04:05"), b.Counts.Done, b.Counts.Failed, b.Counts.Left)
	}
	return tw.Flush()
}
