// Command algocloud runs the platform: `algocloud dev` runs everything in one
// process; `api` and `worker` run the pieces against a Temporal cluster.
package main

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"github.com/algocloud/algocloud/activities"

	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/internal/platform"
)

var execLookPath = exec.LookPath

const usage = `algocloud turns a Python image algorithm into an HTTPS API.

Usage:
  algocloud dev     [flags]   everything in one process: embedded Temporal + UI, API, worker, local servers
  algocloud api     [flags]   the REST API against --temporal-address and --database-url
  algocloud worker  [flags]   the Temporal worker against --temporal-address and --database-url
  algocloud token   [flags] USER   create a user (if new) and print a new API token for it
  algocloud codec-token [flags]    print the operator token of the codec endpoint (needs the platform's key)

Client commands (talk to a running platform: --api, token in $ALGOCLOUD_TOKEN):
  algocloud deploy  [flags] DIR        deploy the algorithm in DIR as DIR/algocloud.json describes it
  algocloud predict [flags] INPUT      call a deployed endpoint (--endpoint, --ca, -o)
  algocloud predict --async [--wait] API_NAME INPUT   an async prediction, run durably by the platform
  algocloud predictions ls|get|wait|cancel|webhooks API_NAME [ID]   follow async predictions
  algocloud batch   [flags] API_NAME INPUTS... -o OUT.zip   a batch job with a progress bar (--resume ID, --webhook URL)
  algocloud batches ls|webhooks API_NAME [ID]   an endpoint's batches and a batch's webhook deliveries
  algocloud logs    [-f] ID|API_NAME   a deployment's progress log; -f follows it
  algocloud ls                         your deployments: step, status, the revision serving and the one staged
  algocloud show    ID|API_NAME        one deployment: what serves (code revision, commit, install, since when) and what is staged

Run "algocloud <command> -h" for its flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "dev":
		err = run(args, devCommand)
	case "api":
		err = run(args, apiCommand)
	case "worker":
		err = run(args, workerCommand)
	case "token":
		err = token(args)
	case "codec-token":
		err = codecToken(args)
	case "deploy":
		err = deploy(args)
	case "predict":
		err = predict(args)
	case "predictions":
		err = predictions(args)
	case "batch":
		err = batch(args)
	case "batches":
		err = batches(args)
	case "logs":
		err = logs(args)
	case "ls":
		err = ls(args)
	case "show":
		err = show(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "algocloud:", err)
		os.Exit(1)
	}
}

// serveOptions says what one of the server commands (dev, api, worker) runs.
type serveOptions struct {
	// name is the command: its flag set's name and the log's.
	name string
	// dev embeds the Temporal server and UI, creates the dev user and gets the
	// local-friendly flag defaults.
	dev bool
	// api serves the REST API and the wizard.
	api bool
	// worker runs the Temporal worker (workflows and activities).
	worker bool
}

// serverFlags is the flag set of the server command o names (filling c):
// only the flags that command reads, so `algocloud api -h` lists no worker
// flag and `algocloud api --compute ec2` is an error, not silently ignored.
func serverFlags(c *config, o serveOptions, h flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet(o.name, h)
	c.flags(fs, o)
	return fs
}

// The server commands: what each runs, and so which flags it takes.
var (
	devCommand    = serveOptions{name: "dev", dev: true, api: true, worker: true}
	apiCommand    = serveOptions{name: "api", api: true}
	workerCommand = serveOptions{name: "worker", worker: true}
)

// run starts the platform pieces o names and serves until SIGINT or SIGTERM.
func run(args []string, o serveOptions) error {
	var c config
	fs := serverFlags(&c, o, flag.ExitOnError)
	_ = fs.Parse(args)
	if err := c.finish(o); err != nil {
		return err
	}
	log := c.logger()
	cloud, err := c.cloud()
	if err != nil {
		return err
	}
	opts := platform.Options{
		DataDir: c.DataDir, Embedded: o.dev, TemporalAddress: c.TemporalAddress,
		TemporalPort: c.TemporalPort, UIPort: c.UIPort, Namespace: c.Namespace,
		DatabaseURL: c.DatabaseURL, RunAPI: o.api, RunWorker: o.worker, APIAddr: c.APIAddr,
		Host: c.Host, Domain: c.Domain,
		Pip:           python.InstallOptions{IndexURL: c.PipIndexURL, FindLinks: platform.SplitList(c.PipFindLinks), NoIndex: c.PipNoIndex},
		AllowLocalGit: c.AllowLocalGit, AllowPrivateGit: c.AllowPrivateGit, AllowPrivateURLs: c.AllowPrivateURL,
		WebhookAllowLoopback: c.WebhookAllowLoopback,
		PredictTimeout:       c.PredictTimeout, CertRenewEvery: c.CertRenewEvery, Cloud: cloud, Logger: log,
		PredictionRetention: c.PredictionRetention, MaxRunningPredictions: c.MaxRunningPredictions,
		MaxPredictionInput: c.MaxPredictionInput,
		Sandbox:            activities.SandboxSettings{Mode: sandbox.Mode(c.Sandbox), Scale: c.SandboxScale},
		BlobBucket:         c.BlobBucket, BlobPrefix: c.BlobPrefix,
		CodecEndpoint: c.CodecEndpoint, CodecOrigins: platform.SplitList(c.CodecOrigins),
		Agents: c.Agents, PlatformURL: c.PlatformURL, PlatformCAFile: c.PlatformCAFile,
	}
	if o.worker {
		bin, err := c.inferBinary()
		if err != nil {
			return err
		}
		opts.InferCommand = []string{bin}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := platform.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer p.Stop()
	if o.dev {
		if err := servePprof(); err != nil {
			return err
		}
		tok, err := p.EnsureDevUser(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("algocloud dev is running\n  API and wizard  %s\n  Temporal        %s\n", p.APIURL, p.Temporal.HostPort())
		if ui := p.Temporal.UIAddress(); ui != "" {
			fmt.Printf("  Temporal UI     http://%s\n", ui)
		}
		fmt.Printf("  data            %s\n  endpoints' CA   %s\n", c.DataDir, p.CA.RootFile())
		fmt.Printf("  codec endpoint  %s%s (payloads are encrypted; sign in there with `algocloud codec-token --data %s`)\n", p.APIURL, platform.CodecPath, c.DataDir)
		if tok != "" {
			fmt.Printf("\nFirst start: user \"dev\" created. Its API token (shown once, stored hashed):\n  %s\n", tok)
			fmt.Printf("  export ALGOCLOUD_TOKEN=%s\n", tok)
		} else {
			fmt.Printf("\nSign in with your dev token; lost it? run: algocloud token --data %s dev\n", c.DataDir)
		}
		fmt.Println("\nCtrl-C stops everything.")
	} else {
		log.Info("algocloud running", "command", o.name, "api", p.APIURL)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// tokenFlags is `algocloud token`'s flag set: where the users are, nothing
// else (the platform's other flags do not apply to it).
func tokenFlags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("token", flag.ExitOnError)
	c.dataFlags(fs)
	return fs
}

// token creates the user (if new) and prints a new API token for it.
func token(args []string) error {
	var c config
	fs := tokenFlags(&c)
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: algocloud token [--data DIR | --database-url URL] USER")
	}
	if err := c.finishData(); err != nil {
		return err
	}
	tok, err := platform.CreateToken(context.Background(), c.DatabaseURL, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// codecTokenFlags is `algocloud codec-token`'s flag set: the data folder and
// the key file, the only inputs of the token.
func codecTokenFlags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("codec-token", flag.ExitOnError)
	c.dataDirFlag(fs)
	c.keyFlags(fs)
	return fs
}

// codecToken prints the codec endpoint's operator token, derived from the
// platform's key: only someone who holds the key can print it.
func codecToken(args []string) error {
	var c config
	fs := codecTokenFlags(&c)
	_ = fs.Parse(args)
	if err := c.finishData(); err != nil {
		return err
	}
	key, err := readKey("ALGOCLOUD_ENCRYPTION_KEY", c.EncryptionKeyFile, "--encryption-key-file")
	if err != nil {
		return err
	}
	tok, err := platform.CodecToken(c.DataDir, key)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
