package main

// This file holds `algocloud batch`: a batch job of many inputs through the
// platform's API (POST /api/v1/endpoints/{api_name}/batches), its progress
// on stderr while it runs, and the download of its outputs and error report.
// The batch runs on the platform: this command only follows it, so Ctrl-C
// leaves it running (unless --cancel-on-interrupt) and --resume picks it up.

import (
	"archive/zip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
)

const batchUsage = `Usage: algocloud batch [flags] API_NAME INPUTS... -o OUT.zip
       algocloud batch [flags] API_NAME --urls FILE -o OUT.zip
       algocloud batch [flags] API_NAME s3://bucket/in/ -o s3://bucket/out/
       algocloud batch [flags] API_NAME --resume BATCH_ID -o OUT.zip

Runs the endpoint API_NAME on many inputs as one batch job on the platform
(--api). INPUTS are files and folders (their files, zipped on the fly) or one
.zip or .tar archive sent as it is; --urls FILE reads http(s) URLs, one a
line, for the platform to fetch. While it runs, stderr shows its progress
(done/failed/left, rate, ETA); when it ends, its outputs are downloaded to
OUT.zip and, when items failed, the per-item error report beside it
(OUT.errors.jsonl: one JSON line per failed item).

An INPUT of s3://bucket/prefix/ makes every object under the prefix an
input; -o s3://bucket/prefix/ has the platform write each output there as it
finishes, then errors.jsonl and manifest.json (nothing is downloaded). Either
works with the other forms. S3 is reached with YOUR credentials, from
$AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN and
$AWS_REGION (else $AWS_DEFAULT_REGION, else us-east-1); --s3-endpoint names
an S3-compatible store. The platform keeps them sealed while the batch runs
and drops them when it ends; it never uses its own for your bucket.

The batch runs on the platform, not in this command: Ctrl-C stops following
it (it prints the resume command) but does not cancel it, unless
--cancel-on-interrupt. --resume BATCH_ID follows a batch again. --webhook URL
has the platform tell URL when the batch starts and when it ends (signed with
the endpoint's webhook secret; docs/webhooks.md); algocloud batches webhooks
API_NAME BATCH_ID lists the deliveries. The token is
--token, else $ALGOCLOUD_ENDPOINT_TOKEN (the endpoint's), else
$ALGOCLOUD_TOKEN (yours).

`

// batchOptions are batch's flags.
type batchOptions struct {
	apiOptions
	token             string
	output            string
	urls              string
	resume            string
	concurrency       int
	cancelOnInterrupt bool
	every             time.Duration
	force             bool
	webhook           string
	events            string
	s3Endpoint        string
}

func batchFlags(o *batchOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("batch", flag.ExitOnError)
	o.apiOptions.flags(fs)
	fs.StringVar(&o.token, "token", "", "the endpoint token or your API token (default $ALGOCLOUD_ENDPOINT_TOKEN, else $ALGOCLOUD_TOKEN)")
	fs.StringVar(&o.output, "o", "", "write the outputs' zip here (required); the error report goes beside it")
	fs.StringVar(&o.urls, "urls", "", "a file of http(s) URLs, one a line, instead of INPUTS")
	fs.StringVar(&o.resume, "resume", "", "follow the batch BATCH_ID (printed when this command was interrupted) instead of starting one")
	fs.IntVar(&o.concurrency, "concurrency", 0, "predictions in flight at once (default: the platform's)")
	fs.BoolVar(&o.cancelOnInterrupt, "cancel-on-interrupt", false, "Ctrl-C cancels the batch on the platform (default: it goes on; --resume follows it again)")
	fs.DurationVar(&o.every, "poll", time.Second, "how often to ask for the batch's progress")
	fs.BoolVar(&o.force, "force", false, "overwrite OUT when it exists")
	fs.StringVar(&o.webhook, "webhook", "", "an https URL the platform tells of the batch's events (signed, Standard Webhooks)")
	fs.StringVar(&o.events, "webhook-events", "", "with --webhook: the events to send, comma-separated (start,completed; default: both)")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "the endpoint URL of an S3-compatible store for s3:// inputs and outputs (default: AWS)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), batchUsage)
		fs.PrintDefaults()
	}
	return fs
}

// batch runs `algocloud batch`.
func batch(args []string) error {
	var o batchOptions
	fs := batchFlags(&o)
	rest := parseInterspersed(fs, args)
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("batch needs API_NAME")
	}
	apiName, inputs := rest[0], rest[1:]
	sources := 0
	for _, has := range []bool{len(inputs) > 0, o.urls != "", o.resume != ""} {
		if has {
			sources++
		}
	}
	if sources != 1 {
		fs.Usage()
		return errors.New("batch takes INPUTS, --urls FILE or --resume BATCH_ID (one of them)")
	}
	if o.output == "" {
		return errors.New("-o OUT.zip is required: where the outputs go")
	}
	if o.resume != "" && o.webhook != "" {
		return errors.New("--webhook is set when a batch starts; --resume follows one that has started")
	}
	if o.events != "" && o.webhook == "" {
		return errors.New("--webhook-events needs --webhook")
	}
	if !o.force && o.resume == "" && !isS3(o.output) {
		if _, err := os.Stat(o.output); err == nil {
			return fmt.Errorf("%s exists: choose another -o, or --force", o.output)
		}
	}
	c, err := jobsClient(o.API, o.token)
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()

	id := o.resume
	if id == "" {
		b, err := startBatch(ctx, c, apiName, inputs, o)
		if err != nil {
			return err
		}
		id = b.ID
		fmt.Fprintf(os.Stderr, "batch %s: %d items\n", id, b.Counts.Total)
	}
	b, err := followBatch(ctx, c, apiName, id, o.every, newBatchProgress(os.Stderr))
	if err != nil {
		if ctx.Err() == nil {
			return err
		}
		// Interrupted: the batch lives on the platform.
		if o.cancelOnInterrupt {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cb, cerr := c.CancelBatch(cctx, apiName, id)
			if cerr != nil {
				return fmt.Errorf("interrupted; canceling batch %s failed: %w", id, cerr)
			}
			fmt.Fprintf(os.Stderr, "\ninterrupted: batch %s canceled (%s; %d done, %d failed)\n", id, cb.Status, cb.Counts.Done, cb.Counts.Failed)
			return errors.New("interrupted")
		}
		fmt.Fprintf(os.Stderr, "\ninterrupted: batch %s goes on on the platform. Follow it again and get its outputs with:\n  algocloud batch --api %s %s --resume %s -o %s\n",
			id, o.API, apiName, id, o.output)
		return errors.New("interrupted")
	}
	return saveBatch(ctx, c, apiName, b, o.output)
}

// isS3 reports whether an INPUT or -o is an S3 prefix.
func isS3(s string) bool { return strings.HasPrefix(s, "s3://") }

// s3Location is uri with the caller's AWS credentials from the environment
// (the standard variables; nothing is read from ~/.aws).
func s3Location(uri, endpoint string) (*apiclient.S3Location, error) {
	loc := &apiclient.S3Location{URI: uri, EndpointURL: endpoint, Region: os.Getenv("AWS_REGION"),
		AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	if loc.Region == "" {
		loc.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if loc.AccessKeyID == "" || loc.SecretAccessKey == "" {
		return nil, fmt.Errorf("%s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to credentials that may use it (the platform uses yours, never its own)", uri)
	}
	return loc, nil
}

// startBatch creates the batch from INPUTS, --urls or an s3:// INPUT, with
// its outputs to an s3:// -o or to output.zip.
func startBatch(ctx context.Context, c *apiclient.Client, apiName string, inputs []string, o batchOptions) (apiclient.Batch, error) {
	var outS3 *apiclient.S3Location
	if isS3(o.output) {
		var err error
		if outS3, err = s3Location(o.output, o.s3Endpoint); err != nil {
			return apiclient.Batch{}, err
		}
	}
	if o.urls != "" {
		urls, err := readURLs(o.urls)
		if err != nil {
			return apiclient.Batch{}, err
		}
		return c.CreateBatch(ctx, apiName, apiclient.BatchInput{URLs: urls, OutputS3: outS3, Concurrency: o.concurrency,
			Webhook: o.webhook, Events: splitEvents(o.events)})
	}
	for _, in := range inputs {
		if isS3(in) && len(inputs) > 1 {
			return apiclient.Batch{}, fmt.Errorf("%s: an S3 prefix is the batch's only INPUT", in)
		}
	}
	if len(inputs) == 1 && isS3(inputs[0]) {
		inS3, err := s3Location(inputs[0], o.s3Endpoint)
		if err != nil {
			return apiclient.Batch{}, err
		}
		return c.CreateBatch(ctx, apiName, apiclient.BatchInput{InputS3: inS3, OutputS3: outS3, Concurrency: o.concurrency,
			Webhook: o.webhook, Events: splitEvents(o.events)})
	}
	archive, name, cleanup, err := batchArchive(inputs)
	if err != nil {
		return apiclient.Batch{}, err
	}
	defer cleanup()
	f, err := os.Open(archive)
	if err != nil {
		return apiclient.Batch{}, err
	}
	defer f.Close()
	return c.CreateBatch(ctx, apiName, apiclient.BatchInput{Archive: f, Name: name, OutputS3: outS3, Concurrency: o.concurrency,
		Webhook: o.webhook, Events: splitEvents(o.events)})
}

// splitEvents reads --webhook-events: comma-separated, blanks dropped.
func splitEvents(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// readURLs reads one URL a line; blank lines and # comments are skipped.
func readURLs(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the URLs: %w", err)
	}
	var urls []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "http://") && !strings.HasPrefix(line, "https://") {
			return nil, fmt.Errorf("%s line %d: %q is not an http(s) URL", file, i+1, line)
		}
		urls = append(urls, line)
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s holds no URL", file)
	}
	return urls, nil
}

// isArchive reports whether name is an archive the platform takes as a batch.
func isArchive(name string) bool {
	n := strings.ToLower(name)
	for _, ext := range []string{".zip", ".tar", ".tar.gz", ".tgz"} {
		if strings.HasSuffix(n, ext) {
			return true
		}
	}
	return false
}

// batchArchive returns the archive to send: a single .zip or .tar INPUT as
// it is, else a temporary zip of every file INPUTS name (a folder's files by
// their path in it; links and other non-regular files are refused, as the
// platform would).
func batchArchive(inputs []string) (path, name string, cleanup func(), err error) {
	if len(inputs) == 1 && isArchive(inputs[0]) {
		if fi, err := os.Stat(inputs[0]); err == nil && fi.Mode().IsRegular() {
			return inputs[0], filepath.Base(inputs[0]), func() {}, nil
		}
	}
	tmp, err := os.CreateTemp("", "algocloud-batch-*.zip")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { os.Remove(tmp.Name()) }
	n, err := zipInputs(inputs, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	fmt.Fprintf(os.Stderr, "packed %d inputs\n", n)
	return tmp.Name(), "inputs.zip", cleanup, nil
}

// zipInputs writes a zip of the files inputs name to w and returns how many.
func zipInputs(inputs []string, w io.Writer) (int, error) {
	zw := zip.NewWriter(w)
	seen := map[string]string{}
	n := 0
	add := func(src, name string) error {
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("%s and %s would both be %s in the batch: rename one", prev, src, name)
		}
		seen[name] = src
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: time.Now()})
		if err != nil {
			return err
		}
		if _, err := io.Copy(fw, f); err != nil {
			return fmt.Errorf("pack %s: %w", src, err)
		}
		n++
		return nil
	}
	for _, in := range inputs {
		fi, err := os.Lstat(in)
		if err != nil {
			return n, fmt.Errorf("input %s: %w", in, err)
		}
		switch {
		case fi.Mode().IsRegular():
			if err := add(in, filepath.Base(in)); err != nil {
				return n, err
			}
		case fi.IsDir():
			err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					if p != in && (apiclient.SkippedDirs[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
						return fs.SkipDir
					}
					return nil
				}
				if strings.HasPrefix(d.Name(), ".") {
					return nil // .DS_Store and friends are not inputs
				}
				if !d.Type().IsRegular() {
					return fmt.Errorf("%s is not a regular file (links are refused)", p)
				}
				rel, err := filepath.Rel(in, p)
				if err != nil {
					return err
				}
				return add(p, filepath.ToSlash(rel))
			})
			if err != nil {
				return n, err
			}
		default:
			return n, fmt.Errorf("input %s is not a regular file or folder", in)
		}
	}
	if n == 0 {
		return 0, errors.New("the inputs hold no file")
	}
	return n, zw.Close()
}

// followBatch polls the batch until it is final, showing its progress.
func followBatch(ctx context.Context, c *apiclient.Client, apiName, id string, every time.Duration, pr *batchProgress) (apiclient.Batch, error) {
	if every <= 0 {
		every = time.Second
	}
	fails := 0
	for {
		b, err := c.GetBatch(ctx, apiName, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return b, ctx.Err()
		case err != nil && apiclient.ErrorCode(err) == "" && fails < 30:
			fails++ // no answer (the API restarting): ask again
		case err != nil:
			return b, err
		default:
			fails = 0
			pr.show(b)
			if b.Final() {
				pr.end()
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(every):
		}
	}
}

// saveBatch downloads a final batch's outputs to out and, when items
// failed, its error report beside it.
func saveBatch(ctx context.Context, c *apiclient.Client, apiName string, b apiclient.Batch, out string) error {
	n := b.Counts
	fmt.Fprintf(os.Stderr, "batch %s %s: %d done, %d failed\n", b.ID, b.Status, n.Done, n.Failed)
	if uri := b.OutputS3(); uri != "" {
		// The platform wrote the outputs to S3; nothing to download.
		fmt.Fprintf(os.Stderr, "outputs in %s (manifest.json lists every item, errors.jsonl why %d failed)\n", uri, n.Failed)
		return batchOutcome(b)
	}
	if n.Done > 0 {
		written, err := downloadTo(out, func(w io.Writer) (int64, error) { return c.DownloadBatchOutput(ctx, apiName, b.ID, w) })
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%s)\n", out, size(written))
	}
	if n.Failed > 0 {
		report := strings.TrimSuffix(out, filepath.Ext(out)) + ".errors.jsonl"
		written, err := downloadTo(report, func(w io.Writer) (int64, error) {
			n, _, err := c.DownloadBatchErrors(ctx, apiName, b.ID, w)
			return n, err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%s): why %d items failed\n", report, size(written), n.Failed)
	}
	return batchOutcome(b)
}

// batchOutcome is the command's error for a final batch: nil when items
// succeeded and the batch was neither canceled nor failed.
func batchOutcome(b apiclient.Batch) error {
	n := b.Counts
	switch {
	case b.Status == apiclient.StatusCanceled:
		return fmt.Errorf("batch %s was canceled", b.ID)
	case n.Failed > 0 && n.Done == 0:
		return fmt.Errorf("every item of batch %s failed", b.ID)
	case b.Status == apiclient.StatusFailed:
		msg := b.Error
		if msg == "" {
			msg = "see the error report"
		}
		return fmt.Errorf("batch %s failed: %s", b.ID, msg)
	}
	return nil
}

// downloadTo writes what get writes into path, through a temporary file
// beside it, so that an interrupted download never leaves a partial OUT.
func downloadTo(path string, get func(io.Writer) (int64, error)) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".part-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := get(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, err
	}
	return n, nil
}

// batchProgress draws a batch's progress on a terminal (one line redrawn in
// place), or, when stderr is a file or pipe, writes a line at most every
// 10 s and whenever the counts change after that.
type batchProgress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	shown string
	now   func() time.Time
}

func newBatchProgress(f *os.File) *batchProgress {
	return &batchProgress{w: f, tty: isTerminal(f), now: time.Now}
}

// barWidth is the bar's width in cells.
const barWidth = 30

// progressLine is b's progress as one line: a bar, done/failed/left, rate and ETA.
func progressLine(b apiclient.Batch) string {
	n := b.Counts
	total := n.Total
	if total <= 0 {
		total = n.Done + n.Failed + n.Left
	}
	finished := n.Done + n.Failed
	bar := strings.Repeat(" ", barWidth)
	pct := 0.0
	if total > 0 {
		pct = float64(finished) / float64(total)
		full := int(pct * barWidth)
		bar = strings.Repeat("#", full) + strings.Repeat(".", barWidth-full)
	}
	s := fmt.Sprintf("[%s] %3.0f%%  %d done, %d failed, %d left", bar, pct*100, n.Done, n.Failed, n.Left)
	if b.Rate > 0 {
		s += fmt.Sprintf("  %.1f/s", b.Rate)
	}
	if b.ETASeconds != nil && *b.ETASeconds > 0 && !b.Final() {
		s += "  ETA " + (time.Duration(*b.ETASeconds) * time.Second).String()
	}
	if b.Status != "" {
		s += "  " + b.Status
	}
	return s
}

// show draws b's progress.
func (p *batchProgress) show(b apiclient.Batch) {
	line := progressLine(b)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = line
		return
	}
	if line == p.shown || (p.now().Sub(p.last) < 10*time.Second && !b.Final() && p.shown != "") {
		return
	}
	fmt.Fprintln(p.w, line)
	p.shown, p.last = line, p.now()
}

// end finishes the redrawn line.
func (p *batchProgress) end() {
	if p.tty && p.shown != "" {
		fmt.Fprintln(p.w)
	}
}
